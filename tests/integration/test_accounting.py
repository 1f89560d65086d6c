# SPDX-License-Identifier: GPL-2.0-or-later
"""Accounting with a real slurmdbd (MariaDB from Debian): the slices' TRES in
sacct, their billing weight, slice-seconds per account in sreport (from the
job records, and from slurmdbd's rollup, run now with `sacctmgr rollup`), the
lending totals of lender and borrower in their accounting records (sacct -o
SystemComment). The cluster (tools/localcluster.py accounting=True) runs
MariaDB and slurmdbd of its own; docs/admin.md "Accounting" has the lines."""

import os
import re
import time
from pathlib import Path

import lending_scene as scene
from helpers import contains, eq, wait_until
from lending_scene import holders
from localcluster_accounting import ACCOUNT, ROLLUP_ACCOUNT

SLICES = 4  # per GPU: a slice bills 1/4 of a GPU
# docs/admin.md: GRES/vslice weighs GRES/gpu's divided by the slices per GPU.
BILLING = "PartitionName=DEFAULT TRESBillingWeights=GRES/gpu=4.0,GRES/vslice=1.0\n"

# memory_percent: each slice a fifth of the memory, so that idle slices have memory to lend.
YAML = scene.lending_yaml()

# ac1, ac2: one T4 each, 4 slices and 4 borrow units.
CLUSTER = dict(nodes=2, prefix="ac", shape="nvidia-1gpu", cpus=8, select="select/flex", flexslurm_yaml=YAML,
               lending=True, node_addrs=True, prepare=scene.prepare, accounting=True, extra_conf=BILLING)


def _sacct(c, job, fields):
    """sacct's allocation line of `job`: {field: value}."""
    out = c.run(["sacct", "-n", "-X", "-P", "-j", str(job), "-o", ",".join(fields)]).stdout.strip()
    lines = out.splitlines()
    return dict(zip(fields, lines[-1].split("|"))) if lines else {}


def _tres(text):
    return dict(kv.split("=", 1) for kv in text.split(",") if "=" in kv)


def _done(c, job, timeout=60):
    """The job ended and its end reached slurmdbd."""
    c.wait_job(job, timeout=timeout)
    wait_until(lambda: _sacct(c, job, ["State"]).get("State", "").split(" ")[0] in
               ("COMPLETED", "CANCELLED", "FAILED"), 30, f"job {job}'s end in slurmdbd")


def _clean(c):
    c.run(["scancel", "--user=root"], check=False)
    wait_until(lambda: not c.run(["squeue", "-h", "-o", "%i"]).stdout.strip(), 30, "the queue empty")


def test_alloc_tres_has_slices_and_billing(c):
    _clean(c)
    sliced = c.sbatch("-A", ACCOUNT, "--gres=vslice:2", "-w", c.nodes[0], script="#!/bin/bash\nsleep 1\n")
    whole = c.sbatch("-A", ACCOUNT, "--gres=gpu:1", "-w", c.nodes[1], script="#!/bin/bash\nsleep 1\n")
    _done(c, sliced)
    _done(c, whole)
    s = _sacct(c, sliced, ["Account", "AllocTRES"])
    eq(s["Account"], ACCOUNT, "account")
    t = _tres(s["AllocTRES"])
    eq(t.get("gres/vslice"), "2", f"gres/vslice in AllocTRES {s['AllocTRES']}")
    eq(t.get("gres/gpu"), None, f"no whole GPU in AllocTRES {s['AllocTRES']}")
    eq(t.get("billing"), "2", f"two slices bill half a GPU (4): AllocTRES {s['AllocTRES']}")
    w = _tres(_sacct(c, whole, ["AllocTRES"])["AllocTRES"])
    eq((w.get("gres/gpu"), w.get("billing")), ("1", "4"), f"a whole GPU: {w}")


def _sreport_later(c, *args):
    """sreport an hour later (wall_clock_later.c): this hour's jobs are in its reports."""
    shim = c.dir / "bin" / "wall_clock_later.so"
    if not shim.exists():
        shim.parent.mkdir(exist_ok=True)
        c.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(Path(__file__).with_name("wall_clock_later.c")),
               "-ldl"])
    return c.run(["sreport", *args], env={"LD_PRELOAD": str(shim), "FLEXSLURM_CLOCK_SHIFT": "3600"}).stdout


def test_sreport_slice_seconds_per_account(c):
    _clean(c)
    job = c.sbatch("-A", ACCOUNT, "--gres=vslice:3", "-w", c.nodes[0], script="#!/bin/bash\nsleep 4\n")
    _done(c, job)
    # What sacct says each of the account's jobs used: slices x seconds.
    out = c.run(["sacct", "-n", "-X", "-P", "-A", ACCOUNT, "-S", "now-2hours", "-o", "AllocTRES,ElapsedRaw"]).stdout
    expected = sum(int(_tres(t).get("gres/vslice", 0)) * int(e)
                   for t, e in (line.split("|") for line in out.splitlines() if line))
    eq(expected >= 3 * 4, True, f"slice-seconds in sacct:\n{out}")
    hour = int(time.time()) // 3600 * 3600
    window = [f"start={time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(hour - 3600))}",
              f"end={time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(hour + 3600))}"]
    r = _sreport_later(c, "-n", "-P", "-t", "Seconds", "job", "SizesByAccount", "-T", "gres/vslice",
                       f"Accounts={ACCOUNT}", *window)
    rows = [line.split("|") for line in r.splitlines() if line.strip()]
    eq([x[:2] for x in rows], [["flexslurm", ACCOUNT]], f"one row for {ACCOUNT}:\n{r}")
    reported = sum(int(x) for x in rows[0][2:] if x.isdigit())
    eq(reported, expected, f"slice-seconds of {ACCOUNT} in sreport ({rows[0]}) and in sacct")


