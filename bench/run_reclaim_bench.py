#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Idle reclaim latency on a local cluster (not a test: numbers).

Four lanes run at once, one per node (4 nodes x 1 fake T4, 4 slices each):
in each lane a lender holds one slice; borrowers (--gres=vborrow:1, a script
that holds the device open, traps the checkpoint signal and waits) are lent
its idle slice one after another; a random 2-4 s into each loan the lender
turns busy (file telemetry) and the loan is taken back. Per reclaim, from
slurmctld's log and from /proc:

- detect:   lender busy (telemetry written) -> reclaim starts (t0) in select/flex
- signal:   t0 -> the borrower's trap ran (checkpoint written)
- requeue:  t0 -> Slurm requeued the borrower (select/flex's requeue at t0 + G)
- free:     t0 -> no process holds the device any more

Each against the grace G. Then the useful fraction of a loan: borrower
slice-seconds that ran before its checkpoint signal per lender slice-second
lent (loan start -> device free). For comparison, Slurm's own requeue path
(`scontrol requeue` of a running borrower, no plugin timing) is measured in
the same run: requeue -> device free.

Usage: run_reclaim_bench.py --plugin-dir DIR [--reclaims 52] [--out FILE]
"""

import argparse
import os
import random
import re
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from localcluster import LocalCluster  # noqa: E402
import test_lending as T  # noqa: E402  (the same cluster shape, YAML and borrower script)

GRACE = T.GRACE


def holders(path):
    return T._holders(path)


def log_time(stamp):
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def ctld_events(c):
    """{(borrower, what): time} from select/flex's log lines."""
    ev = {}
    for line in (c.dir / "log" / "slurmctld.log").read_text(errors="replace").splitlines():
        m = re.match(r"\[(\S+)\] select/flex: lending: reclaim JobId=(\d+) from ", line)
        if m:
            ev.setdefault((int(m.group(2)), "t0"), log_time(m.group(1)))
        m = re.match(r"\[(\S+)\] select/flex: lending: reclaim JobId=(\d+): requeued", line)
        if m:
            ev.setdefault((int(m.group(2)), "requeue"), log_time(m.group(1)))
        m = re.match(r"\[(\S+)\] select/flex: lending: \S+ slice \d+ of JobId=\d+ lent to JobId=(\d+)", line)
        if m:
            ev[(int(m.group(2)), "lent")] = log_time(m.group(1))
    return ev


def borrow(c, node, dev, tfile):
    """The lender idles; a borrower is lent its slice and holds the device. Returns its job id."""
    tfile.write_text("busy 0\n")
    b = c.sbatch("--gres=vborrow:1", "-w", node, "--signal=B:USR1@60",
                 script=T.BORROWER.format(out=c.dir / "out", dev=dev))
    out = c.dir / "out" / f"borrower.{b}"
    T.wait_until(lambda: out.exists() and "started" in out.read_text() and holders(dev), 60,
                 f"borrower {b} on {dev}")
    return b


def lane(c, node, device, rounds, rows, errors):
    dev = c.dir / "dev" / node / device
    tfile = c.dir / "telemetry" / node / device
    try:
        lender = c.sbatch("--gres=vslice:1", "-w", node, script=T.LENDER)
        T.wait_until(lambda: c.job_state(lender) == "RUNNING", 60, "lender")
        for _ in range(rounds):
            b = borrow(c, node, dev, tfile)
            out = c.dir / "out" / f"borrower.{b}"
            started = time.time()
            time.sleep(random.uniform(3, 5))
            busy_at = time.time()
            tfile.write_text(f"busy 80\njob {lender} busy 80\n")
            T.wait_until(lambda: c.job_state(b) != "RUNNING" and not holders(dev), 60, f"{b} off the device")
            free_at = time.time()
            try:  # requeued: PENDING once its epilog is done
                T.wait_until(lambda: c.job_state(b) == "PENDING", 20, "requeued")
            except AssertionError:
                pass
            state = c.job_state(b)
            text = out.read_text()
            m = re.search(r"checkpoint (\d+)", text)
            ckpt = os.stat(out).st_mtime if m else None
            rows.append(dict(job=b, started=started, busy=busy_at, free=free_at, ckpt=ckpt, state=state))
            c.run(["scancel", str(b)], check=False)
            T.wait_until(lambda: c.job_state(b) in ("CANCELLED", "COMPLETED"), 30, "cancelled")
        c.run(["scancel", str(lender)], check=False)
    except Exception as e:  # noqa: BLE001 - one lane failing is reported, not fatal
        errors.append(f"{node}/{device}: {e}")


def stock_requeue(c, node, device, rounds):
    """scontrol requeue of a running borrower: Slurm's own path, requeue -> device free."""
    dev = c.dir / "dev" / node / device
    tfile = c.dir / "telemetry" / node / device
    took = []
    lender = c.sbatch("--gres=vslice:1", "-w", node, script=T.LENDER)
    T.wait_until(lambda: c.job_state(lender) == "RUNNING", 60, "lender")
    for _ in range(rounds):
        b = borrow(c, node, dev, tfile)
        time.sleep(3)
        t = time.time()
        c.run(["scontrol", "requeue", str(b)])
        T.wait_until(lambda: not holders(dev), 60, "device free")
        took.append(time.time() - t)
        c.run(["scancel", str(b)], check=False)
    c.run(["scancel", str(lender)], check=False)
    return took


def pct(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, int(round(p / 100 * (len(values) - 1)))))
    return values[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--slurm-prefix")
    ap.add_argument("--reclaims", type=int, default=52)
    ap.add_argument("--workdir", default=str(ROOT / "build" / "bench-reclaim"))
    ap.add_argument("--out")
    args = ap.parse_args()
    random.seed(8)

    def prepare(c):
        for node in c.nodes:
            (c.dir / "telemetry" / node).mkdir(parents=True, exist_ok=True)
            (c.dir / "telemetry" / node / "nvidia0").write_text("busy 0\n")

    shape = dict(T.CLUSTER, nodes=4, prepare=prepare)
    lanes = [(f"l{i}", "nvidia0") for i in range(1, 5)]
    rounds = -(-args.reclaims // len(lanes))
    rows, errors = [], []
    with LocalCluster(args.workdir, args.plugin_dir, slurm_prefix=args.slurm_prefix, **shape) as c:
        t_start = time.time()
        threads = [threading.Thread(target=lane, args=(c, n, d, rounds, rows, errors)) for n, d in lanes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t_start
        stock = stock_requeue(c, "l1", "nvidia0", 10)
        ev = ctld_events(c)

    detect, signal, requeue, free, useful, lent_s = [], [], [], [], [], []
    bad_states = [r for r in rows if r["state"] != "PENDING"]
    for r in rows:
        t0 = ev.get((r["job"], "t0"))
        if t0 is None:
            continue
        detect.append(t0 - r["busy"])
        if r["ckpt"]:
            signal.append(r["ckpt"] - t0)
        if (r["job"], "requeue") in ev:
            requeue.append(ev[(r["job"], "requeue")] - t0)
        free.append(r["free"] - t0)
        lent_at = ev.get((r["job"], "lent"), r["started"])
        useful.append(max(0.0, (r["ckpt"] or t0) - r["started"]))
        lent_s.append(r["free"] - lent_at)

    lines = [f"# Idle reclaim latency ({len(rows)} reclaims, 4 lanes, grace G = {GRACE} s, "
             f"{wall:.0f} s wall)", "",
             "| phase | n | p50 (s) | p95 (s) | max (s) | bound |", "|---|---|---|---|---|---|"]
    for name, values, bound in [("detect: busy -> reclaim start (t0)", detect, "report interval + tick"),
                                ("signal: t0 -> checkpoint trap ran", signal, "~0"),
                                ("requeue: t0 -> requeued", requeue, f"G = {GRACE}"),
                                ("free: t0 -> device free", free, f"G + 5 = {GRACE + 5}"),
                                ("stock `scontrol requeue` -> device free", stock, "KillWait")]:
        lines.append(f"| {name} | {len(values)} | {statistics.median(values) if values else float('nan'):.2f} | "
                     f"{pct(values, 95):.2f} | {max(values) if values else float('nan'):.2f} | {bound} |")
    ratio = sum(useful) / sum(lent_s) if lent_s else float("nan")
    lines += ["",
              f"- borrower slice-seconds that ran before the checkpoint signal per lender slice-second lent: "
              f"{ratio:.2f} ({sum(useful):.0f} of {sum(lent_s):.0f} slice-s; the rest is grace, requeue "
              "and teardown)",
              f"- busy -> device free, end to end: p50 {statistics.median([d + f for d, f in zip(detect, free)]):.2f} s"
              if detect else "- no reclaim measured",
              f"- borrowers not PENDING after their reclaim: {len(bad_states)}"
              + (f" ({', '.join(sorted({r['state'] or '?' for r in bad_states}))})" if bad_states else ""),
              f"- lane errors: {len(errors)}" + ("".join(f"\n  - {e}" for e in errors) if errors else "")]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0 if not errors and not bad_states else 1


if __name__ == "__main__":
    sys.exit(main())
