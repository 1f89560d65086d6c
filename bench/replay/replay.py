#!/usr/bin/env python3
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
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(HERE))

import workload as W  # noqa: E402
from localcluster import DEFAULT_YAML, LocalCluster  # noqa: E402

ALL_POLICIES = ["P0", "P1", "P2", "P3", "P4"]
GTYPE = "t4"  # the GRES type of tools/localcluster.py's nvidia shapes

# The same for every policy: the compressed clock wants a scheduler pass
# every second; time limits are in minutes (Slurm's granularity).
SCHED_PARAMS = ("SchedulerParameters=sched_interval=1,bf_interval=1,bf_resolution=60,bf_window=60,"
                "bf_continue,bf_max_job_test=2000,default_queue_depth=500")
COMMON_CONF = SCHED_PARAMS + "\nMinJobAge=3600\n"

# Product defaults (src/core/model/lending.hpp) in real seconds; the replay
# divides them by the duration compression, like the jobs' durations.
LENDING_REAL_S = {"idle_window": 600, "min_loan": 120, "max_loan": 3600, "cooldown": 300, "grace": 60}
LENDING_FLOOR_S = {"idle_window": 2, "min_loan": 2, "max_loan": 10, "cooldown": 1, "grace": 1}
IDLE_BELOW = 5  # lending.idle_below_percent (product default)


# ------------------------------------------------------------------ policies
def lending_timers(dur_div):
    return {k: max(LENDING_FLOOR_S[k], int(round(v / dur_div))) for k, v in LENDING_REAL_S.items()}


def flex_yaml(slices, lending, dur_div):
    # Slices reserve 80 % of a device's memory, so that lending has the
    # other 20 % to give (a device whose slices reserve all is never lent).
    y = DEFAULT_YAML.replace("    slices: 4\n", f"    slices: {slices}\n    memory_percent: {80 // slices}\n")
    if not lending:
        return y
    t = lending_timers(dur_div)
    return y + f"""\
lending:
  enabled: true
  port: {{lending_port}}
  idle_below_percent: {IDLE_BELOW}
  idle_window: {t['idle_window']}s
  busy_above_percent: 20
  busy_samples: 2
  min_loan: {t['min_loan']}s
  max_loan: {t['max_loan']}s
  cooldown: {t['cooldown']}s
  grace: {t['grace']}s
  report_interval: 1s
  telemetry_timeout: 4s
  hard_stop_after: 2s
  telemetry: file
  telemetry_dir: {{dir}}/telemetry/%n
"""


def cluster_kwargs(policy, a):
    """LocalCluster arguments of one policy: only the lines that define it differ."""
    g, S = a.gpus_per_node, a.slices
    nodes = [f"y{i}" for i in range(1, a.nodes + 1)]
    devs = f"nvidia[0-{g - 1}]" if g > 1 else "nvidia0"

    def prepare(c):
        for n in c.nodes:
            (c.dir / "telemetry" / n).mkdir(parents=True, exist_ok=True)
            for d in range(g):
                (c.dir / "telemetry" / n / f"nvidia{d}").write_text("busy 0\n")

    kw = dict(nodes=a.nodes, prefix="y", shape=f"nvidia-{g}gpu", cpus=max(4, 2 * g * S), slices=S,
              prepare=prepare, extra_conf=COMMON_CONF, flexslurm_yaml=flex_yaml(S, False, a.dur_div))
    if policy == "P0":
        kw.update(select="select/cons_tres", gres_per_node={n: f"gpu:{GTYPE}:{g}" for n in nodes},
                  extra_conf=COMMON_CONF + "GresTypes=gpu\n")
    elif policy == "P1":
        kw.update(select="select/cons_tres",
                  gres_per_node={n: f"gpu:{GTYPE}:{g},shard:{g * S}" for n in nodes},
                  extra_conf=COMMON_CONF + "GresTypes=gpu,shard\n",
                  gres_conf="AutoDetect=off\n" + "".join(
                      f"NodeName={n} Name=gpu Type={GTYPE} File={{dir}}/dev/{n}/{devs}\n"
                      f"NodeName={n} Name=shard Count={g * S} File={{dir}}/dev/{n}/{devs}\n" for n in nodes))
    elif policy == "P2":
        kw.update(select="select/flex")
    else:  # P3, P4: lending
        kw.update(select="select/flex", lending=True, node_addrs=True,
                  flexslurm_yaml=flex_yaml(S, True, a.dur_div))
    return kw


