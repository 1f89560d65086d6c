#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""flexslurm demo: a local cluster with gres/vslice and a few slice jobs.

Starts a real cluster (munged, slurmctld, four slurmd) whose nodes carry
fake NVIDIA, AMD and Ascend accelerators, submits slice jobs with
`sbatch --gres=vslice:...`, and shows which slices of which device each job
got, what its environment says, and that it can open its own device and not
another. Then idle reclaim on a second small cluster: an idle lender's slice
is lent to a borrower and taken back when the lender wakes up. Stops every
daemon before it exits.
"""

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from localcluster import DEFAULT_YAML, LocalCluster  # noqa: E402

NODES = {"n1": "nvidia-4gpu", "n2": "nvidia-2gpu", "n3": "amd-2gpu", "n4": "ascend-2npu"}
VARS = ["CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "SLURM_VSLICE_DEVICES",
        "SLURM_VSLICE_COUNTS", "SLURM_VSLICE_COMPUTE_PERCENT", "SLURM_VSLICE_MEMORY_LIMIT_MIB", "SLURM_JOB_GPUS"]
JOBS = [  # (sbatch arguments, what it shows)
    (["-w", "n1", "--gres=vslice:2"], "2 slices"),
    (["-w", "n1", "--gres=vslice:2"], "2 more: best-fit packs the same device"),
    (["-w", "n1", "--gres=vslice:t4:3"], "typed request: the next device"),
    (["-w", "n1", "--gres=gpu:1"], "a whole GPU: never a sliced one"),
    (["-w", "n1", "--gres=vslice:1"], "1 slice: the partly used device"),
    (["--gres=vslice:mi210:1"], "an AMD slice"),
    (["--gres=vslice:ascend910b:2"], "two Ascend slices"),
]


def job_script(c):
    devices = sorted(p for p in (c.dir / "dev").rglob("*") if p.is_char_device())
    probe = " ".join(str(p) for p in devices)
    return f"""#!/bin/bash
env | grep -E '^({"|".join(VARS)})=' | sort
for f in {probe}; do
  case "$f" in */$SLURMD_NODENAME/*) ;; *) continue ;; esac
  if err=$( {{ exec 3<"$f"; }} 2>&1 ); then echo "OPEN ${{f##*/}} ok"
  else case "$err" in *"No such file"*) echo "OPEN ${{f##*/}} hidden";; *) echo "OPEN ${{f##*/}} denied";; esac; fi
done
touch {c.dir}/out/$SLURM_JOB_ID.ready
while [ ! -e {c.dir}/out/release ]; do sleep 0.2; done
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--dir", default=str(Path(__file__).resolve().parent.parent / "build" / "demo-cluster"))
    args = ap.parse_args()

    with LocalCluster(args.dir, args.plugin_dir, nodes=len(NODES), node_shapes=NODES, cpus=8,
                      select="select/flex", spank_args=["isolation=required"]) as c:
        print(f"cluster up in {c.dir} (slurm.conf, gres.conf, flexslurm.yaml under etc/)\n")
        print(c.run(["sinfo", "-N", "-O", "NodeList:6,Gres:45"]).stdout)
        script = job_script(c)
        jobs = []
        for a, why in JOBS:  # one at a time, so that each sees the previous ones placed
            job = c.sbatch(*a, script=script)
            c._wait_for(lambda j=job: (c.dir / "out" / f"{j}.ready").exists(), 60, f"job {job} to start")
            jobs.append((job, a, why))
        details = {job: c.show_job(job) for job, _a, _w in jobs}
        print(c.run(["sinfo", "-N", "-O", "NodeList:6,GresUsed:60"]).stdout)
        (c.dir / "out" / "release").touch()

        print("select/flex placed them; vslice index i on n1 is on device i / 4 (4 slices per T4)\n")
        print(f"{'job':>4}  {'--gres':<20} {'node':<5} {'allocation (IDX)':<26} environment and device opens")
        for job, a, why in jobs:
            c.wait_job(job)
            d = details[job]
            node = re.search(r"\bNodeList=(\S+)", d).group(1)
            idx = re.search(r"\sGRES=(\S+)", d).group(1)
            idx = re.sub(r"^gpu:[^,]*\(IDX:N/A\),?", "", idx)
            out = c.job_output(job)
            env = dict(re.findall(r"^(\w+)=(.*)$", out, re.M))
            opens = " ".join(f"{n}:{r}" for n, r in re.findall(r"^OPEN (\S+) (\S+)$", out, re.M))
            request = " ".join(x for x in a if x.startswith("--gres"))[len("--gres="):]
            print(f"{job:>4}  {request:<20} {node:<5} {idx:<26} ({why})")
            pad = " " * 59
            print(pad + " ".join(f"{v}={env[v]}" for v in VARS if v in env))
            print(pad + f"opens: {opens}")
        print("\nevery job saw its own device(s) renumbered from 0; the SPANK plugin hid the others")
        print("from its /dev view (hidden), and the devices cgroup refuses them by any other path;")
        print("no device was held whole and sliced at the same time.")
    print("cluster stopped\n")
    lending_demo(args)


