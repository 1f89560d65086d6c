#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""flexslurm on a real NVIDIA GPU: one local slurmd over the machine's
/dev/nvidia0, the real driver, NVML and nvidia-cuda-mps-control. Not part of
.ci/run (no GPU there): tests/gpu/run.sh calls it on a GPU machine and
docs/releases.md records the result. Prints one `CHECK name: PASS|FAIL detail`
line per check and ends with `N passed, N failed`."""

import argparse
import os
import pwd
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tools"))
from localcluster import LocalCluster, ensure_user  # noqa: E402

OTHER = "flexslurm-g2"
results = []


def check(name, ok, detail=""):
    ok = bool(ok)
    results.append(ok)
    print(f"CHECK {name}: {'PASS' if ok else 'FAIL'} {detail}", flush=True)


def smi(query):
    return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                          capture_output=True, text=True).stdout.strip().splitlines()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--mps-control", required=True)
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args()

    uuid, total_mib = [s.strip() for s in smi("uuid,memory.total").split(",")]
    total_mib = int(total_mib)
    slice_mib = total_mib * 20 // 100  # memory_percent: 20 below
    yaml = f"""\
version: 1
inventory:
  device_dir: /dev
  layout_file: {{dir}}/state/layout.%n
slicing:
  default:
    slices: 4
    memory_percent: 20
  classes:
    - vendor: nvidia
      device_memory: {total_mib}MiB
      memory_percent: 20
lending:
  enabled: true
  port: {{lending_port}}
  idle_window: 3s
  busy_samples: 1
  min_loan: 5s
  cooldown: 1s
  grace: 5s
  report_interval: 1s
  telemetry_timeout: 5s
  hard_stop_after: 3s
  telemetry: nvml