def gres_request(policy, job, S, whole_as_slices=False):
    """(--gres value, kind) for a trace job under a policy; kind is owner or borrower.
    whole_as_slices (not the issue's P2-P4, an experiment): whole-GPU owners ask vslice:S*n, so
    that their idle devices can be lent too (the product lends only vslice owners' slices)."""
    n = job["whole_gpus"]
    k = max(1, math.ceil(job["gpus"] * S - 1e-9))
    if policy in ("P3", "P4") and job["qos"] == "BE":
        return f"vborrow:{k if job['fractional'] else n * S}", "borrower"
    if whole_as_slices and policy != "P0" and policy != "P1" and not job["fractional"]:
        return f"vslice:{n * S}", "owner"
    if not job["fractional"] or policy == "P0":
        return f"gpu:{n}", "owner"
    return (f"shard:{k}" if policy == "P1" else f"vslice:{k}"), "owner"


OWNER_SCRIPT = "#!/bin/bash\nsleep {dur}\n"
# A borrower works in steps of C seconds of its own run time and saves its
# progress after each; requeued, it resumes from the last save and loses the
# part of the step it was in.
BORROWER_SCRIPT = """#!/bin/bash
f={ckpt}/$SLURM_JOB_ID
done=$(cat "$f" 2>/dev/null || echo 0)
while [ "$done" -lt {dur} ]; do
	step=$(( {dur} - done < {c} ? {dur} - done : {c} ))
	sleep "$step"
	done=$((done + step))
	echo "$done" >"$f.tmp" && mv "$f.tmp" "$f"
done
"""


# ------------------------------------------------------------------ parsing
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
                              "borrowed_unit_s": 0.0, "lost_unit_s": 0.0, "runs": 0, "slurm": None}
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
            gres, kind = gres_request(self.policy, job, self.S, self.a.whole_as_slices)
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
                requeued = final in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED") or (
                    info is not None and info["restarts"] > rec["restarts"] and final != "COMPLETED")
                if final == "RUNNING" and not requeued:
                    continue  # squeue raced; look again next tick
                if final == "COMPLETING" and not requeued:
                    final = "COMPLETED"  # its script ended: no more work (the epilog may still run)
                with self.lock:
                    self.end_segment(rec, requeued)
                    rec["state"] = "PENDING" if requeued else final
                    if not requeued:
                        rec["end"] = info["end"] if info else None
                        rec["end_rel"] = self.now()
                        rec["slurm"] = info
            elif st == "PENDING":
                rec["state"] = "PENDING"

    def advance(self, dt):
        """dt seconds of work by every running job; the telemetry files for now."""
        dev_busy = {d: 0.0 for d in self.devices}
        dev_jobs = {d: [] for d in self.devices}
        with self.lock:
            for jid, rec in self.jobs.items():
                if not rec["running"]:
                    continue
                rt = rec["done_rt"] + rec["seg_rt"]
                busy = W.busy_at(rec["job"], rt)
                total = sum(rec["shares"].values()) or 1.0
                lends = rec["kind"] == "owner" and rec["gres"].startswith("vslice")
                for d, share in rec["shares"].items():
                    pct = busy * rec["gpus"] * share / total
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


def parse_sdiag(text):
    out = {}
    sect = None
    for line in text.splitlines():
        if line.startswith("Main schedule statistics"):
            sect = "main"
        elif line.startswith("Backfilling stats"):
            sect = "bf"
        elif sect and ":" in line:
            k, _, v = line.strip().partition(":")
            m = re.match(r"\s*(\d+)", v)
            if m and k in ("Last cycle", "Max cycle", "Mean cycle", "Total cycles", "Cycles since last reset",
                           "Total backfilled jobs (since last slurm start)"):
                out[f"{sect}_{k.lower().replace(' ', '_')}"] = int(m.group(1))
    return out


# ------------------------------------------------------------------ metrics
def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v) - 1, max(0, int(math.ceil(p / 100 * len(v)) - 1)))]


