#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Make the replay's trace directory from a checkout of alibaba/clusterdata.

Usage: make_trace_dir.py CLUSTERDATA_CHECKOUT [--out DIR]

Reads (no Git LFS needed):
  cluster-trace-gpu-v2023/csv/openb_pod_list_default.csv    the openb pods (Weng et al., ATC '23)
  cluster-trace-gpu-v2023/csv/openb_node_list_gpu_node.csv  the openb GPU nodes
  cluster-trace-v2026-GenAI/pod_gpu_duty_cycle_anon.tar.gz  GenAI per-pod GPU busy % (Lin et al.)
and writes, into DIR, the four files bench/replay/workload.py reads, with the
same names and columns as ../shared/traces:
  alibaba_gpu_v2023_openb_jobs.csv            one row per pod, sorted by submit time
  alibaba_gpu_v2023_openb_nodes.csv           one row per node
  alibaba_genai_v2026_pod_util.csv            one row per GenAI pod (summary)
  alibaba_genai_v2026_pod_util_series.csv.gz  every GenAI sample: t_s, pod_id, gpu_util_pct

Every output row comes from one source row; nothing is filled in (openb has no
utilisation: gpu_util_pct stays empty; GenAI has no request size: n_gpus stays
empty). DIR defaults to ../shared/traces beside the flexslurm checkout when
that directory exists. The inputs' SHA-256 are checked against the snapshot
the benchmark was made with (commit 7a6c496e, 2026-04-27); a different input
is converted all the same, with one warning line.

The data have no confirmed licence: do not commit the outputs into the
project. Python 3 standard library only.
"""
import argparse
import csv
import gzip
import hashlib
import io
import os
import statistics
import sys
import tarfile

OPENB_PODS = "cluster-trace-gpu-v2023/csv/openb_pod_list_default.csv"
OPENB_NODES = "cluster-trace-gpu-v2023/csv/openb_node_list_gpu_node.csv"
GENAI_TGZ = "cluster-trace-v2026-GenAI/pod_gpu_duty_cycle_anon.tar.gz"
GENAI_MEMBER = "pod_gpu_duty_cycle_anon.csv"
SHA256 = {
    OPENB_PODS: "1ee7ed79c27a3b0861cda8ddba86a004c6aba904caafa329a76ae93ca63834a8",
    OPENB_NODES: "2beca64b4d3dfa342036a34b56a495c6cef9225db836c81f541282cb1df320b5",
    GENAI_TGZ: "c4070218189b2811995c30dd9fefb8a793a83a54dccebe7b41cab2d123916855",
}

JOB_COLUMNS = ["job_id", "submit_s", "start_s", "end_s", "wait_s", "duration_s", "n_gpus", "num_gpu",
               "gpu_milli", "gpu_util_pct", "cpu_cores", "mem_mib", "gpu_spec", "qos", "status"]
NODE_COLUMNS = ["node", "cpu_cores", "mem_mib", "n_gpus", "gpu_model"]
UTIL_COLUMNS = ["job_id", "container_hash", "first_s", "last_s", "observed_s", "n_samples", "n_gpus",
                "gpu_util_pct", "gpu_util_median_pct", "gpu_util_p95_pct", "share_samples_below_10pct"]


def default_out():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    d = os.path.normpath(os.path.join(repo, "..", "shared", "traces"))
    return d if os.path.isdir(d) else None


def check_sha(src, rel):
    h = hashlib.sha256()
    with open(os.path.join(src, rel), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != SHA256[rel]:
        print(f"make_trace_dir: warning: {rel} differs from the snapshot the benchmark was made with "
              f"(sha256 {h.hexdigest()})")


def milli_text(milli):
    """cpu_milli or gpu share as the shortest decimal (12000 -> 12, 470 -> 0.47)."""
    return "%g" % (milli / 1000.0)


def openb_jobs(src):
    rows = []
    with open(os.path.join(src, OPENB_PODS), newline="") as f:
        for r in csv.DictReader(f):
            created, deleted = int(r["creation_time"]), int(r["deletion_time"])
            sched = r["scheduled_time"].strip()
            started = int(sched) if sched else None
            num_gpu, milli = int(r["num_gpu"]), int(r["gpu_milli"])
            rows.append({
                "job_id": r["name"],
                "submit_s": created,
                "start_s": "" if started is None else started,
                "end_s": deleted,
                "wait_s": "" if started is None else started - created,
                "duration_s": "" if started is None else deleted - started,
                "n_gpus": milli_text(num_gpu * milli),
                "num_gpu": num_gpu,
                "gpu_milli": milli,
                "gpu_util_pct": "",  # openb measured none
                "cpu_cores": milli_text(int(r["cpu_milli"])),
                "mem_mib": r["memory_mib"],
                "gpu_spec": r["gpu_spec"],
                "qos": r["qos"],
                "status": r["pod_phase"],
            })
    rows.sort(key=lambda x: (x["submit_s"], x["job_id"]))
    return rows


def openb_nodes(src):
    with open(os.path.join(src, OPENB_NODES), newline="") as f:
        return [{"node": r["sn"], "cpu_cores": milli_text(int(r["cpu_milli"])), "mem_mib": r["memory_mib"],
                 "n_gpus": r["gpu"], "gpu_model": r["model"]} for r in csv.DictReader(f)]


def genai_samples(src):
    """[(t_s, container hash, busy %)] sorted by time then hash; t_s from the file's first sample."""
    with tarfile.open(os.path.join(src, GENAI_TGZ), "r:gz") as t:
        member = t.extractfile(t.getmember(GENAI_MEMBER))
        text = io.TextIOWrapper(member, encoding="utf-8")
        raw = [(float(r["timestamp_anon"]), r["container_ip"], float(r["value"])) for r in csv.DictReader(text)]
    first = min(s[0] for s in raw)
    return sorted(((ts - first, ip, v) for ts, ip, v in raw), key=lambda s: (s[0], s[1]))


def nearest_rank_p95(values):
    v = sorted(values)
    return v[min(len(v) - 1, int(0.95 * (len(v) - 1) + 0.5))]


def write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkout", help="a checkout of https://github.com/alibaba/clusterdata")
    ap.add_argument("--out", default=default_out(), help="output directory (default ../shared/traces)")
    a = ap.parse_args(argv)
    if not a.out:
        ap.error("no --out given and ../shared/traces does not exist")
    for rel in SHA256:
        if not os.path.exists(os.path.join(a.checkout, rel)):
            ap.error(f"{os.path.join(a.checkout, rel)}: not found (is this a clusterdata checkout?)")
        check_sha(a.checkout, rel)
    os.makedirs(a.out, exist_ok=True)

    jobs = openb_jobs(a.checkout)
    write_csv(os.path.join(a.out, "alibaba_gpu_v2023_openb_jobs.csv"), JOB_COLUMNS, jobs)
    nodes = openb_nodes(a.checkout)
    write_csv(os.path.join(a.out, "alibaba_gpu_v2023_openb_nodes.csv"), NODE_COLUMNS, nodes)

    samples = genai_samples(a.checkout)
    pod_id = {}
    for _, ip, _ in samples:  # p000.. in order of first appearance, ties by hash
        pod_id.setdefault(ip, "p%03d" % len(pod_id))
    with gzip.open(os.path.join(a.out, "alibaba_genai_v2026_pod_util_series.csv.gz"), "wt", newline="",
                   compresslevel=9) as g:
        w = csv.writer(g)
        w.writerow(["t_s", "pod_id", "gpu_util_pct"])
        for ts, ip, v in samples:
            w.writerow(["%d" % round(ts), pod_id[ip], "%g" % v])
    per_pod = {}
    for ts, ip, v in samples:
        per_pod.setdefault(ip, []).append((ts, v))
    summary = []
    for ip, pid in sorted(pod_id.items(), key=lambda kv: kv[1]):
        s = sorted(per_pod[ip])
        vals = [v for _, v in s]
        summary.append({
            "job_id": pid, "container_hash": ip,
            "first_s": "%d" % round(s[0][0]), "last_s": "%d" % round(s[-1][0]),
            "observed_s": "%d" % round(s[-1][0] - s[0][0]), "n_samples": len(s), "n_gpus": "",
            "gpu_util_pct": "%.3f" % statistics.mean(vals),
            "gpu_util_median_pct": "%.3f" % statistics.median(vals),
            "gpu_util_p95_pct": "%.3f" % nearest_rank_p95(vals),
            "share_samples_below_10pct": "%.4f" % (sum(v < 10 for v in vals) / len(vals)),
        })
    write_csv(os.path.join(a.out, "alibaba_genai_v2026_pod_util.csv"), UTIL_COLUMNS, summary)
    print(f"make_trace_dir: {a.out}: {len(jobs)} openb pods, {len(nodes)} nodes, {len(pod_id)} GenAI pods, "
          f"{len(samples)} samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
