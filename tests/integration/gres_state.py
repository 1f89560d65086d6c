# SPDX-License-Identifier: GPL-2.0-or-later
"""Who holds which device, read from `scontrol show job -d` (all jobs)."""

import re
from collections import defaultdict


def parse_idx(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def expand_hostlist(text):
    """f[1-2,4] -> [f1, f2, f4]; plain names pass through."""
    m = re.fullmatch(r"([^\[]*)\[([^\]]+)\](.*)", text)
    if not m:
        return [text]
    prefix, ranges, suffix = m.groups()
    out = []
    for part in ranges.split(","):
        a, _, b = part.partition("-")
        for i in range(int(a), int(b or a) + 1):
            out.append(f"{prefix}{str(i).zfill(len(a))}{suffix}")
    return out


def holdings(show_job_d_output):
    """[(job, node, gres name, [unit indices])] for running jobs."""
    rows = []
    for block in show_job_d_output.split("\n\n"):
        m = re.search(r"JobId=(\d+)", block)
        if not m or "JobState=RUNNING" not in block:
            continue
        job = int(m.group(1))
        for nodes, gres in re.findall(r"^\s+Nodes=(\S+) CPU_IDs=\S+ Mem=\S+ GRES=(\S*)", block, re.M):
            for node in expand_hostlist(nodes):
                for name, idx in re.findall(r"(gpu|vslice)(?::[^:(,]+)?:\d+\(IDX:([^)]*)\)", gres):
                    rows.append((job, node, name, parse_idx(idx)))
    return rows


def sliced_devices(show_job_d_output, slices_per_device):
    """The devices (sorted indices) whose slices the running jobs in the output hold."""
    return sorted({u // slices_per_device for _job, _node, name, idx in holdings(show_job_d_output)
                   if name == "vslice" for u in idx})


def device_conflicts(rows, slices_per_device):
    """Devices held whole by one job while another (or it) holds a slice, and
    units held twice. Empty when exclusivity holds."""
    whole = defaultdict(set)   # (node, device) -> jobs
    sliced = defaultdict(set)  # (node, device) -> jobs
    units = defaultdict(list)  # (node, name, unit) -> jobs
    for job, node, name, idx in rows:
        for u in idx:
            units[(node, name, u)].append(job)
            if name == "gpu":
                whole[(node, u)].add(job)
            else:
                sliced[(node, u // slices_per_device)].add(job)
    problems = [f"{k} held whole by {sorted(whole[k])} and sliced by {sorted(sliced[k])}"
                for k in whole if k in sliced]
    problems += [f"{k} held by {v}" for k, v in units.items() if len(v) > 1]
    problems += [f"{k} held whole by {sorted(v)}" for k, v in whole.items() if len(v) > 1]
    return problems


def random_stream(c, seed, submissions, slice_counts, gpu_share, sleeps, slices_per_device, timeout, tail=10):
    """Submits a seeded random mix of `--gres=gpu:1` and `--gres=vslice:k` jobs, one per loop, and checks every
    snapshot of `scontrol show job -d` for device conflicts until the last `tail` jobs ended. Returns
    (snapshots, most jobs running at once, snapshots with whole-GPU and slice jobs running together, final states)."""
    import random
    import time

    rng = random.Random(seed)
    submitted, checks, max_running, mixed = [], 0, 0, 0
    deadline = time.monotonic() + timeout
    while len(submitted) < submissions or any(c.job_state(j) in ("PENDING", "RUNNING") for j in submitted[-tail:]):
        if time.monotonic() > deadline:
            raise AssertionError(f"stream did not finish: {len(submitted)} submitted")
        if len(submitted) < submissions:
            gres = "gpu:1" if rng.random() < gpu_share else f"vslice:{rng.choice(slice_counts)}"
            sleep = rng.choice(sleeps)
            submitted.append(c.sbatch(f"--gres={gres}", script=f"#!/bin/bash\nsleep {sleep}\n"))
        rows = holdings(c.run(["scontrol", "show", "job", "-d"]).stdout)
        max_running = max(max_running, len({r[0] for r in rows}))
        mixed += {r[2] for r in rows} == {"gpu", "vslice"}
        problems = device_conflicts(rows, slices_per_device)
        checks += 1
        if problems:
            raise AssertionError(f"after {len(submitted)} submissions: " + "; ".join(problems))
        time.sleep(0.05)
    return checks, max_running, mixed, [c.wait_job(j) for j in submitted]