def metrics(rp, extra, window):
    jobs = [r for r in rp.jobs.values()]
    trace = [r for r in jobs if r["kind"] != "backlog"]
    owners = [r for r in trace if r["kind"] == "owner"]
    borrowers = [r for r in trace if r["kind"] == "borrower"]

    def waits(rs):  # a job that never started waited at least until the window's end (censored)
        out = []
        for r in rs:
            if r["first_start"] is not None and r.get("submit_wall"):
                out.append(max(0.0, r["first_start"] - r["submit_wall"]))
            else:
                out.append(max(0.0, window - r["submitted_at"]))
        return out

    def wstats(rs):
        w = waits(rs)
        return {"n": len(w), "started": sum(r["first_start"] is not None for r in rs),
                "p50": pct(w, 50), "p95": pct(w, 95), "p99": pct(w, 99)}

    cap_s = rp.capacity * window
    samples = rp.samples
    borrowed = sum(r["borrowed_unit_s"] for r in jobs if r["kind"] != "owner")
    lost = sum(r["lost_unit_s"] for r in jobs if r["kind"] != "owner")
    lat = [x["device_free_s"] for x in extra["reclaims"]]
    sd = extra["sdiag"]
    return {
        "jobs_submitted": len(trace), "rejected": len(rp.rejected),
        "busy_util": round(sum(r["work"] for r in jobs) / cap_s, 5),
        "busy_util_trace_only": round(sum(r["work"] for r in trace) / cap_s, 5),
        "allocated_fraction": round(statistics.mean(s["allocated"] for s in samples), 4) if samples else None,
        "partly_used_fraction": round(statistics.mean(s["partly_used"] for s in samples), 4) if samples else None,
        "mean_queue": round(statistics.mean(s["pending"] for s in samples), 2) if samples else None,
        "wait_all": wstats(trace), "wait_owners": wstats(owners), "wait_borrowers": wstats(borrowers),
        "finished": sum(1 for r in trace if r["end"] is not None and r["state"] == "COMPLETED"),
        "finished_backlog": sum(1 for r in jobs if r["kind"] == "backlog" and r["state"] == "COMPLETED"),
        "borrowed_slice_s": round(borrowed, 1), "lost_slice_s": round(lost, 1),
        "lost_borrowed_fraction": round(lost / borrowed, 4) if borrowed else None,
        "lendable_idle_slice_s": round(rp.idle_lendable_slice_s, 1),
        "borrowed_of_lendable": round(borrowed / rp.idle_lendable_slice_s, 4) if rp.idle_lendable_slice_s else None,
        "loans": extra["loans"], "reclaims": len(extra["reclaims"]), "reclaims_started": extra["reclaims_started"],
        "reclaim_device_free_p50_s": pct(lat, 50), "reclaim_device_free_p95_s": pct(lat, 95),
        "requeues": sum(max(0, r["runs"] - 1) for r in jobs),
        "sched_main_mean_us": sd.get("main_mean_cycle"), "sched_main_max_us": sd.get("main_max_cycle"),
        "sched_bf_mean_us": sd.get("bf_mean_cycle"), "sched_bf_max_us": sd.get("bf_max_cycle"),
        "submit_lag_p95_s": round(pct(rp.submit_lag, 95) or 0.0, 2),
        "driver_errors": rp.errors[:5],
    }


RATIO_KEYS = ["busy_util", "allocated_fraction", "partly_used_fraction", "finished"]


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return round(a / b, 4)


def with_ratios(per_policy):
    p0 = per_policy.get("P0")
    for p, m in per_policy.items():
        r = {}
        if p0:
            for k in RATIO_KEYS:
                r[k] = ratio(m.get(k), p0.get(k))
            for grp in ("wait_all", "wait_owners"):
                for q in ("p50", "p95", "p99"):
                    r[f"{grp}_{q}"] = ratio(m[grp][q], p0["wait_all"][q])
        p2 = per_policy.get("P2")
        if p2:
            r["owners_p95_vs_P2"] = ratio(m["wait_owners"]["p95"], p2["wait_owners"]["p95"])
        m["ratios"] = r
    return per_policy


