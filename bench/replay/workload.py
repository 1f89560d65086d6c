#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The replay workload: a job stream cut from the public Alibaba traces.

Arrivals, sizes, durations and QoS come from the openb pod list
(alibaba_gpu_v2023_openb_jobs.csv); each GPU pod's busy % over time comes
from a GenAI pod's measured series (alibaba_genai_v2026_pod_util_series.csv.gz),
chosen with the seed, at a random phase. The two traces come from different
clusters and are never joined row by row.

Time is compressed: durations are divided by `dur_div` (at least `min_dur`,
at most `dur_cap` seconds), and arrival gaps by the factor that makes the
offered load of whole GPUs (the stock-Slurm view: a fractional pod takes a
whole GPU) of the chosen run of pods equal `target_load` x the cluster's GPUs,
so that stock Slurm is saturated. The busy series is compressed like durations.

Python 3 standard library only. `python3 workload.py --trace-dir DIR` prints
what a seed's stream looks like.
"""
import argparse
import csv
import gzip
import json
import math
import os
import random
import statistics
import sys

OPENB = "alibaba_gpu_v2023_openb_jobs.csv"
GENAI = "alibaba_genai_v2026_pod_util_series.csv.gz"
DENSE_FROM_S = 9936000  # day 115: 99.7 % of the pods arrive after it (traces README)


class TraceMissing(Exception):
    pass


def default_trace_dir(here=None):
    here = here or os.path.dirname(os.path.abspath(__file__))
    d = os.path.normpath(os.path.join(here, "..", "..", "..", "shared", "traces"))
    return d if os.path.isdir(d) else None


def load_openb(trace_dir):
    path = os.path.join(trace_dir, OPENB)
    if not os.path.exists(path):
        raise TraceMissing(f"{path}: not found (see bench/replay/README.md to make it)")
    pods = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if not r["duration_s"] or float(r["n_gpus"] or 0) <= 0:
                continue  # never scheduled, or CPU only
            submit = int(r["submit_s"])
            if submit < DENSE_FROM_S:
                continue
            pods.append({
                "name": r["job_id"],
                "submit_s": submit,
                "duration_s": int(r["duration_s"]),
                "num_gpu": int(r["num_gpu"]),
                "gpu_milli": int(r["gpu_milli"]),
                "cpus": max(1, math.ceil(float(r["cpu_cores"] or 1))),
                "qos": r["qos"],
            })
    pods.sort(key=lambda p: (p["submit_s"], p["name"]))
    return pods


def load_genai(trace_dir):
    path = os.path.join(trace_dir, GENAI)
    if not os.path.exists(path):
        raise TraceMissing(f"{path}: not found (see bench/replay/README.md to make it)")
    series = {}
    with gzip.open(path, "rt", newline="") as f:
        for r in csv.DictReader(f):
            series.setdefault(r["pod_id"], []).append((int(r["t_s"]), float(r["gpu_util_pct"])))
    for s in series.values():
        s.sort()
    # Pods observed for less than an hour say little about a job's phases.
    return {k: v for k, v in series.items() if v[-1][0] - v[0][0] >= 3600}


def gpus_of(pod):
    """The pod's GPU request as a number of GPUs (0.47, 1, 8)."""
    return pod["num_gpu"] * pod["gpu_milli"] / 1000.0


def whole_gpus(pod):
    return max(1, math.ceil(gpus_of(pod) - 1e-9))


def busy_at(job, t):
    """Busy % of a running job `t` seconds after it started (compressed time)."""
    s = job["series"]
    if not s:
        return 0.0
    period = job["series_period"]
    i = int((t / period + job["series_phase"])) % len(s)
    return s[i]


