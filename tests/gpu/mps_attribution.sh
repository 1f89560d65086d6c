#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Which processes NVML names while an MPS client works: a per-job MPS control
# daemon (root, as the SPANK job prolog starts it), its server for nobody, and
# a client in a Slurm-shaped job cgroup. Prints NVML's process lists with each
# pid's comm, uid, parent and cgroup, and the pipe directory's files.
set -uo pipefail
cd "$(dirname "$0")/../.."
mps=${1:-/usr/local/nvidia/bin/nvidia-cuda-mps-control}
d=$(mktemp -d /tmp/mpsjob.XXXX); chmod 755 "$d"
mkdir -p "$d/mps-pipe" "$d/mps-log"; chmod 755 "$d/mps-pipe"
export CUDA_MPS_PIPE_DIRECTORY=$d/mps-pipe CUDA_MPS_LOG_DIRECTORY=$d/mps-log
"$mps" -d
printf 'set_default_active_thread_percentage 50\nstart_server -uid 65534\n' | "$mps"
cg=/sys/fs/cgroup/system.slice/slurmstepd.scope/job_5151/step_0/user/task_0
mkdir -p "$cg"
(echo $BASHPID >"$cg/cgroup.procs" && exec runuser -u nobody -- env HOME=/tmp python3 tests/gpu/load.py busy 8) &
sleep 5
ls -la "$d/mps-pipe"
python3 - <<'PY'
import os, pynvml as n
n.nvmlInit(); h = n.nvmlDeviceGetHandleByIndex(0)
def who(pid):
    try:
        st = open(f"/proc/{pid}/status").read()
        ppid = [l.split()[1] for l in st.splitlines() if l.startswith("PPid")][0]
        uid = [l.split()[1] for l in st.splitlines() if l.startswith("Uid")][0]
        return f"comm={open(f'/proc/{pid}/comm').read().strip()} uid={uid} ppid={ppid} exe={os.readlink(f'/proc/{pid}/exe')} cgroup={open(f'/proc/{pid}/cgroup').read().strip()}"
    except Exception as e:
        return f"({e})"
for name, f in [("compute", n.nvmlDeviceGetComputeRunningProcesses), ("mps_compute", getattr(n, "nvmlDeviceGetMPSComputeRunningProcesses", None))]:
    if f is None: continue
    try:
        for p in f(h): print(name, p.pid, p.usedGpuMemory, who(p.pid))
    except Exception as e: print(name, "error", e)
import time
try:
    for s in n.nvmlDeviceGetProcessUtilization(h, int((time.time() - 2) * 1e6)): print("util", s.pid, s.smUtil, who(s.pid))
except Exception as e: print("util error", e)
PY
wait
echo quit | "$mps"
