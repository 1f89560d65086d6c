#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The real-GPU run: on a machine with an NVIDIA GPU, its driver, CUDA and
# PyTorch but no Slurm (as root). Installs the bundle from
# tests/gpu/make-bundle.sh (Debian 12's Slurm 22.05.8 and munge, added beside
# the system's files, never over them; flexslurm under /opt/flexslurm), then:
#   1. what the machine is (driver, GPU, /dev, /proc/driver/nvidia, cgroups);
#   2. gpu-probe: the core's device identity, slice layout and limits, and
#      NVML telemetry while a CUDA process runs in a Slurm-shaped cgroup;
#   3. tests/gpu/real_gpu.py: a local Slurm cluster over the real GPU.
# Everything goes to $OUT (or /tmp/gpu-out): run.log, logs.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
exec > >(tee "$out/run.log") 2>&1
section() { echo; echo "=== $*"; }

section machine
date -u
uname -r
grep PRETTY /etc/os-release
ldd --version | head -1
nvidia-smi --query-gpu=name,uuid,pci.bus_id,memory.total,driver_version,compute_mode,mig.mode.current --format=csv
ls -l /dev/nvidia* 2>&1
for f in /proc/driver/nvidia/gpus/*/information; do echo "$f"; cat "$f"; done
mps=$(command -v nvidia-cuda-mps-control || ls /usr/local/nvidia/bin/nvidia-cuda-mps-control /usr/bin/nvidia-cuda-mps-control 2>/dev/null | head -1)
echo "mps control: ${mps:-none}"
findmnt -t cgroup,cgroup2 2>&1 | head
cat /proc/self/cgroup
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'

section install
tar -xzf .gpu/bundle.tar.gz -C / --skip-old-files
rm -rf /opt/flexslurm && mkdir -p /opt/flexslurm && tar -xzf .gpu/flexslurm.tar.gz -C /opt/flexslurm
ldconfig
plugin_dir=$(dirname "$(find /opt/flexslurm -name gres_vslice.so | head -1)")
for b in /usr/sbin/slurmd /usr/sbin/slurmctld /usr/sbin/slurmstepd /usr/sbin/munged /usr/bin/srun "$plugin_dir"/*.so; do
	ldd "$b" | grep "not found" | sed "s,^,$b: ,"
done
slurmd -V

section gpu-probe
yaml=$(mktemp)
mem=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
printf 'version: 1\ninventory:\n  device_dir: /dev\n  layout_file: /tmp/gpu-probe.layout\nslicing:\n  default:\n    slices: 4\n    memory_percent: 20\n  classes:\n    - vendor: nvidia\n      device_memory: %sMiB\n      memory_percent: 20\n' "$mem" >"$yaml"
.gpu/gpu-probe identify "$yaml" /dev/nvidia0
.gpu/gpu-probe limits "$yaml" 1 65534
# A CUDA process in the cgroup Slurm's cgroup/v2 would give job 4242's step 0.
cg=/sys/fs/cgroup/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0
if mkdir -p "$cg" 2>/dev/null; then
	(echo $BASHPID >"$cg/cgroup.procs" && exec python3 tests/gpu/load.py busy 6) &
else
	echo "no cgroup v2 to write: the load runs outside any job"
	python3 tests/gpu/load.py busy 6 &
fi
load=$!
.gpu/gpu-probe sample "$yaml" 9
wait $load
rmdir "$cg" "$cg/.." "$cg/../.." "$cg/../../.." 2>/dev/null

section cluster
PYTHONUNBUFFERED=1 timeout 400 python3 tests/gpu/real_gpu.py --plugin-dir "$plugin_dir" \
	--workdir /tmp/gpu-cluster --mps-control "${mps:-/usr/bin/nvidia-cuda-mps-control}"
echo "real_gpu.py exit $?"
tar -czf "$out/logs.tar.gz" -C /tmp/gpu-cluster log out etc 2>/dev/null