def build(trace_dir, seed, nodes=16, gpus_per_node=8, window_s=900, dur_div=10, min_dur=5,
          dur_cap=300, target_load=1.1, sample_period=60):
    """The job stream of one seed: a list of jobs sorted by submit time."""
    rng = random.Random(seed)
    pods = load_openb(trace_dir)
    util = load_genai(trace_dir)
    util_ids = sorted(util)
    capacity = nodes * gpus_per_node

    def duration(p):
        return min(max(p["duration_s"] / dur_div, min_dur), dur_cap)

    # A contiguous run of arrivals from a seeded start, long enough to fill the window.
    mean_gpu_s = statistics.mean(whole_gpus(p) * duration(p) for p in pods)
    rate = target_load * capacity / mean_gpu_s  # jobs per compressed second
    want = int(rate * window_s * 1.2) + 1
    if want >= len(pods):
        raise ValueError(f"the trace has {len(pods)} GPU pods; this shape needs {want}")
    start = rng.randrange(0, len(pods) - want)
    run = pods[start:start + want]
    # The gaps of this run are compressed so that the run itself offers
    # target_load: its whole-GPU seconds over the compressed span equal
    # target_load x capacity (a global mean rate would leave small samples
    # far above or below it).
    span = run[-1]["submit_s"] - run[0]["submit_s"]
    run_gpu_s = sum(whole_gpus(p) * duration(p) for p in run[:-1])
    gap_div = span / (run_gpu_s / (target_load * capacity)) if span > 0 and run_gpu_s > 0 else 1.0

    jobs = []
    for i, p in enumerate(run):
        submit = (p["submit_s"] - run[0]["submit_s"]) / gap_div
        if submit > window_s:
            break
        pod = util[util_ids[rng.randrange(len(util_ids))]]
        values = [v for _, v in pod]
        jobs.append({
            "id": i,
            "name": p["name"],
            "submit": round(submit, 3),
            "duration": round(duration(p), 3),
            "gpus": gpus_of(p),
            "whole_gpus": whole_gpus(p),
            "fractional": gpus_of(p) < 1.0,
            "cpus": min(p["cpus"], 4),
            "qos": p["qos"],
            "series": values,
            # GenAI samples are ~57 s apart; compressed like the durations.
            "series_period": sample_period / dur_div,
            "series_phase": rng.randrange(len(values)),
        })
    return {
        "seed": seed, "nodes": nodes, "gpus_per_node": gpus_per_node, "window_s": window_s,
        "dur_div": dur_div, "min_dur": min_dur, "dur_cap": dur_cap, "target_load": target_load,
        "gap_div": gap_div, "trace_start_row": start, "jobs": jobs,
    }


def busy_ceiling(w, step=0.25):
    """Busy utilisation (the replay's: GPUs x busy % over capacity x window) if no job ever waited."""
    work = 0.0
    for j in w["jobs"]:
        end = min(j["duration"], w["window_s"] - j["submit"])
        t = 0.0
        while t < end:
            dt = min(step, end - t)
            work += j["gpus"] * busy_at(j, t) / 100.0 * dt
            t += dt
    return work / (w["nodes"] * w["gpus_per_node"] * w["window_s"])


def describe(w):
    jobs = w["jobs"]
    cap = w["nodes"] * w["gpus_per_node"]
    whole = sum(j["whole_gpus"] * j["duration"] for j in jobs)
    exact = sum(j["gpus"] * j["duration"] for j in jobs)
    mean_busy = statistics.mean(statistics.mean(j["series"]) for j in jobs)
    return {
        "jobs": len(jobs),
        "fractional_share": round(sum(j["fractional"] for j in jobs) / len(jobs), 3),
        "be_share": round(sum(j["qos"] == "BE" for j in jobs) / len(jobs), 3),
        "offered_whole_gpu_load": round(whole / (cap * w["window_s"]), 3),
        "offered_exact_gpu_load": round(exact / (cap * w["window_s"]), 3),
        "mean_series_busy_pct": round(mean_busy, 2),
        # jobs whose submit time plus duration fit in the window: no policy finishes more
        "finishable_in_window": sum(1 for j in jobs if j["submit"] + j["duration"] <= w["window_s"]),
        # busy utilisation if every job ran from its submit time, never waiting: no policy does more
        "busy_ceiling": round(busy_ceiling(w), 5),
        "gap_div": round(w["gap_div"], 1),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace-dir", default=default_trace_dir())
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--window", type=float, default=900)
    ap.add_argument("--target-load", type=float, default=1.1)
    ap.add_argument("--json", action="store_true", help="print the whole stream")
    a = ap.parse_args(argv)
    if not a.trace_dir:
        print("workload: no trace directory (give --trace-dir; see bench/replay/README.md)")
        return 0
    try:
        w = build(a.trace_dir, a.seed, a.nodes, a.gpus_per_node, a.window, target_load=a.target_load)
    except TraceMissing as e:
        print(f"workload: {e}")
        return 0
    print(json.dumps(w if a.json else describe(w), indent=None if a.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
