# SPDX-License-Identifier: GPL-2.0-or-later
"""The slice map (`flexslurm`) against Slurm's own view on a real cluster:
slice jobs and a whole-GPU job running (shown on its device), the JSON compared
with `scontrol show node` (Gres, GresUsed) and `scontrol show job -d` (GRES
IDX), the devices' UUIDs and PCI bus ids (root: the node agents' via the
controller; the nodes' topology has them), the filters, the
text table, a user's view (nobody), the exit codes of a bad option and of an
unreachable controller; then a lender and a borrower, whose slice the map shows
lent and borrowed (root: the lending controller's state too)."""

import json
import os
import re
import subprocess
from pathlib import Path

import lending_scene as scene
from helpers import contains, eq, wait_until

CLONE = "clone"  # a second partition holding the second node only (made by the first test)
# tests/topologies/cluster-nvidia-2gpu.xml (every node's hwloc topology): its T4s' PCI bus ids and NVIDIAUUIDs.
IDENTITIES = [("GPU-5eed0c00-1000-400c-8000-f1e55000c000", "0000:3b:00.0"),
              ("GPU-5eed0c01-1001-400c-8001-f1e55000c001", "0000:af:00.0")]


def _prepare(c):
    scene.prepare(c)
    for node in c.nodes:
        (c.dir / "telemetry" / node / "nvidia1").write_text("busy 0\n")


# cl1, cl2: two T4 each, 4 slices per T4 (8 vslice, 8 vborrow units per node).
CLUSTER = dict(nodes=2, prefix="cl", shape="nvidia-2gpu", cpus=8, select="select/flex",
               flexslurm_yaml=scene.lending_yaml(), lending=True, node_addrs=True, prepare=_prepare)

SLEEPER = "#!/bin/bash\nsleep 100000\n"


def _bin(c, name):
    """A command as installed beside the plugins under test (make install DESTDIR=stage...)."""
    for d in Path(c.plugin_dir).parents:
        if d.name.startswith("stage"):
            found = sorted(d.rglob(f"bin/{name}"))
            if found:
                return str(found[0])
    raise AssertionError(f"{name} not installed beside {c.plugin_dir}")


def _flex(c, *args, user=None, env=None, timeout=60):
    argv = [_bin(c, "flexslurm"), *args]
    if user:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=dict(c.env, **(env or {})), timeout=timeout)


def _map(c, *args, user=None):
    r = _flex(c, "--json", *args, user=user)
    eq(r.returncode, 0, f"flexslurm --json {' '.join(args)}: {r.stderr}")
    m = json.loads(r.stdout)
    eq(m["schema"], 2, "schema")
    return m


def _idx(text):
    """'0-2,5' -> {0, 1, 2, 5}"""
    out = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out |= set(range(int(lo), int(hi or lo) + 1))
    return out


def _slurm_node(c, node):
    """{'total': vslice count, 'used': vslice IDX, 'borrowed': vborrow IDX, 'type': its GRES type} from scontrol."""
    out = c.run(["scontrol", "-d", "show", "node", node]).stdout
    gres = re.search(r"\bGres=(\S+)", out).group(1)
    used = re.search(r"\bGresUsed=(\S+)", out).group(1)
    m = re.search(r"vslice:(\w+):(\d+)", gres)
    idx = lambda name: _idx(next(iter(re.findall(rf"{name}:\w+:\d+\(IDX:([^)]*)\)", used)), "N/A")
                            .replace("N/A", ""))
    return {"type": m.group(1), "total": int(m.group(2)), "used": idx("vslice"), "borrowed": idx("vborrow")}


def _slurm_job_idx(c, job, name="vslice"):
    """{node: IDX set} of a job's GRES `name` from scontrol show job -d."""
    out = c.show_job(job)
    res = {}
    for nodes, gres in re.findall(r"Nodes=(\S+) CPU_IDs=\S+ Mem=\S+ GRES=(\S*)", out):
        m = re.search(rf"{name}(?::\w+)?:\d+\(IDX:([^)]*)\)", gres)
        if m:
            res[nodes] = _idx(m.group(1).replace("N/A", ""))
    return res


def _slices(node_map, pred):
    return {s["index"] for d in node_map["devices"] for s in d["slice_list"] if pred(s)}


def _running(c, *jobs):
    for j in jobs:
        wait_until(lambda: c.job_state(j) == "RUNNING", 60, f"job {j} running")