LENDING_YAML = DEFAULT_YAML.replace("    slices: 4\n", "    slices: 4\n    memory_percent: 20\n") + """\
lending:
  enabled: true
  port: {lending_port}
  idle_window: 3s
  grace: 5s
  min_loan: 10s
  cooldown: 2s
  report_interval: 1s
  telemetry_timeout: 5s
  telemetry: file
  telemetry_dir: {dir}/telemetry/%n
"""

BORROWER = """#!/bin/bash
trap 'echo "$(date +%T) checkpoint signal: saving"' USR1
if [ "${{SLURM_RESTART_COUNT:-0}}" -gt 0 ]; then echo "$(date +%T) resumed after a requeue"; exit 0; fi
echo "$(date +%T) borrowing: CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES compute $SLURM_VSLICE_COMPUTE_PERCENT% \\
memory cap $SLURM_VSLICE_MEMORY_LIMIT_MIB MiB"
exec 3<{dev}
for i in $(seq 100000); do sleep 0.2; done
"""


def lending_demo(args):
    def telemetry(c, text):
        (c.dir / "telemetry" / "m1" / "nvidia0").write_text(text)

    def prepare(c):
        (c.dir / "telemetry" / "m1").mkdir(parents=True)
        telemetry(c, "busy 0\n")

    def state(c, job):
        return c.job_state(job)

    with LocalCluster(args.dir + "-lending", args.plugin_dir, nodes=1, prefix="m", shape="nvidia-1gpu", cpus=4,
                      select="select/flex", flexslurm_yaml=LENDING_YAML, lending=True, prepare=prepare) as c:
        print(f"idle reclaim: one T4 in 4 slices, file telemetry under {c.dir}/telemetry (the stand-in for NVML)")
        lender = c.sbatch("--gres=vslice:1", script="#!/bin/bash\nsleep 100000\n")
        c._wait_for(lambda: state(c, lender) == "RUNNING", 30, "the lender")
        print(f"lender  JobId={lender} holds slice 0 and leaves it idle (telemetry: busy 0)")
        borrower = c.sbatch("--gres=vborrow:1", "--signal=B:USR1@60", "--open-mode=append",
                            script=BORROWER.format(dev=c.dir / "dev" / "m1" / "nvidia0"))
        print(f"borrower JobId={borrower}: sbatch --gres=vborrow:1 --signal=B:USR1@60")
        c._wait_for(lambda: state(c, borrower) == "RUNNING", 60, "the loan")
        time.sleep(4)
        print("\nflexslurm-lending status (here: the status file beside slurmctld's state):")
        print((c.dir / "state" / "flexslurm_lending.status").read_text().split("RECLAIMS")[0])
        telemetry(c, f"busy 90\njob {lender} busy 90\n")
        t0 = time.monotonic()
        print("the lender wakes up (telemetry: busy 90) ...")
        c._wait_for(lambda: state(c, borrower) == "PENDING", 30, "the reclaim")
        print(f"borrower requeued and off the device {time.monotonic() - t0:.1f} s after the lender woke up "
              f"(report 1 s + grace 5 s + teardown); lender still {state(c, lender)}")
        telemetry(c, "busy 0\n")
        c.wait_job(borrower, timeout=120)
        print(f"the lender idles again; the borrower restarts on its slice and completes: {state(c, borrower)}\n")
        print("borrower's output:\n" + c.job_output(borrower))
        log = (c.dir / "log" / "slurmctld.log").read_text()
        print("select/flex's log:")
        for line in re.findall(r"select/flex: lending: .*", log):
            print("  " + line)
    print("cluster stopped")


if __name__ == "__main__":
    main()
