#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Scheduler cost as the cluster grows: select/cons_tres vs select/flex.

For each size N (emulated nodes x 8 GPUs x 8 slices, multiple-slurmd on this
machine) and each select plugin, in turn: start the cluster, submit the same
seeded stream of job arrays held and release them at once (whole GPUs and
slices, `--depth` times the cluster's GPUs in work, so the queue stays deep),
let it run `--warmup` s, reset
sdiag, measure `--measure` s, then read sdiag's main and backfill cycles.
select/flex runs with lending on (file telemetry, every device idle), so its
cost includes the lending tick; the tick's time under slurmctld's locks is
read from the lending status file (`TICK` line) where the product writes it.

Not a test: numbers and the flex / cons_tres ratios (bench/RESULTS.md).

    bench/scale_bench.py --plugin-dir DIR [--sizes 64,256,512] [--out FILE]
"""

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from localcluster import DEFAULT_YAML, LocalCluster  # noqa: E402

GPUS = 8
SLICES = 8
SELECTS = ["select/cons_tres", "select/flex"]

SLICED = DEFAULT_YAML.replace("    slices: 4\n", f"    slices: {SLICES}\n    memory_percent: 10\n")


def lending_yaml(report_interval, telemetry_timeout):
    """SLICED with lending on, telemetry from files that `file_telemetry` writes."""
    return SLICED + f"""\
lending:
  enabled: true
  port: {{lending_port}}
  report_interval: {report_interval}
  telemetry_timeout: {telemetry_timeout}
  telemetry: file
  telemetry_dir: {{dir}}/telemetry/%n
"""


YAML = lending_yaml("5s", "30s")


def file_telemetry(busy):
    """A LocalCluster `prepare` that reports every device `busy` percent busy."""
    def prepare(c):
        for n in c.nodes:
            (c.dir / "telemetry" / n).mkdir(parents=True, exist_ok=True)
            for d in range(GPUS):
                (c.dir / "telemetry" / n / f"nvidia{d}").write_text(f"busy {busy}\n")
    return prepare


def arrays(nodes, seed, depth):
    """(sbatch args, tasks) per array: `depth` times the cluster's GPUs in work (with jobs of 60-240 s,
    about twice what the cluster runs in the warm-up and measured window together, so the queue stays deep
    throughout)."""
    rng = random.Random(seed)
    out, gpu_work = [], 0.0
    while gpu_work < depth * nodes * GPUS:
        # Mostly several GPUs' worth per job: the GPUs bind (not CPUs), and the
        # running jobs (one slurmstepd each) stay about 4 per node, which
        # 512 nodes' worth of this 24 GiB machine holds.
        r = rng.random()
        if r < 0.3:
            gres, gpus = "gpu:2", 2.0
        elif r < 0.5:
            gres, gpus = "gpu:4", 4.0
        else:
            k = rng.choice([4, 8, 16, 24])
            gres, gpus = f"vslice:{k}", k / SLICES
        tasks = rng.choice([16, 32, 64])
        secs = rng.choice([60, 120, 240])  # churn: the main scheduler runs at each end
        out.append(([f"--gres={gres}", "-c", "1", f"--array=0-{tasks - 1}", "--time=10",
                     "--output=/dev/null", "--wrap", f"sleep {secs}"], tasks))
        gpu_work += gpus * tasks
    return out


def sdiag_numbers(text):
    main, _, bf = text.partition("Backfilling stats")

    def num(block, key):
        m = re.search(rf"{key}:\s+(\d+)", block)
        return int(m.group(1)) if m else None
    return {"main_mean_us": num(main, "Mean cycle"), "main_max_us": num(main, "Max cycle"),
            "main_cycles": num(main, "Total cycles"), "main_depth": num(main, "Mean depth cycle"),
            "bf_mean_us": num(bf, "Mean cycle"), "bf_max_us": num(bf, "Max cycle"),
            "bf_cycles": num(bf, "Total cycles"), "bf_depth": num(bf, "Depth Mean"),
            "bf_depth_try": num(bf, r"Depth Mean \(try depth\)")}


def tick_line(status_path):
    """The status file's TICK line: {'read_p50_ms':..., ...}, or {} where the product writes none."""
    try:
        text = status_path.read_text()
    except OSError:
        return {}
    m = re.search(r"^TICK (.*)$", text, re.M)
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", m.group(1))} if m else {}


def per_try(r):
    """Backfill's mean cycle per job it tried to place (sdiag's "Depth Mean (try depth)"), us."""
    return f"{r['bf_mean_us'] / r['bf_depth_try']:.0f}" if r.get("bf_mean_us") and r.get("bf_depth_try") else "-"