"""
    ensure_user(OTHER)

    # The jobs run as two unprivileged users: they must be able to run PyTorch.
    probe = subprocess.run(["runuser", "-u", "nobody", "--", args.python, "-c", "import torch"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        print("nobody cannot import torch:", probe.stderr[-300:], "- opening", sys.prefix, flush=True)
        subprocess.run(["chmod", "-R", "o+rX", sys.prefix], check=False)

    def prepare(c):
        os.chmod(c.dir / "out", 0o1777)
        os.chmod(c.dir / "munge", 0o711)

    c = LocalCluster(args.workdir, args.plugin_dir, nodes=1, prefix="g", shape="nvidia-1gpu", cpus=16,
                     gres_conf="AutoDetect=off\nNodeName=g1 Name=gpu Type=gpu File=/dev/nvidia0\n",
                     gres_per_node={"g1": "gpu:gpu:1,vslice:gpu:4,vborrow:gpu:4"}, flexslurm_yaml=yaml,
                     task_plugin="task/none", proctrack="proctrack/linuxproc", select="select/flex",
                     lending=True,
                     spank_args=["isolation=optional", "limits.nvidia=mps", f"mps_control={args.mps_control}",
                                 "job_dir={dir}/jobs"],
                     prepare=prepare)
    py = args.python
    load = HERE / "load.py"
    try:
        c.start()
        print(c.show_node("g1"), flush=True)
        log = c.log("slurmd.g1")
        for line in log.splitlines():
            if "flexslurm" in line:
                print("slurmd:", line)
        check("slurmd names the device by the driver's UUID", uuid in log, uuid)
        check("node has 4 slices", "vslice:gpu:4" in c.show_node("g1"))

        def as_user(user):
            pw = pwd.getpwnam(user)
            return [f"--uid={pw.pw_uid}", f"--gid={pw.pw_gid}", "--chdir=/tmp"]

        env = {"HOME": "/tmp", "PATH": os.environ["PATH"]}
        out = {}

        def run_job(name, gres, body, user="nobody", wait=True, timeout=180):
            opts = [f"--gres={gres}"] if gres else []
            job = c.sbatch(*opts, *as_user(user), f"--job-name={name}",
                           script="#!/bin/bash\nexport HOME=/tmp\n" + body, env=env)
            if not wait:
                return job
            state = c.wait_job(job, timeout=timeout)
            out[name] = c.job_output(job)
            print(f"--- job {name} ({job}, {state}):\n{out[name]}", flush=True)
            return job

        # 1. A one-slice job: its GPU, its variables, the job's root-owned MPS daemon.
        run_job("ident", "vslice:1",
                "nvidia-smi -L; ls /dev | grep nvidia | tr '\\n' ' '; echo\n"
                "env | grep -E '^(CUDA|SLURM_VSLICE|SLURM_JOB_GPUS|SLURM_STEP_GPUS)' | sort\n"
                "stat -c 'pipe %U %a' $CUDA_MPS_PIPE_DIRECTORY\n"
                f"{py} {load} check $SLURM_VSLICE_MEMORY_LIMIT_MIB\n")
        o = out["ident"]
        check("slice job sees the GPU", uuid in o, "nvidia-smi -L in the job")
        check("MPS pipe is root 755", "pipe root 755" in o)
        check("MPS memory limit: below the slice fits", "alloc_below" in o and re.search(r"alloc_below \d+ MiB ok", o))
        check("MPS memory limit: above the slice fails", bool(re.search(r"alloc_above \d+ MiB (oom|error)", o)),
              f"slice {slice_mib} MiB")
        check("slice memory limit is 20 % of the GPU", f"SLURM_VSLICE_MEMORY_LIMIT_MIB={slice_mib}" in o)
        m = re.search(r"sms=(\d+) total_mib=(\d+)", o)
        if m:
            print(f"one slice: CUDA shows {m.group(1)} SMs, {m.group(2)} MiB total")

        # 2. A job without slices: no accelerator node in its /dev, CUDA finds no device.
        run_job("nogpu", None,
                "ls /dev | grep nvidia | tr '\\n' ' '; echo\n"
                f"{py} -c 'import torch; print(\"count\", torch.cuda.device_count())'\n")
        o = out["nogpu"]
        check("job without slices: CUDA sees no GPU", "count 0" in o)
        check("job without slices: /dev/nvidia0 hidden", "nvidia0" not in o.split("count")[0])

        # 3. The compute share: one slice (25 %) against four (100 %), alone on the GPU.
        run_job("one", "vslice:1", f"{py} {load} busy 8\n")
        run_job("four", "vslice:4", f"{py} {load} busy 8\n")
        r1 = re.search(r"tflops=(\d+)", out["one"])
        r4 = re.search(r"tflops=(\d+)", out["four"])
        if r1 and r4:
            ratio = int(r1.group(1)) / max(1, int(r4.group(1)))
            check("one slice gets about its compute share", 0.15 <= ratio <= 0.45,
                  f"1 slice {r1.group(1)} TFLOP/s, 4 slices {r4.group(1)} TFLOP/s, ratio {ratio:.2f}")
        else:
            check("compute share measured", False, "no rate in the job output")

        # 4. Two users' jobs on the one GPU, two slices each, each with its own MPS daemon.
        a = run_job("user1", "vslice:2", f"{py} {load} busy 15\n", wait=False)
        b = run_job("user2", "vslice:2", f"{py} {load} busy 15\n", user=OTHER, wait=False)
        time.sleep(8)
        ps = subprocess.run(["ps", "-eo", "user:20,args"], capture_output=True, text=True).stdout
        mps_lines = [line for line in ps.splitlines() if "nvidia-cuda-mps" in line]
        print("\n".join(mps_lines))
        for j, name in [(a, "user1"), (b, "user2")]:
            c.wait_job(j, timeout=120)
            out[name] = c.job_output(j)
            print(f"--- job {name} ({j}):\n{out[name]}", flush=True)
        spans = [re.search(r"start=([\d.]+) end=([\d.]+) tflops=(\d+)", out[n]) for n in ("user1", "user2")]
        if all(spans):
            overlap = min(float(s.group(2)) for s in spans) - max(float(s.group(1)) for s in spans)
            check("two users' jobs ran together on the GPU", overlap > 5,
                  f"overlap {overlap:.1f} s, {spans[0].group(3)} and {spans[1].group(3)} TFLOP/s")
        else:
            check("two users' jobs ran", False)
        check("one root MPS control daemon per job", sum("nvidia-cuda-mps-control" in x and x.startswith("root")
                                                          for x in mps_lines) >= 2)

        # 5. Lending with NVML: an idle lender's slices go to a borrower on the real GPU;
        # when the lender's own process gets busy (NVML attributes it to the lender
        # through the cgroup Slurm's cgroup/v2 would give it), the loan is taken back.
        go = c.dir / "out" / "go"
        lender = run_job("lender", "vslice:2",
                         f"echo $$ > {c.dir}/out/lender.pid\n"
                         f"while [ ! -e {go} ]; do sleep 0.5; done\n"
                         f"{py} {load} busy 30\nsleep 300\n", wait=False)
        c._wait_for(lambda: c.job_state(lender) == "RUNNING", 30, "lender running")
        time.sleep(6)
        borrower = run_job("borrower", "vborrow:2", f"{py} {load} busy 120\n", user=OTHER, wait=False)
        started = False
        for _ in range(40):
            if c.job_state(borrower) == "RUNNING":
                started = True
                break
            time.sleep(1)
        status = c.dir / "state" / "flexslurm_lending.status"
        print("lending status file:\n" + (status.read_text() if status.exists() else "(none)"))
        check("idle lender's slices lent to a borrower (NVML telemetry)", started, f"borrower {c.job_state(borrower)}")
        if started:
            time.sleep(8)  # the borrower at work on the GPU
            cg = Path(f"/sys/fs/cgroup/system.slice/slurmstepd.scope/job_{lender}/step_batch/user/task_0")
            cg.mkdir(parents=True, exist_ok=True)
            (cg / "cgroup.procs").write_text((c.dir / "out" / "lender.pid").read_text())
            go.touch()
            t0 = time.time()
            requeued = False
            while time.time() - t0 < 40:
                job = c.show_job(borrower)
                if "Restarts=1" in job or "Restarts=2" in job:
                    requeued = True
                    break
                time.sleep(0.5)
            took = time.time() - t0
            print("lending status file:\n" + (status.read_text() if status.exists() else "(none)"))
            print(c.show_job(borrower))
            check("busy lender takes its slices back (requeue)", requeued, f"{took:.1f} s after the lender started work")
        c.run(["scancel", str(lender), str(borrower)], check=False)
        time.sleep(2)
        for line in c.log("slurmctld").splitlines():
            if "lending" in line:
                print("slurmctld:", line)
    except Exception as e:  # noqa: BLE001 - one report line, then the daemons stop
        check("run", False, f"{type(e).__name__}: {e}")
    finally:
        c.stop()
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
