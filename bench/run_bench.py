#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""select/flex vs stock select/cons_tres: the same mixed workload, one run.

Starts a local cluster (N slurmd on this machine, each with four fake T4s cut
into 4 slices, gres/gpu and gres/vslice both configured), submits the same
seeded workload (whole GPUs, 1..8 slices, multi-node jobs) first with
SelectType=select/cons_tres, then with select/flex, and reports per run:

- median main-scheduler cycle (sdiag "Last cycle", sampled every 0.25 s when
  a new cycle ran) and sdiag's mean over all cycles,
- jobs started per second (first submission to last start),
- fragmentation: mean number of devices partly sliced (0 < used < 4) while
  slice jobs were pending,
- jobs waiting while enough slices were free on one device somewhere,
- exclusivity violations: samples with a device held whole and sliced.

Not a test: numbers, medians, and the select/flex / cons_tres ratios.
Usage: run_bench.py --plugin-dir DIR [--nodes 8] [--jobs 240] [--out FILE]
"""

import argparse
import random
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from gres_state import holdings, parse_idx  # noqa: E402
from localcluster import LocalCluster  # noqa: E402

SLICES = 4
DEVICES = 4


def workload(n, seed):
    rng = random.Random(seed)
    jobs = []
    for _ in range(n):
        r = rng.random()
        if r < 0.15:
            args = ["--gres=gpu:1"]
        elif r < 0.20:
            args = ["-N", "2", "--gres=gpu:1"]
        elif r < 0.85:
            args = [f"--gres=vslice:{rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 8])}"]
        else:
            args = ["-N", "2", f"--gres=vslice:{rng.choice([1, 2, 4])}"]
        jobs.append((args, rng.choice([2, 3, 4, 6])))
    return jobs


def node_usage(rows):
    """{(node, device): (slices used, held whole)}"""
    used = defaultdict(lambda: [0, False])
    for _job, node, name, idx in rows:
        for u in idx:
            if name == "gpu":
                used[(node, u)][1] = True
            else:
                used[(node, u // SLICES)][0] += 1
    return used


def pending_slice_needs(show_all):
    needs = []
    for block in show_all.split("\n\n"):
        if "JobState=PENDING" not in block:
            continue
        m = re.search(r"TresPerNode=gres:vslice:(\d+)", block)
        if m and "NumNodes=1 " in block:
            needs.append(int(m.group(1)))
    return needs


def run(select, args, jobs):
    c = LocalCluster(args.workdir / select.replace("/", "_"), args.plugin_dir, nodes=args.nodes, prefix="b",
                     shape="nvidia-4gpu", cpus=16, select=select)
    with c:
        c.run(["sdiag", "-r"])
        t0 = time.monotonic()
        ids = [c.sbatch(*a, script=f"#!/bin/bash\nsleep {s}\n") for a, s in jobs]
        submitted = time.monotonic() - t0
        cycles, last_total = [], None
        frag, waiting, violations, samples = [], [], 0, 0
        starts = {}
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            sd = c.run(["sdiag"]).stdout
            main = sd.split("Backfilling stats")[0]
            total = int(re.search(r"Total cycles:\s+(\d+)", main).group(1))
            last = int(re.search(r"Last cycle:\s+(\d+)", main).group(1))
            if total != last_total and total > 0:
                cycles.append(last)
                last_total = total
            out = c.run(["scontrol", "show", "job", "-d"]).stdout
            now = time.monotonic()
            for block in out.split("\n\n"):
                m = re.search(r"JobId=(\d+)", block)
                if m and re.search(r"JobState=(RUNNING|COMPLETED|COMPLETING)", block):
                    starts.setdefault(int(m.group(1)), now)
            rows = holdings(out)
            usage = node_usage(rows)
            needs = pending_slice_needs(out)
            samples += 1
            violations += any(u[0] > 0 and u[1] for u in usage.values())
            if needs:
                frag.append(sum(1 for u in usage.values() if 0 < u[0] < SLICES))
                free = [SLICES - usage[(f"b{n}", d)][0] if not usage[(f"b{n}", d)][1] else 0
                        for n in range(1, args.nodes + 1) for d in range(DEVICES)]
                waiting.append(sum(1 for k in needs if any(f >= k for f in free)))
            if len(starts) >= len(ids) and not any(
                    "JobState=RUNNING" in b or "JobState=PENDING" in b for b in out.split("\n\n")):
                break
            time.sleep(0.25)
        span = (max(starts.values()) - t0) if starts else float("nan")
        main = c.run(["sdiag"]).stdout.split("Backfilling stats")[0]
        mean_cycle = int(re.search(r"Mean cycle:\s+(\d+)", main).group(1))
        mean_depth = int(re.search(r"Mean depth cycle:\s+(\d+)", main).group(1))
        all_cycles = int(re.search(r"Total cycles:\s+(\d+)", main).group(1))
        return {
            "select": select,
            "jobs": len(ids),
            "started": len(starts),
            "submit_s": submitted,
            "median_cycle_us": statistics.median(cycles) if cycles else float("nan"),
            "cycles": len(cycles),
            "mean_cycle_us": float(mean_cycle),
            "cycle_per_job_us": mean_cycle / mean_depth if mean_depth else float("nan"),
            "all_cycles": all_cycles,
            "jobs_per_s": len(starts) / span if starts else 0.0,
            "fragmented_devices": statistics.mean(frag) if frag else 0.0,
            "waiting_with_room": statistics.mean(waiting) if waiting else 0.0,
            "violation_samples": violations,
            "samples": samples,
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=240)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each, alternating; medians reported")
    ap.add_argument("--workdir", type=Path, default=ROOT / "build" / "bench")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    jobs = workload(args.jobs, args.seed)
    # Alternate the two so that drift on a shared machine hits both alike;
    # each metric is the median over the repetitions.
    runs = {"select/cons_tres": [], "select/flex": []}
    for _ in range(args.repeat):
        for select in runs:
            runs[select].append(run(select, args, jobs))
    stock, flex = ({k: statistics.median(r[k] for r in rs) if isinstance(rs[0][k], (int, float)) else rs[0][k]
                    for k in rs[0]} for rs in runs.values())
    lines = [f"# select/flex vs select/cons_tres: {args.nodes} nodes x {DEVICES} GPUs x {SLICES} slices, "
             f"{args.jobs} jobs (seed {args.seed}), median of {args.repeat} run(s) each", "",
             "| metric | select/cons_tres | select/flex | flex / cons_tres |", "|---|---|---|---|"]
    for key, label in [("median_cycle_us", "median main-scheduler cycle, sampled (us)"),
                       ("mean_cycle_us", "mean main-scheduler cycle, all cycles (us)"),
                       ("cycle_per_job_us", "mean cycle per job examined (us, sdiag mean cycle / mean depth)"),
                       ("jobs_per_s", "jobs started per second"),
                       ("fragmented_devices", "devices partly sliced while slice jobs wait (mean)"),
                       ("waiting_with_room", "slice jobs waiting while one device had room (mean)"),
                       ("violation_samples", "samples with a device held whole and sliced"),
                       ("cycles", "main-scheduler cycles sampled"), ("all_cycles", "main-scheduler cycles"),
                       ("started", "jobs started")]:
        a, b = stock[key], flex[key]
        ratio = f"{b / a:.2f}" if isinstance(a, (int, float)) and a else "-"
        fmt = (lambda v: f"{v:.2f}") if isinstance(a, float) else str
        lines.append(f"| {label} | {fmt(a)} | {fmt(b)} | {ratio} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