# ------------------------------------------------------------------ PNG
def png_plot(path, series, height=120, width=480):
    """Stacked panels, one per (values, ymax, rgb); x is time. No text: see RESULTS.md for the axes."""
    rows = []
    pad = 6
    panels = []
    for values, ymax, rgb in series:
        img = [[(255, 255, 255)] * width for _ in range(height)]
        for y in range(height):  # frame and quarter lines
            img[y][0] = img[y][width - 1] = (0, 0, 0)
        for x in range(width):
            img[0][x] = img[height - 1][x] = (0, 0, 0)
            for q in (1, 2, 3):
                if x % 4 == 0:
                    img[height - 1 - q * (height - 1) // 4][x] = (200, 200, 200)
        n = len(values)
        prev = None
        for i, v in enumerate(values):
            x = 1 + int(i * (width - 3) / max(1, n - 1))
            y = height - 2 - int(max(0.0, min(1.0, v / ymax if ymax else 0)) * (height - 3))
            if prev:
                x0, y0 = prev
                for s in range(max(abs(x - x0), abs(y - y0)) + 1):
                    t = s / max(1, max(abs(x - x0), abs(y - y0)))
                    img[round(y0 + (y - y0) * t)][round(x0 + (x - x0) * t)] = rgb
            prev = (x, y)
        panels.append(img)
    for k, img in enumerate(panels):
        if k:
            rows.extend([[(255, 255, 255)] * width for _ in range(pad)])
        rows.extend(img)
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in rows)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# ------------------------------------------------------------------ report
def settings_key(s):
    return ("{nodes}x{gpus_per_node} window {window}s dur/{dur_div} cap {dur_cap}s slices {slices} load {target_load}"
            .format(**s) + (" whole-as-slices" if s.get("whole_as_slices") else ""))


def median_or_none(values):
    v = [x for x in values if x is not None]
    return round(statistics.median(v), 4) if v else None


def merge(out_dir, key):
    runs = []
    for p in sorted((out_dir / "runs").glob("*.json")):
        r = json.loads(p.read_text())
        if settings_key(r["settings"]) == key:
            runs.append(r)
    policies = sorted({p for r in runs for p in r["policies"]})
    results = {}
    for p in policies:
        rs = [r for r in runs if p in r["policies"]]
        m = [r["policies"][p] for r in rs]
        results[p] = {
            "busy_ratio": median_or_none([x["ratios"].get("busy_util") for x in m]),
            "finished_ratio": median_or_none([x["ratios"].get("finished") for x in m]),
            "p95_wait_ratio": median_or_none([x["ratios"].get("wait_all_p95") for x in m]),
            "owners_p95_vs_P2": median_or_none([x["ratios"].get("owners_p95_vs_P2") for x in m]),
            "lost_borrowed_fraction": median_or_none([x.get("lost_borrowed_fraction") for x in m]),
            "p0_allocated_fraction": median_or_none([r["policies"].get("P0", {}).get("allocated_fraction") for r in rs]),
            "seeds": sorted({r["settings"]["seed"] for r in rs}),
        }
    return runs, results


