# SPDX-License-Identifier: GPL-2.0-or-later
"""The replay's figures from a run's records: metrics per policy, ratios to
P0, medians over seeds, results.json, RESULTS.md and the PNG plots."""
import json
import math
import re
import statistics
import struct
import zlib
from pathlib import Path


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
    # what lending may give: idle owners' slices, and (lending.free_slices) slices no owner holds
    lendable = rp.idle_lendable_slice_s + rp.free_lendable_slice_s
    lat = [x["device_free_s"] for x in extra["reclaims"]]
    sd = extra["sdiag"]
    return {
        "jobs_submitted": len(trace), "rejected": len(rp.rejected),
        "busy_util": round(sum(r["work"] for r in jobs) / cap_s, 5),
        "busy_util_trace_only": round(sum(r["work"] for r in trace) / cap_s, 5),
        "allocated_fraction": round(statistics.mean(s["allocated"] for s in samples), 4) if samples else None,
        "partly_used_fraction": round(statistics.mean(s["partly_used"] for s in samples), 4) if samples else None,
        "double_booked_fraction": (round(statistics.mean(s["double_booked"] for s in samples), 4)
                                   if samples and "double_booked" in samples[0] else None),
        "mean_queue": round(statistics.mean(s["pending"] for s in samples), 2) if samples else None,
        "wait_all": wstats(trace), "wait_owners": wstats(owners), "wait_borrowers": wstats(borrowers),
        "finished": sum(1 for r in trace if r["end"] is not None and r["state"] == "COMPLETED"),
        "finished_backlog": sum(1 for r in jobs if r["kind"] == "backlog" and r["state"] == "COMPLETED"),
        "borrowed_slice_s": round(borrowed, 1), "lost_slice_s": round(lost, 1),
        "lost_borrowed_fraction": round(lost / borrowed, 4) if borrowed else None,
        "lendable_idle_slice_s": round(rp.idle_lendable_slice_s, 1),
        "lendable_free_slice_s": round(rp.free_lendable_slice_s, 1),
        "borrowed_of_lendable": (round(borrowed / lendable, 4) if lendable else None),
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
            .format(**s))


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


def of_ceiling(run, m):
    """The trace jobs' busy utilisation as a share of the seed's busy ceiling (workload.py: every
    trace job running from its submit time, never waiting), or None where the run did not record it.
    P4's backlog is not in the trace, so not in either."""
    c = run["workload"].get("busy_ceiling")
    busy = m.get("busy_util_trace_only")
    return round(busy / c, 4) if c and busy is not None else None


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
         "| policy | busy ratio | busy of ceiling | finished ratio | p95 wait ratio | owners p95 vs P2 | lost/borrowed | "
         "P0 allocated | seeds |",
         "|---|---|---|---|---|---|---|---|---|"]
    for p, r in results.items():
        share = median_or_none([of_ceiling(run, run["policies"][p]) for run in runs if p in run["policies"]])
        L.append(f"| {p} | {fmt(r['busy_ratio'])} | {fmt(share)} | {fmt(r['finished_ratio'])} | "
                 f"{fmt(r['p95_wait_ratio'])} | {fmt(r['owners_p95_vs_P2'])} | {fmt(r['lost_borrowed_fraction'])} | "
                 f"{fmt(r['p0_allocated_fraction'])} | {r['seeds']} |")
    L += ["", "Busy of ceiling: the trace jobs' busy utilisation (P4's backlog left out) over the seed's `busy_ceiling`",
          "(its workload line), theirs if every one ran from its submit time and never waited: no policy exceeds it."]
    for r in runs:
        s = r["settings"]
        L += ["", f"## Seed {s['seed']} ({r['started']}, {r['wall_s']:.0f} s wall)", "",
              f"Workload: {json.dumps(r['workload'])}", "",
              "| policy | busy util | of ceiling | allocated | partly used | finished | wait p50/p95/p99 owners (s) | "
              "wait p50/p95/p99 borrowers (s) | borrowed slice-s | lost | loans | reclaims (free p50/p95 s) | "
              "main cycle mean/max (us) | bf cycle mean/max (us) | mean queue |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p, m in r["policies"].items():
            wo, wb, ra = m["wait_owners"], m["wait_borrowers"], m["ratios"]
            L.append(
                f"| {p} | {fmt(m['busy_util'], 4)} ({fmt(ra.get('busy_util'), 2)}x) | {fmt(of_ceiling(r, m))} | "
                f"{fmt(m['allocated_fraction'])} | "
                f"{fmt(m['partly_used_fraction'])}"
                f"{'' if m.get('double_booked_fraction') is None else ' (double-booked ' + fmt(m['double_booked_fraction']) + ')'} | "
                f"{m['finished']} ({fmt(ra.get('finished'), 2)}x) | "
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
        L += ["", f"Command: `{r['command']}`" + (f" (source {r['source']})" if r.get("source") else "")]
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
