#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A deep borrower queue with nothing lendable: what it costs slurmctld's schedulers.

The trace replay's P4 (bench/replay/limits.md) measured backfill at 294 ms a
cycle against 42 ms without borrowers: every pending borrower went through
cons_tres's will-run search (running jobs ended one by one), which can never
find a borrower a start, since what is lendable is known only now. This runs
the same situation small and side by side, once per plugin directory given
(e.g. the build before and after a change): N nodes x 8 GPUs x 8 slices, every
slice held by a busy owner (file telemetry: busy 100, so nothing is lendable),
B borrower jobs pending, and sdiag's main and backfill cycles over the
measured window.

    bench/borrower_queue_bench.py --plugin-dirs OLD,NEW [--nodes 8] [--borrowers 200]

Not a test: numbers and ratios for bench/RESULTS.md.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))

from localcluster import LocalCluster  # noqa: E402
from scale_bench import GPUS, SLICES, file_telemetry, lending_yaml, sdiag_numbers  # noqa: E402

YAML = lending_yaml("2s", "10s")


def run_one(a, label, plugin_dir):
    c = LocalCluster(a.workdir / label, plugin_dir, nodes=a.nodes, prefix="bq", shape=f"nvidia-{GPUS}gpu",
                     cpus=2 * GPUS * SLICES, slices=SLICES, select="select/flex", lending=True,
                     prepare=file_telemetry(100), flexslurm_yaml=YAML,
                     extra_conf="SchedulerParameters=bf_interval=5,bf_max_job_test=1000,default_queue_depth=200\n")
    with c:
        owners = a.nodes * GPUS
        c.run(["sbatch", "--gres=vslice:8", "-c", "1", f"--array=0-{owners - 1}", "--output=/dev/null",
               "--wrap", "sleep 100000"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(c.run(["squeue", "-h", "-t", "R", "-o", "%i"]).stdout.split()) == owners:
                break
            time.sleep(2)
        for _ in range(a.borrowers):
            c.run(["sbatch", "--gres=vborrow:1", "--requeue", "-c", "1", "-J", "borrower", "--output=/dev/null",
                   "--wrap", "sleep 60"])
        time.sleep(15)
        c.run(["sdiag", "-r"])
        time.sleep(a.measure)
        sd = sdiag_numbers(c.run(["sdiag"]).stdout)
        running_borrowers = len(c.run(["squeue", "-h", "-t", "R", "-o", "%i", "--name", "borrower"]).stdout.split())
    return {"plugins": label, "nodes": a.nodes, "borrowers": a.borrowers,
            "borrowers_running": running_borrowers, **sd}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plugin-dirs", required=True, help="comma-separated; the first is the baseline")
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--borrowers", type=int, default=200)
    ap.add_argument("--measure", type=int, default=60)
    ap.add_argument("--workdir", type=Path, default=ROOT / "build" / "borrower-queue")
    a = ap.parse_args()
    rows = []
    for i, d in enumerate(a.plugin_dirs.split(",")):
        r = run_one(a, f"p{i}", d)
        r["plugin_dir"] = d
        rows.append(r)
        print(json.dumps(r), flush=True)
    base = rows[0]
    print("| plugins | main mean/max (us) | bf mean/max (us) | bf cycles | bf mean vs first |")
    print("|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['bf_mean_us'] / base['bf_mean_us']:.2f}" if base.get("bf_mean_us") and r.get("bf_mean_us") \
            else "-"
        print(f"| {r['plugin_dir']} | {r['main_mean_us']}/{r['main_max_us']} | {r['bf_mean_us']}/{r['bf_max_us']} | "
              f"{r['bf_cycles']} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