def fmt(v, nd=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def write_report(out_dir, key, runs, results, label):
    L = [f"# Trace replay results{(' - ' + label) if label else ''}", "",
         f"Settings: {key}. Runs merged: {len(runs)} (seeds {sorted({r['settings']['seed'] for r in runs})}).",
         "Every ratio is against P0 of the same seed; the summary takes the median over seeds.", "",
         "## Summary (results.json)", "",
         "| policy | busy ratio | finished ratio | p95 wait ratio | owners p95 vs P2 | lost/borrowed | P0 allocated | seeds |",
         "|---|---|---|---|---|---|---|---|"]
    for p, r in results.items():
        L.append(f"| {p} | {fmt(r['busy_ratio'])} | {fmt(r['finished_ratio'])} | {fmt(r['p95_wait_ratio'])} | "
                 f"{fmt(r['owners_p95_vs_P2'])} | {fmt(r['lost_borrowed_fraction'])} | "
                 f"{fmt(r['p0_allocated_fraction'])} | {r['seeds']} |")
    for r in runs:
        s = r["settings"]
        L += ["", f"## Seed {s['seed']} ({r['started']}, {r['wall_s']:.0f} s wall)", "",
              f"Workload: {json.dumps(r['workload'])}", "",
              "| policy | busy util | allocated | partly used | finished | wait p50/p95/p99 owners (s) | "
              "wait p50/p95/p99 borrowers (s) | borrowed slice-s | lost | loans | reclaims (free p50/p95 s) | "
              "main cycle mean/max (us) | bf cycle mean/max (us) | mean queue |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p, m in r["policies"].items():
            wo, wb, ra = m["wait_owners"], m["wait_borrowers"], m["ratios"]
            L.append(
                f"| {p} | {fmt(m['busy_util'], 4)} ({fmt(ra.get('busy_util'), 2)}x) | {fmt(m['allocated_fraction'])} | "
                f"{fmt(m['partly_used_fraction'])} | {m['finished']} ({fmt(ra.get('finished'), 2)}x) | "
                f"{fmt(wo['p50'], 0)}/{fmt(wo['p95'], 0)}/{fmt(wo['p99'], 0)} (n {wo['n']}) | "
                f"{fmt(wb['p50'], 0)}/{fmt(wb['p95'], 0)}/{fmt(wb['p99'], 0)} (n {wb['n']}) | "
                f"{fmt(m['borrowed_slice_s'], 0)} | {fmt(m['lost_slice_s'], 0)} | {m['loans']} | "
                f"{m['reclaims']} ({fmt(m['reclaim_device_free_p50_s'])}/{fmt(m['reclaim_device_free_p95_s'])}) | "
                f"{fmt(m['sched_main_mean_us'])}/{fmt(m['sched_main_max_us'])} | "
                f"{fmt(m['sched_bf_mean_us'])}/{fmt(m['sched_bf_max_us'])} | {fmt(m['mean_queue'], 1)} |")
        notes = [f"{p}: {m['rejected']} submissions refused" for p, m in r["policies"].items() if m["rejected"]]
        notes += [f"{p}: driver errors {m['driver_errors']}" for p, m in r["policies"].items() if m["driver_errors"]]
        if notes:
            L += [""] + [f"- {n}" for n in notes]
        L += ["", f"Command: `{r['command']}`"]
    L += ["", "Plots: `plots/<policy>.png` (latest run): top panel busy utilisation (red), bottom panel trace",
          "jobs pending (blue), x = the window.", ""]
    (out_dir / "RESULTS.md").write_text("\n".join(L))


# ------------------------------------------------------------------ main
def publish(out_dir, key, label, series, notes=None):
    """results.json, RESULTS.md (every run in OUT/runs with these settings) and the latest run's plots."""
    runs, results = merge(out_dir, key)
    (out_dir / "results.json").write_text(json.dumps({"settings": key, "label": label, "policies": results},
                                                     indent=1) + "\n")
    write_report(out_dir, key, runs, results, label)
    (out_dir / "plots").mkdir(exist_ok=True)
    # One busy scale for every policy's plot: the run's highest sample, up to the next 0.05.
    bmax = max([x["busy"] for s in series.values() for x in s] + [0.05])
    bmax = math.ceil(bmax * 20) / 20
    for p, s in series.items():
        if s:
            qmax = max(1, max(x["pending"] for x in s))
            png_plot(out_dir / "plots" / f"{p}.png",
                     [([x["busy"] for x in s], bmax, (200, 30, 30)), ([x["pending"] for x in s], qmax, (30, 30, 200))])
    with open(out_dir / "RESULTS.md", "a") as f:
        f.write(f"Plot scales of the latest run: busy 0..{bmax:.2f} of capacity (grey lines at quarters); "
                "queue 0..each policy's own maximum.\n")
        if notes:
            f.write("\n" + Path(notes).read_text())


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
    ap.add_argument("--whole-as-slices", action="store_true",
                    help="experiment, not the issue's policies: whole-GPU owners ask vslice:8n in P2-P4")
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
                "ckpt": a.ckpt, "whole_as_slices": a.whole_as_slices, "backlog_depth": a.backlog_depth, "backlog_units": a.backlog_units,
                "lending_timers_s": lending_timers(a.dur_div), "sched": SCHED_PARAMS}
    print(f"replay: seed {a.seed}, {a.nodes}x{a.gpus_per_node}, {len(w['jobs'])} jobs over {a.window:.0f} s, "
          f"policies {','.join(policies)}", flush=True)
    started = datetime.now().isoformat(timespec="seconds")
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
    run = {"settings": settings, "started": started, "wall_s": time.monotonic() - t_start, "command": cmd,
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
