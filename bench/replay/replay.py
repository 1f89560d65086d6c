#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Trace replay: the same public job stream through stock Slurm and flexslurm.

For each policy (P0 stock cons_tres + gres/gpu, P1 stock gres/shard, P2
flexslurm slices, P3 + lending to BE pods, P4 + a borrow-only backlog) this
starts a real local cluster (tools/localcluster.py: munged, slurmctld, one
slurmd per node), submits the seed's jobs (workload.py) at their compressed
times, drives each device's busy % through the product's telemetry file
backend from the jobs running on it, samples allocation, busy and queue,
and at the end of the window collects the job records, sdiag and the
reclaims in slurmctld's log. Every figure is also given as a ratio to P0 of
the same seed. See README.md.

    replay.py [--seed 1] [--nodes 16 --gpus-per-node 8] [--window 900] [--policies P0,...]
    replay.py --smoke        # tiny sample, P0 and P2, about 2 minutes; one line if no traces

Writes OUT/runs/<run>.json (one per seed and shape), OUT/results.json and
OUT/RESULTS.md (medians over the runs of the same settings), OUT/plots/<P>.png.
Python 3 standard library only (the PNGs are written with zlib).
"""
import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(HERE))

import workload as W  # noqa: E402
from policies import (ALL_POLICIES, BORROWER_SCRIPT, IDLE_BELOW, OWNER_SCRIPT, SCHED_PARAMS,  # noqa: E402
                      cluster_kwargs, gres_request, lending_timers)
from report import metrics, parse_sdiag, pct, publish, settings_key, with_ratios  # noqa: E402
from localcluster import LocalCluster  # noqa: E402

# Where a requeued job is seen next (scontrol's JobState).
REQUEUED_STATES = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED")


def idx_list(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        elif part:
            out.append(int(part))
    return out


def slurm_time(text):
    if not text or text in ("Unknown", "None", "N/A"):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None


def parse_job(text):
    """The fields the replay needs from `scontrol show job -d`."""
    f = dict(re.findall(r"\b(JobState|RestartCnt|SubmitTime|StartTime|EndTime|Reason)=(\S*)", text))
    holds = []  # (node, gres name, [index]) or (node, name, count) without IDX
    for node, gres in re.findall(r"\bNodes=(\S+) CPU_IDs=\S+ Mem=\S+ GRES=(\S*)", text):
        for name, cnt, idx in re.findall(r"(gpu|vslice|vborrow|shard)(?::\w+)?:(\d+)\(IDX:([\d,\-]*)\)", gres):
            holds.append((node, name, int(cnt), idx_list(idx)))
    return {"state": f.get("JobState"), "restarts": int(f.get("RestartCnt") or 0),
            "submit": slurm_time(f.get("SubmitTime")), "start": slurm_time(f.get("StartTime")),
            "end": slurm_time(f.get("EndTime")), "reason": f.get("Reason"), "holds": holds}


def device_shares(holds, S):
    """{(node, device): fraction of that device} a job holds, and its slices/units in total."""
    shares, units = {}, 0
    for node, name, cnt, idx in holds:
        if name == "gpu":
            for d in idx:
                shares[(node, d)] = shares.get((node, d), 0) + 1.0
            units += S * len(idx)
        elif name in ("vslice", "vborrow"):
            for u in idx:
                shares[(node, u // S)] = shares.get((node, u // S), 0) + 1.0 / S
            units += len(idx)
        elif name == "shard":  # IDX names the GPUs; the count is spread over them
            for d in idx:
                shares[(node, d)] = shares.get((node, d), 0) + cnt / S / max(1, len(idx))
            units += cnt
    return shares, units


# ------------------------------------------------------------------ one policy
class Replay:
    def __init__(self, c, policy, w, a):
        self.c, self.policy, self.w, self.a = c, policy, w, a
        self.S = a.slices
        self.devices = [(n, d) for n in c.nodes for d in range(a.gpus_per_node)]
        self.capacity = len(self.devices)
        self.jobs = {}  # slurm id -> record
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.samples = []
        self.submit_lag = []
        self.rejected = []
        self.backlog_seq = 0
        self.ckpt_dir = c.dir / "ckpt"
        self.ckpt_dir.mkdir(exist_ok=True)
        self.idle_lendable_slice_s = 0.0
        # lending.free_slices (P3, P4): slices no owner holds are lendable too
        self.free_lendable_slice_s = 0.0
        self.errors = []

    # -- submission
    def submit(self, job, gres, kind):
        dur = max(1, math.ceil(job["duration"])) if kind != "owner" else job["duration"]
        minutes = max(1, math.ceil((job["duration"] + 10) / 60))
        args = [f"--gres={gres}", "-N", "1", "-n", "1", "-c", "1", f"--time={minutes}",
                f"--job-name={job['name']}", "--output=/dev/null"]
        if kind == "owner":
            script = OWNER_SCRIPT.format(dur=dur)
        else:
            args.append("--requeue")
            script = BORROWER_SCRIPT.format(ckpt=self.ckpt_dir, dur=dur, c=self.a.ckpt)
        r = self.c.run(["sbatch", "--parsable", *args], check=False, input=script, timeout=60)
        if r.returncode != 0:
            self.rejected.append({"job": job["name"], "gres": gres, "error": r.stderr.strip()[:200]})
            return None
        jid = int(r.stdout.strip().split(";")[0])
        shares_req = job["gpus"]
        with self.lock:
            self.jobs[jid] = {"name": job["name"], "kind": kind, "gres": gres, "job": job,
                              "gpus": shares_req, "submitted_at": self.now(), "state": "PENDING",
                              "first_start": None, "end": None, "restarts": 0, "running": False,
                              "shares": {}, "units": 0, "done_rt": 0.0, "seg_rt": 0.0, "seg_work": 0.0,
                              "ckpt_work": 0.0, "ckpt_rt": 0.0, "work": 0.0, "lost_work": 0.0,
                              "borrowed_unit_s": 0.0, "lost_unit_s": 0.0, "runs": 0, "slurm": None,
                              "closing": False}
        return jid

    def now(self):
        return time.monotonic() - self.t0

    def submitter(self):
        for job in self.w["jobs"]:
            delay = job["submit"] - self.now()
            if delay > 0 and self.stop.wait(delay):
                return
            if self.now() > self.a.window:
                return
            gres, kind = gres_request(self.policy, job, self.S)
            self.submit_lag.append(max(0.0, self.now() - job["submit"]))
            self.submit(job, gres, kind)

    def backlog(self):
        """P4: borrow-only training jobs (100 % busy, checkpointing), always some pending."""
        while not self.stop.wait(2):
            with self.lock:
                pending = sum(1 for r in self.jobs.values() if r["kind"] == "backlog" and r["state"] == "PENDING")
            for _ in range(self.a.backlog_depth - pending):
                self.backlog_seq += 1
                job = {"name": f"backlog-{self.backlog_seq}", "duration": float(self.a.backlog_dur),
                       "gpus": self.a.backlog_units / self.S, "series": [100.0], "series_period": 1.0,
                       "series_phase": 0, "fractional": True, "qos": "BE"}
                jid = self.submit(job, f"vborrow:{self.a.backlog_units}", "borrower")
                if jid is not None:
                    with self.lock:
                        self.jobs[jid]["kind"] = "backlog"

    # -- the driver's clock: telemetry, run segments, samples
    def show(self, jid):
        r = self.c.run(["scontrol", "show", "job", "-d", str(jid)], check=False, timeout=30)
        return parse_job(r.stdout) if r.returncode == 0 else None

    def end_segment(self, rec, requeued):
        if requeued:  # the work since the last checkpoint is lost
            rec["work"] += rec["ckpt_work"]
            rec["lost_work"] += rec["seg_work"] - rec["ckpt_work"]
            rec["lost_unit_s"] += (rec["seg_rt"] - rec["ckpt_rt"]) * rec["units"]
            rec["done_rt"] += rec["ckpt_rt"]
        else:
            rec["work"] += rec["seg_work"]
            rec["done_rt"] += rec["seg_rt"]
        rec.update(running=False, seg_rt=0.0, seg_work=0.0, ckpt_work=0.0, ckpt_rt=0.0, shares={})

    def settle(self, jid, rec, at_end=False):
        """A borrower that showed COMPLETING: ended (COMPLETED, FAILED...) or
        requeued (PENDING, or running again with more Restarts). True when it
        is running again; at the window's end one still leaving counts as
        requeued (its work up to its last checkpoint)."""
        info = self.show(jid)
        final = info["state"] if info else "GONE"
        if final == "COMPLETING" and not at_end:
            return False
        requeued = final in REQUEUED_STATES or final in ("RUNNING", "COMPLETING") or (
            info is not None and info["restarts"] > rec["restarts"])
        self.run_ended(rec, requeued, final, info)
        return requeued and final == "RUNNING"

    def run_ended(self, rec, requeued, final, info):
        """A run is over: requeued (pending again), or the job ended."""
        with self.lock:
            rec["closing"] = False
            self.end_segment(rec, requeued)
            rec["state"] = "PENDING" if requeued else final
            if not requeued:
                rec["end"] = info["end"] if info else None
                rec["end_rel"] = self.now()
                rec["slurm"] = info

    def poll(self):
        r = self.c.run(["squeue", "-h", "-o", "%i %T"], check=False, timeout=30)
        states = {}
        for line in r.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit():
                states[int(parts[0])] = parts[1]
        with self.lock:
            known = dict(self.jobs)
        for jid, rec in known.items():
            st = states.get(jid)
            if rec["end"] is not None:
                continue
            if rec["closing"]:
                if st == "COMPLETING" or not self.settle(jid, rec):
                    continue  # still leaving, or left and not running again
                st = "RUNNING"  # requeued, and already running again
            if st == "RUNNING" and not rec["running"]:
                info = self.show(jid)
                if not info or info["state"] != "RUNNING":
                    continue
                shares, units = device_shares(info["holds"], self.S)
                with self.lock:
                    rec.update(running=True, shares=shares, units=units, restarts=info["restarts"],
                               state="RUNNING", runs=rec["runs"] + 1)
                    if rec["first_start"] is None:
                        rec["first_start"] = info["start"]
                        rec["submit_wall"] = info["submit"]
            elif rec["running"] and st != "RUNNING":
                info = self.show(jid)
                final = info["state"] if info else "GONE"
                requeued = final in REQUEUED_STATES or (
                    info is not None and info["restarts"] > rec["restarts"] and final != "COMPLETED")
                if final == "RUNNING" and not requeued:
                    continue  # squeue raced; look again next tick
                if final == "COMPLETING" and not requeued:
                    if rec["kind"] != "owner":
                        # A requeue also shows COMPLETING (before Restarts
                        # grows): its run stops here, and whether it ended
                        # or was requeued is seen when it leaves (settle).
                        with self.lock:
                            rec.update(running=False, closing=True, state="COMPLETING")
                        continue
                    final = "COMPLETED"  # an owner's script ended: no more work (the epilog may still run)
                self.run_ended(rec, requeued, final, info)
            elif st == "PENDING":
                rec["state"] = "PENDING"

    def advance(self, dt):
        """dt seconds of work by every running job; the telemetry files for now."""
        dev_busy = {d: 0.0 for d in self.devices}
        dev_jobs = {d: [] for d in self.devices}
        owned = {d: 0.0 for d in self.devices}  # the device's share owners hold
        with self.lock:
            for jid, rec in self.jobs.items():
                if not rec["running"]:
                    continue
                rt = rec["done_rt"] + rec["seg_rt"]
                busy = W.busy_at(rec["job"], rt)
                total = sum(rec["shares"].values()) or 1.0
                lends = rec["kind"] == "owner" and not rec["gres"].startswith("shard")  # slices and whole GPUs lend
                for d, share in rec["shares"].items():
                    pct = busy * rec["gpus"] * share / total
                    if rec["kind"] == "owner" and d in owned:
                        owned[d] += share
                    if d in dev_busy:
                        dev_busy[d] += pct
                        dev_jobs[d].append((jid, pct))
                    if lends and pct < IDLE_BELOW:  # what the controller sees as idle: lendable
                        self.idle_lendable_slice_s += share * self.S * dt
                rec["seg_rt"] += dt
                rec["seg_work"] += rec["gpus"] * busy / 100.0 * dt
                if rec["kind"] != "owner":
                    rec["borrowed_unit_s"] += rec["units"] * dt
                    if rec["seg_rt"] >= rec["ckpt_rt"] + self.a.ckpt:
                        rec["ckpt_rt"] = rec["seg_rt"] - (rec["seg_rt"] - rec["ckpt_rt"]) % self.a.ckpt
                        rec["ckpt_work"] = rec["seg_work"]
            if self.policy in ("P3", "P4"):
                self.free_lendable_slice_s += sum(max(0.0, 1.0 - v) for v in owned.values()) * self.S * dt
        for (node, d), busy in dev_busy.items():
            lines = [f"busy {min(100.0, busy):.2f}"] + [f"job {j} busy {min(100.0, p):.2f}" for j, p in dev_jobs[(node, d)]]
            path = self.c.dir / "telemetry" / node / f"nvidia{d}"
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text("\n".join(lines) + "\n")
            os.replace(tmp, path)
        return dev_busy

    def sample(self, dev_busy):
        alloc = {d: 0.0 for d in self.devices}
        with self.lock:
            pending = sum(1 for r in self.jobs.values() if r["state"] == "PENDING" and r["kind"] != "backlog")
            backlog = sum(1 for r in self.jobs.values() if r["state"] == "PENDING" and r["kind"] == "backlog")
            running = sum(1 for r in self.jobs.values() if r["running"])
            for r in self.jobs.values():
                if r["running"] and r["kind"] == "owner":  # borrowers sit on owners' slices
                    for d, s in r["shares"].items():
                        if d in alloc:
                            alloc[d] += s
        self.samples.append({
            "t": round(self.now(), 2), "pending": pending, "backlog_pending": backlog, "running": running,
            "allocated": round(sum(min(1.0, v) for v in alloc.values()) / self.capacity, 4),
            "partly_used": round(sum(1 for v in alloc.values() if 0 < v < 1 - 1e-9) / self.capacity, 4),
            # devices whose holders add up to more than the device (stock shards beside a whole GPU)
            "double_booked": round(sum(1 for v in alloc.values() if v > 1 + 1e-9) / self.capacity, 4),
            "busy": round(sum(min(100.0, v) for v in dev_busy.values()) / 100.0 / self.capacity, 4)})

    def driver(self):
        last = self.now()
        next_sample = 0.0
        while not self.stop.is_set():
            try:
                self.poll()
                t = self.now()
                dev_busy = self.advance(max(0.0, t - last))
                last = t
                if t >= next_sample:
                    self.sample(dev_busy)
                    next_sample = t + self.a.sample
            except Exception as e:  # noqa: BLE001 - logged, the run goes on
                self.errors.append(f"{self.now():.1f}s: {type(e).__name__}: {e}")
            self.stop.wait(max(0.0, 1.0 - (self.now() - last)))

    def run(self):
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=self.submitter, daemon=True),
                   threading.Thread(target=self.driver, daemon=True)]
        if self.policy == "P4":
            threads.append(threading.Thread(target=self.backlog, daemon=True))
        for t in threads:
            t.start()
        while self.now() < self.a.window:
            time.sleep(0.5)
        self.stop.set()
        for t in threads:
            t.join(timeout=120)
        for jid, rec in list(self.jobs.items()):  # borrowers still leaving at the window's end
            if rec["closing"]:
                self.settle(jid, rec, at_end=True)
        with self.lock:
            for rec in self.jobs.values():  # still running at the window's end
                if rec["running"]:
                    if rec["kind"] == "owner":
                        rec["work"] += rec["seg_work"]
                    else:  # counted up to the last checkpoint only
                        rec["work"] += rec["ckpt_work"]
        return self.collect()

    # -- the end
    def collect(self):
        c = self.c
        sdiag = c.run(["sdiag"], check=False).stdout
        log = c.log("slurmctld")
        reclaims = []
        for m in re.finditer(r"reclaim JobId=(\d+) done \(([\w-]+)\): signal \S+ s, requeue (\S+) s, "
                             r"device free (\d+) s", log):
            reclaims.append({"job": int(m.group(1)), "reason": m.group(2), "requeue_s": m.group(3),
                             "device_free_s": int(m.group(4))})
        started = len(re.findall(r"lending: reclaim JobId=\d+ from ", log))
        loans = len(re.findall(r" lent to JobId=\d+", log))
        return {"sdiag": parse_sdiag(sdiag), "sdiag_text": sdiag, "reclaims": reclaims,
                "reclaims_started": started, "loans": loans}


def source_commit():
    """The checkout's commit (with -dirty when its tracked files differ), or None outside git: the
    plugins replayed are this tree's build only if build/stage was made from it."""
    top = Path(__file__).resolve().parent.parent.parent
    try:
        head = subprocess.run(["git", "-C", str(top), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(top), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def private_plugin_copy(plugin_dir, workdir):
    """The plugins copied into the run's own directory: rebuilding build/stage during a run
    (it lasts over an hour) must not change what sbatch and slurmstepd load meanwhile."""
    dst = Path(workdir) / "plugins"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(plugin_dir, dst)
    return str(dst)


def find_plugin_dir():
    found = sorted((REPO / "build" / "stage").rglob("gres_vslice.so"))
    return str(found[0].parent) if found else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace-dir", default=W.default_trace_dir())
    ap.add_argument("--plugin-dir", default=None, help="staged flexslurm plugins (default: build/stage)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nodes", type=int, default=16)
    ap.add_argument("--gpus-per-node", type=int, default=8, choices=[1, 2, 4, 8])
    ap.add_argument("--slices", type=int, default=8, help="slices (and shards, borrow units) per GPU")
    ap.add_argument("--window", type=float, default=900, help="arrival and measurement window, compressed s")
    ap.add_argument("--dur-div", type=float, default=10)
    ap.add_argument("--dur-cap", type=float, default=300)
    ap.add_argument("--target-load", type=float, default=1.1)
    ap.add_argument("--ckpt", type=int, default=10, help="a borrower checkpoints every C s of its run time")
    ap.add_argument("--backlog-depth", type=int, default=None, help="P4: backlog jobs kept pending")
    ap.add_argument("--backlog-units", type=int, default=1, help="P4: borrow units per backlog job")
    ap.add_argument("--backlog-dur", type=int, default=None, help="P4: a backlog job's work, s (default dur-cap)")
    ap.add_argument("--sample", type=float, default=2.0, help="seconds between samples")
    ap.add_argument("--policies", default=",".join(ALL_POLICIES))
    ap.add_argument("--workdir", default=str(REPO / "build" / "replay"))
    ap.add_argument("--out", default=None, help="results directory (default bench/replay; smoke: build/replay-smoke)")
    ap.add_argument("--label", default="", help="a line on top of RESULTS.md (e.g. 'pipeline check')")
    ap.add_argument("--notes", help="a Markdown file appended to RESULTS.md (what limits each figure)")
    ap.add_argument("--report", metavar="RUN_JSON", help="only rewrite results.json, RESULTS.md and the plots "
                    "from OUT/runs (the settings and plots of this stored run)")
    ap.add_argument("--smoke", action="store_true", help="tiny sample, P0 and P2, 1 node x 4 GPUs, ~2 minutes")
    a = ap.parse_args(argv)
    if a.smoke:
        a.nodes, a.gpus_per_node, a.window, a.dur_div, a.dur_cap = 1, 4, 45, 30, 20
        a.policies, a.seed = "P0,P2", 4
        a.out = a.out or str(REPO / "build" / "replay-smoke" / "out")
        a.workdir = str(REPO / "build" / "replay-smoke")
        a.label = a.label or "smoke (pipeline check, not a benchmark result)"
    out_dir = Path(a.out or HERE)
    if a.report:
        r = json.loads(Path(a.report).read_text())
        publish(out_dir, settings_key(r["settings"]), a.label, r["series"], a.notes)
        print(f"replay: {out_dir}/RESULTS.md, results.json rewritten")
        return 0
    if not a.trace_dir or not os.path.exists(os.path.join(a.trace_dir, W.OPENB)):
        print("replay: no trace directory (give --trace-dir; bench/replay/README.md says how to make one): skipped")
        return 0
    a.plugin_dir = a.plugin_dir or find_plugin_dir()
    if not a.plugin_dir:
        print("replay: no staged plugins (run scripts/build.sh or give --plugin-dir)")
        return 1
    a.plugin_dir = private_plugin_copy(a.plugin_dir, a.workdir)
    a.backlog_depth = a.backlog_depth or max(2, a.nodes * a.gpus_per_node // 2)
    a.backlog_dur = a.backlog_dur or int(a.dur_cap)
    policies = [p.strip() for p in a.policies.split(",") if p.strip()]
    bad = [p for p in policies if p not in ALL_POLICIES]
    if bad:
        ap.error(f"unknown policies {bad}; choose from {ALL_POLICIES}")
    w = W.build(a.trace_dir, a.seed, a.nodes, a.gpus_per_node, a.window, dur_div=a.dur_div,
                dur_cap=a.dur_cap, target_load=a.target_load)
    settings = {"seed": a.seed, "nodes": a.nodes, "gpus_per_node": a.gpus_per_node, "window": a.window,
                "dur_div": a.dur_div, "dur_cap": a.dur_cap, "slices": a.slices, "target_load": a.target_load,
                "ckpt": a.ckpt, "backlog_depth": a.backlog_depth, "backlog_units": a.backlog_units,
                "lending_timers_s": lending_timers(a.dur_div), "sched": SCHED_PARAMS}
    print(f"replay: seed {a.seed}, {a.nodes}x{a.gpus_per_node}, {len(w['jobs'])} jobs over {a.window:.0f} s, "
          f"policies {','.join(policies)}", flush=True)
    started = datetime.now().isoformat(timespec="seconds")
    source = source_commit()
    t_start = time.monotonic()
    per_policy, series = {}, {}
    for p in policies:
        t = time.monotonic()
        with LocalCluster(Path(a.workdir) / p, a.plugin_dir, **cluster_kwargs(p, a)) as c:
            rp = Replay(c, p, w, a)
            extra = rp.run()
            per_policy[p] = metrics(rp, extra, a.window)
            series[p] = rp.samples
            (Path(a.workdir) / f"{p}-sdiag.txt").write_text(extra["sdiag_text"])
            (Path(a.workdir) / f"{p}-jobs.json").write_text(json.dumps(
                {j: dict({k: v for k, v in r.items() if k not in ("job", "shares")},
                         shares={f"{n}/{d}": v for (n, d), v in r["shares"].items()}) for j, r in rp.jobs.items()},
                default=str, indent=0))
            if rp.rejected:
                (Path(a.workdir) / f"{p}-rejected.json").write_text(json.dumps(rp.rejected, indent=1))
        m = per_policy[p]
        print(f"replay: {p}: busy {m['busy_util']:.4f}, allocated {m['allocated_fraction']}, finished "
              f"{m['finished']}/{m['jobs_submitted']}, owners p95 wait {m['wait_owners']['p95']}, "
              f"loans {m['loans']}, reclaims {m['reclaims']}, {time.monotonic() - t:.0f} s", flush=True)
    with_ratios(per_policy)
    cmd = "python3 bench/replay/replay.py " + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:]))
    run = {"settings": settings, "started": started, "source": source, "wall_s": time.monotonic() - t_start,
           "command": cmd,
           "workload": W.describe(w), "policies": per_policy,
           "series": {p: s for p, s in series.items()}}
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    tag = f"seed{a.seed}-{a.nodes}x{a.gpus_per_node}-w{int(a.window)}"
    (out_dir / "runs" / f"{tag}.json").write_text(json.dumps(run, indent=1))
    publish(out_dir, settings_key(settings), a.label, series, a.notes)
    if a.smoke:  # the pipeline works: jobs ran under each policy, the driver saw them, nothing raised
        bad = [p for p, m in per_policy.items() if not m["wait_all"]["started"] or not m["busy_util"]
               or m["driver_errors"] or not series.get(p)]
        if bad:
            print(f"replay: smoke FAILED for {','.join(bad)} (see {out_dir}/RESULTS.md and {a.workdir})")
            return 1
    p0 = per_policy.get("P0", {}).get("allocated_fraction")
    print(f"replay: {out_dir}/RESULTS.md, results.json; P0 allocated fraction {p0}"
          f"{' (below 0.85: not saturated)' if p0 is not None and p0 < 0.85 else ''}; "
          f"{time.monotonic() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