def _stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def test_sreport_rolled_up_slice_seconds_and_billing_per_account(c):
    """sreport cluster AccountUtilizationByUser reads slurmdbd's hourly rollup, which slurmdbd runs at
    each hour's end for the hour before. `sacctmgr rollup START END` (Slurm's own command, not in its man
    page: DBD_ROLL_USAGE) runs the same rollup now, for whole hours up to END's, without moving slurmdbd's
    last-rollup mark: the usage tables then hold this hour as the hourly run would."""
    _clean(c)
    job = c.sbatch("-A", ROLLUP_ACCOUNT, "--gres=vslice:3", "-w", c.nodes[0], script="#!/bin/bash\nsleep 4\n")
    _done(c, job)
    s = _sacct(c, job, ["Account", "AllocTRES", "ElapsedRaw"])
    eq(s["Account"], ROLLUP_ACCOUNT, "account")
    t, elapsed = _tres(s["AllocTRES"]), int(s["ElapsedRaw"])
    eq((t.get("gres/vslice"), t.get("billing")), ("3", "3"), f"three slices bill 3 (docs/admin.md): {t}")
    eq(elapsed >= 4, True, f"ElapsedRaw {elapsed}")
    hour = int(time.time()) // 3600 * 3600
    start, end = hour - 3600, hour + 3600  # the job's hour (and the one before, should it have begun there)
    c.run(["sacctmgr", "-i", "rollup", _stamp(start), _stamp(end)])
    r = _sreport_later(c, "-n", "-P", "-t", "Seconds", "cluster", "AccountUtilizationByUser",
                       "-T", "gres/vslice,billing", f"Accounts={ROLLUP_ACCOUNT}",
                       f"start={_stamp(start)}", f"end={_stamp(end)}")
    # Cluster|Account|Login|Proper Name|TRES Name|Used: the account's own rows have no Login.
    used = {row[4]: int(row[5]) for row in (line.split("|") for line in r.splitlines())
            if len(row) == 6 and row[1] == ROLLUP_ACCOUNT and row[2] == "" and row[5].isdigit()}
    eq(used, {"gres/vslice": 3 * elapsed, "billing": 3 * elapsed},
       f"slice-seconds and billing-seconds of {ROLLUP_ACCOUNT} (job {job}: 3 slices, {elapsed} s):\n{r}")


BORROWER = """#!/bin/bash
exec 3<{dev}
for i in $(seq 100000); do sleep 0.2; done
"""


def test_lent_and_borrowed_totals_reach_slurmdbd(c):
    _clean(c)
    dev = c.dir / "dev" / c.nodes[0] / "nvidia0"
    lender = c.sbatch("-A", ACCOUNT, "--gres=vslice:1", "-w", c.nodes[0], script="#!/bin/bash\nsleep 100000\n")
    wait_until(lambda: c.job_state(lender) == "RUNNING", 30, "lender running")
    borrower = c.sbatch("-A", ACCOUNT, "--gres=vborrow:1", script=BORROWER.format(dev=dev))
    wait_until(lambda: c.job_state(borrower) == "RUNNING", 60, "borrower running on the lent slice")
    wait_until(lambda: holders(dev), 20, "the borrower holds the device")
    time.sleep(5)  # a few slice-seconds lent and borrowed
    c.run(["scancel", str(borrower)])
    _done(c, borrower)
    c.run(["scancel", str(lender)])
    _done(c, lender)
    # What the controller shows: the totals in each job's SystemComment ...
    lent = int(re.search(r"SystemComment=flexslurm: lent (\d+) slice-s", c.show_job(lender)).group(1))
    borrowed = int(re.search(r"SystemComment=flexslurm: borrowed (\d+) slice-s", c.show_job(borrower)).group(1))
    # One slice lent to one borrower for about the 5 s slept: about the same total on both sides.
    eq(lent >= 3 and borrowed >= 3 and abs(lent - borrowed) <= 2, True, f"lent {lent}, borrowed {borrowed} slice-s")
    print(f"# lender {lender}: lent {lent} slice-s; borrower {borrower}: borrowed {borrowed} slice-s", flush=True)
    # ... reach slurmdbd as updates of the ended jobs' records.
    wait_until(lambda: _sacct(c, lender, ["SystemComment"]).get("SystemComment") ==
               f"flexslurm: lent {lent} slice-s", 30,
               f"sacct -o SystemComment of lender {lender} (now {_sacct(c, lender, ['SystemComment'])})")
    wait_until(lambda: _sacct(c, borrower, ["SystemComment"]).get("SystemComment") ==
               f"flexslurm: borrowed {borrowed} slice-s", 30,
               f"sacct -o SystemComment of borrower {borrower} (now {_sacct(c, borrower, ['SystemComment'])})")
    t = _tres(_sacct(c, borrower, ["AllocTRES"])["AllocTRES"])
    eq(t.get("gres/vborrow"), "1", f"gres/vborrow in the borrower's AllocTRES {t}")
    contains(c.log("slurmdbd"), "slurmdbd version", "slurmdbd ran")
    eq(os.stat(c.dir / "etc" / "slurmdbd.conf").st_mode & 0o777, 0o600, "slurmdbd.conf mode")