def run_one(a, select, nodes):
    flex = select == "select/flex"
    c = LocalCluster(a.workdir / f"{nodes}-{select.replace('/', '_')}", a.plugin_dir, nodes=nodes, prefix="sc",
                     shape=f"nvidia-{GPUS}gpu", cpus=2 * GPUS * SLICES, slices=SLICES, select=select,
                     lending=flex, prepare=file_telemetry(0), flexslurm_yaml=YAML if flex else SLICED,
                     # MessageTimeout: at 256 nodes and more, sbatch timed out at Slurm's 10 s
                     # while slurmctld launched hundreds of jobs on 2 cores (2026-12-01/02).
                     extra_conf="MaxJobCount=50000\nMessageTimeout=60\n"
                     "SchedulerParameters=bf_interval=5,bf_max_job_test=1000,default_queue_depth=200\n")
    with c:
        # Submitted held, then released at once: submitted as they came, the
        # jobs on 2 cores loaded by the ones already running took up to 494 s
        # to submit at 256 nodes (2026-12-02), and the queue had drained
        # before the measured window (no backfill cycle).
        t0 = time.monotonic()
        ids = [c.run(["sbatch", "--parsable", "--hold", *args], timeout=60).stdout.strip().split(";")[0]
               for args, _tasks in arrays(nodes, a.seed, a.depth)]
        c.run(["scontrol", "release", ",".join(ids)], timeout=120)
        submit_s = time.monotonic() - t0
        time.sleep(a.warmup)
        c.run(["sdiag", "-r"])
        running0 = len(c.run(["squeue", "-h", "-t", "R", "-o", "%i"], timeout=60).stdout.split())
        time.sleep(a.measure)
        sdiag = c.run(["sdiag"], timeout=60).stdout
        (a.workdir / f"{nodes}-{select.replace('/', '_')}.sdiag").write_text(sdiag)
        sd = sdiag_numbers(sdiag)
        running = len(c.run(["squeue", "-h", "-t", "R", "-o", "%i"], timeout=60).stdout.split())
        pending = len(c.run(["squeue", "-h", "-t", "PD", "-r", "-o", "%i"], timeout=60).stdout.split())
        rss = 0
        p = c.procs.get("slurmctld")
        pid = p.pid if p else None
        if pid:
            m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
            rss = int(m.group(1)) if m else 0
        tick = tick_line(c.dir / "state" / "flexslurm_lending.status") if flex else {}
    return {"select": select, "nodes": nodes, "submit_s": round(submit_s, 1), "running_at_start": running0,
            "running": running, "pending_tasks": pending, "slurmctld_rss_kib": rss, "tick": tick, **sd}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--sizes", default="64,256,512")
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--measure", type=int, default=180)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--depth", type=int, default=4, help="queued GPU work, in cluster GPUs (default 4)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "build" / "scale")
    ap.add_argument("--out", type=Path, help="JSON of every run")
    ap.add_argument("--selects", default=",".join(SELECTS), help="select plugins to run (default: both)")
    a = ap.parse_args()
    rows = []
    for nodes in [int(s) for s in a.sizes.split(",")]:
        for select in a.selects.split(","):
            r = run_one(a, select, nodes)
            rows.append(r)
            print(json.dumps(r), flush=True)
    if a.out:
        a.out.write_text(json.dumps(rows, indent=1) + "\n")
    print("| nodes | select | main mean/max (us) | bf mean/max (us) | main cycles | flex/cons main mean | "
          "flex/cons bf mean | bf mean per job tried (us) | tick read p50/p99 (ms) | tick write-lock p50/p99 (ms) | "
          "tick lock wait p99 (ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = next((b for b in rows if b["nodes"] == r["nodes"] and b["select"] == "select/cons_tres"), None)

        def ratio(key):
            return (f"{r[key] / base[key]:.2f}" if base and base.get(key) and r.get(key) is not None
                    else "-")
        t = r["tick"]
        print(f"| {r['nodes']} | {r['select']} | {r['main_mean_us']}/{r['main_max_us']} | "
              f"{r['bf_mean_us']}/{r['bf_max_us']} | {r['main_cycles']} | {ratio('main_mean_us')} | "
              f"{ratio('bf_mean_us')} | {per_try(r)} | {t.get('read_p50_ms', '-')}/{t.get('read_p99_ms', '-')} | "
              f"{t.get('act_p50_ms', '-')}/{t.get('act_p99_ms', '-')} | {t.get('wait_p99_ms', '-')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