def test_map_matches_slurm_filters_users_and_errors(c):
    scene.clean(c)
    cl1, cl2 = c.nodes
    a = c.sbatch("--gres=vslice:2", "-w", cl1, script=SLEEPER)
    b = c.sbatch("--gres=vslice:3", "-w", cl2, script=SLEEPER)
    g = c.sbatch("--gres=gpu:1", "-w", cl2, script=SLEEPER)
    _running(c, a, b, g)

    c.run(["scontrol", "create", f"PartitionName={CLONE}", f"Nodes={cl2}", "State=UP"], check=False)
    m = _map(c, "--no-lending")
    eq(sorted(n["name"] for n in m["nodes"]), sorted(c.nodes), "nodes")
    eq(m["lending"]["view"], "not-permitted", "lending view with --no-lending")
    for n in m["nodes"]:
        s = _slurm_node(c, n["name"])
        eq(len(n["devices"]), 2, f"{n['name']}: devices")
        eq([d["index"] for d in n["devices"]], [0, 1], f"{n['name']}: device indices")
        eq({d["model"] for d in n["devices"]}, {s["type"]}, f"{n['name']}: model")
        eq([(d["uuid"], d["pci_bus_id"]) for d in n["devices"]], [(None, None)] * 2, "node-only identity")
        eq(n["slices"]["total"], s["total"], f"{n['name']}: total slices")
        eq(_slices(n, lambda x: x["state"] != "free"), s["used"], f"{n['name']}: allocated = GresUsed IDX")
        eq(n["slices"]["allocated"], len(s["used"]), f"{n['name']}: allocated count")
    by = {n["name"]: n for n in m["nodes"]}
    for job, node in ((a, cl1), (b, cl2)):
        eq(_slices(by[node], lambda x: x["owner"] == job), _slurm_job_idx(c, job)[node], f"job {job}'s slices")
    # Slices of one job on one device (best fit), device boundaries at 4.
    owners = {d["index"]: {s["owner"] for s in d["slice_list"]} for d in by[cl2]["devices"]}
    eq(sum(b in o for o in owners.values()), 1, f"job {b} on one device: {owners}")
    eq(by[cl2]["gpus"]["jobs"], [g], "whole-GPU job")
    # The GPU held whole, on its device: Slurm's gpu IDX is the device index.
    gpu_idx = re.search(r"gpu:\w+:1\(IDX:(\d+)\)", c.show_job(g)).group(1)
    eq([(d["index"], d["whole_job"]) for d in by[cl2]["devices"] if d["held_whole"]], [(int(gpu_idx), g)],
       "the device held whole and its job")
    eq([d["held_whole"] for d in by[cl1]["devices"]], [False, False], "no GPU of cl1 held whole")
    eq(m["identities"]["note"] is not None, True, "--no-lending: why no identities")
    eq(by[cl2]["gpus"]["allocated"], 1, "whole GPU allocated: " + c.run(["scontrol", "-d", "show", "node", cl2]).stdout
       + c.show_job(g) + json.dumps(by[cl2]))
    eq(m["summary"], {"nodes": 2, "devices": 4, "slices": {"total": 16, "allocated": 5, "free": 11, "lent": 0,
                                                         "borrowed": 0}}, "summary")

    # Filters.
    eq([n["name"] for n in _map(c, "--node", cl2)["nodes"]], [cl2], "--node")
    part_nodes = re.search(r"\bNodes=(\S+)", c.run(["scontrol", "show", "partition", CLONE]).stdout).group(1)
    eq([n["name"] for n in _map(c, "--partition", CLONE)["nodes"]], [part_nodes], "--partition")
    j = _map(c, "--job", str(a))
    eq([n["name"] for n in j["nodes"]], [cl1], "--job: its node")
    eq(len(j["nodes"][0]["devices"]), 1, "--job: its device only")
    eq(j["summary"]["slices"]["allocated"], 2, "--job: its slices")
    for args in (["--job", "999999"], ["--node", "nosuchnode"], ["--partition", "nosuchpart"]):
        r = _flex(c, *args)
        eq(r.returncode, 4, f"{args}: nothing matched ({r.stderr})")

    # The table and its summary line.
    r = _flex(c, "--no-lending")
    eq(r.returncode, 0, r.stderr)
    contains(r.stdout, "cluster: 2 nodes, 4 devices, 16 slices: 5 allocated, 11 free, 0 lent, 0 borrowed",
             "summary line")
    contains(r.stdout, f"{cl2}: 1 of 2 GPUs held whole (jobs {g})", "whole-GPU line")
    eq([line.split()[8] for line in r.stdout.splitlines() if line.startswith(f"{cl2} ") and
        line.split()[1] == gpu_idx], [f"whole:{g}"], "OWNERS of the device held whole")
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith(cl1 + " ")]
    eq(len(rows), 2, "a row per device")
    eq(sorted(row[4] for row in rows), ["0", "2"], "ALLOC column")
    contains([row for row in rows if row[4] == "2"][0][8], str(a), "OWNERS column")

    # A user sees what Slurm shows every user: the same allocations, no lending state.
    os.chmod(c.dir / "munge", 0o711)
    try:
        u = _map(c, user="nobody")
    finally:
        os.chmod(c.dir / "munge", 0o700)
    eq(u["lending"]["view"], "not-permitted", "nobody's lending view")
    eq(u["summary"], m["summary"], "nobody's summary")
    eq(_slices({"devices": [d for n in u["nodes"] for d in n["devices"] if n["name"] == cl1]},
               lambda x: x["owner"] == a), _slurm_job_idx(c, a)[cl1], "nobody sees the owner")

    # Exit codes: usage, and Slurm out of reach (a copy of slurm.conf naming a closed port).
    r = _flex(c, "--bogus")
    eq(r.returncode, 1, "bad option")
    contains(r.stderr, "usage: flexslurm", "usage")
    r = _flex(c, "--job", "x")
    eq(r.returncode, 1, "bad job id")
    eq(_flex(c, "--help").returncode, 0, "--help")
    conf = (c.dir / "etc" / "slurm.conf").read_text()
    away = c.dir / "etc-away"
    away.mkdir(exist_ok=True)
    (away / "slurm.conf").write_text(re.sub(r"SlurmctldPort=\d+", "SlurmctldPort=9", conf) + "MessageTimeout=2\n")
    for f in ("gres.conf", "cgroup.conf"):
        (away / f).write_text((c.dir / "etc" / f).read_text())
    r = _flex(c, env={"SLURM_CONF": str(away / "slurm.conf")}, timeout=120)
    eq(r.returncode, 2, f"unreachable controller: {r.stdout} {r.stderr}")
    contains(r.stderr, "flexslurm: cannot load the nodes", "the error")
    c.run(["scancel", str(a), str(b), str(g)])


def test_lent_and_borrowed(c):
    scene.clean(c)
    cl1 = c.nodes[0]
    lender, borrower = scene.lender_and_borrower(c, cl1)
    wait_until(lambda: f"lent JobId={lender} JobId={borrower}" in _flex(c, "lending", "status").stdout, 20,
               "flexslurm lending status shows the loan")
    eq(_flex(c, "lending", "status").stdout.splitlines()[0],
       c.run([_bin(c, "flexslurm-lending"), "status"]).stdout.splitlines()[0], "the same status as flexslurm-lending")

    m = _map(c)
    eq(m["lending"]["view"], "shown", "root sees the lending state")
    n = next(x for x in m["nodes"] if x["name"] == cl1)
    lent = [s for d in n["devices"] for s in d["slice_list"] if s["borrower"] is not None]
    eq(len(lent), 1, f"one borrowed slice: {n['devices']}")
    s = lent[0]
    eq((s["owner"], s["borrower"], s["lending_state"], s["state"]), (lender, borrower, "lent", "lent"), "the loan")
    eq({s["index"]}, _slurm_job_idx(c, borrower, "vborrow")[cl1], "borrowed slice = the borrower's vborrow IDX")
    eq({s["index"]}, _slurm_job_idx(c, lender)[cl1], "lent slice = the lender's vslice IDX")
    eq((m["summary"]["slices"]["lent"], m["summary"]["slices"]["borrowed"]), (1, 1), "summary lent/borrowed")
    # Each device's UUID and PCI bus id, from the node agents' reports (the nodes' layouts) through the controller.
    eq(m["identities"]["note"], None, "the controller's device table read whole")
    for node in m["nodes"]:
        eq([(d["uuid"], d["pci_bus_id"]) for d in node["devices"]], IDENTITIES, f"{node['name']}: identities")
    contains(_flex(c).stdout, "1 lent, 1 borrowed", "table summary")

    os.chmod(c.dir / "munge", 0o711)
    try:
        u = _map(c, user="nobody")
        r = _flex(c, "lending", "status", user="nobody")
    finally:
        os.chmod(c.dir / "munge", 0o700)
    eq(r.returncode, 3, f"lending status as nobody: {r.stdout} {r.stderr}")
    un = next(x for x in u["nodes"] if x["name"] == cl1)
    us = [x for d in un["devices"] for x in d["slice_list"] if x["index"] == s["index"]][0]
    eq((us["owner"], us["borrower"], us["lending_state"], us["state"]), (lender, borrower, None, "lent"),
       "a user sees the loan through Slurm's allocations")
    eq({(d["uuid"], d["pci_bus_id"]) for d in un["devices"]}, {(None, None)}, "a user sees no identities")
    # The subcommand and flexslurm-lending: the same words, each its own exit codes.
    r = _flex(c, "lending", "reclaim")
    eq(r.returncode, 1, "lending usage")
    old = c.run([_bin(c, "flexslurm-lending"), "reclaim"], check=False)
    eq(old.returncode, 2, "flexslurm-lending usage")
    contains(old.stderr, "usage: flexslurm-lending status", "flexslurm-lending usage text")
    r = _flex(c, "lending", "reclaim", "999999")
    old = c.run([_bin(c, "flexslurm-lending"), "reclaim", "999999"], check=False)
    eq((r.returncode, r.stdout), (3, "error: JobId=999999 borrows nothing\n"), "flexslurm lending reclaim")
    eq((old.returncode, old.stdout), (1, r.stdout), "flexslurm-lending reclaim")
    # slurm.conf is read bounded, as a regular file only: a FIFO left in its
    # place is refused at once (a plain ifstream would wait for a writer).
    fifo = c.dir / "fifo-slurm.conf"
    os.mkfifo(fifo)
    old = c.run([_bin(c, "flexslurm-lending"), "status"], check=False, timeout=10, env={"SLURM_CONF": str(fifo)})
    eq((old.returncode, old.stderr.strip()), (1, f"flexslurm-lending: {fifo}: not a regular file"),
       "flexslurm-lending with a FIFO for slurm.conf")
    c.run(["scancel", str(borrower), str(lender)])
