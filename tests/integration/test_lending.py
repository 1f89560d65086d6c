# SPDX-License-Identifier: GPL-2.0-or-later
"""Idle reclaim on a real cluster: slices that a lender holds but does not
use are lent to borrower jobs (--gres=vborrow:N) and taken back by requeue
within the grace. Telemetry comes from the file backend: each test writes
how busy the lender is, the node agents (threads in slurmd) report it to
select/flex over Munge-sealed messages, and select/flex acts."""

import os
import random
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import lending_scene as scene
from helpers import contains, eq, wait_until
from lending_scene import BOUND, GRACE, HARD_STOP, LENDER
from lending_scene import field as _field
from lending_scene import holders as _holders
from lending_scene import job_units as _job_units

YAML = scene.lending_yaml(extra="  whole_devices: true\n")  # free_slices: appended by one test

# l1, l2: one T4 each, 4 slices and 4 borrow units; each node its own address.
CLUSTER = dict(nodes=2, prefix="l", shape="nvidia-1gpu", cpus=8, select="select/flex", flexslurm_yaml=YAML,
               lending=True, node_addrs=True, prepare=scene.prepare)

# A borrower that holds the device open (as a CUDA process would), writes a
# checkpoint when told, and resumes after its requeue.
BORROWER = """#!/bin/bash
out={out}/borrower.$SLURM_JOB_ID
if [ "${{SLURM_RESTART_COUNT:-0}}" -gt 0 ]; then echo "resumed after $SLURM_RESTART_COUNT requeue(s)" >>$out; exit 0; fi
trap 'echo "checkpoint $(date +%s)" >>$out' USR1
env | grep -E '^(CUDA|SLURM_VSLICE)' | sort >>$out
exec 3<{dev}
echo started >>$out
for i in $(seq 100000); do sleep 0.2; done
"""


def _idle(c, node=None):
    scene.idle(c, node or c.nodes[0])


def _busy(c, lender, node=None):
    scene.busy(c, lender, node or c.nodes[0])


def _borrower(c, *extra, node=None):
    dev = c.dir / "dev" / (node or c.nodes[0]) / "nvidia0"
    return c.sbatch("--gres=vborrow:1", "--signal=B:USR1@60", *extra,
                    script=BORROWER.format(out=c.dir / "out", dev=dev))


def _lender_and_borrower(c):
    """A lender on l1 (idle), then a borrower running on its slice."""
    lender = c.sbatch("--gres=vslice:1", "-w", c.nodes[0], script=LENDER)
    wait_until(lambda: c.job_state(lender) == "RUNNING", 20, "lender running")
    borrower = _borrower(c)
    wait_until(lambda: c.job_state(borrower) == "RUNNING", 30, "borrower running")
    return lender, borrower


def _stable_detail(c, job):
    """`scontrol show job -d` without the fields that change with time."""
    text = c.run(["scontrol", "show", "job", "-d", str(job)]).stdout
    return re.sub(r"\b(RunTime)=\S+", r"\1=*", text)


def _cancel(c, *jobs):
    c.run(["scancel", *map(str, jobs)], check=False)
    for j in jobs:
        wait_until(lambda j=j: c.job_state(j) in ("CANCELLED", "COMPLETED", "FAILED", None), 30,
                   f"job {j} gone")
    wait_until(lambda: not any(_holders(c.dir / "dev" / n / "nvidia0") for n in c.nodes), 30,
               "nothing holds the devices")


def _clean(c):
    """No jobs left from an earlier test (which may have failed half way)."""
    c.run(["scancel", "--user=root"], check=False)
    wait_until(lambda: not c.run(["squeue", "-h", "-o", "%i"]).stdout.strip(), 30, "the queue empty")
    wait_until(lambda: not any(_holders(c.dir / "dev" / n / "nvidia0") for n in c.nodes), 30,
               "nothing holds the devices")
    for node in c.nodes:
        _idle(c, node)


def _log(c):
    return (c.dir / "log" / "slurmctld.log").read_text(errors="replace")


def test_borrower_must_be_a_requeueable_batch_job(c):
    _clean(c)
    r = c.run(["sbatch", "--gres=vborrow:1", "--no-requeue", "--wrap", "true"], check=False)
    eq(r.returncode != 0, True, "sbatch --no-requeue borrower refused")
    contains(r.stderr, "a borrower must be requeueable: drop --no-requeue", "sbatch message")
    r = c.run(["srun", "--gres=vborrow:1", "true"], check=False, timeout=30)
    eq(r.returncode != 0, True, "srun borrower refused")
    contains(r.stderr, "a borrower must be a batch job (sbatch)", "srun message")
    r = c.run(["salloc", "--gres=vborrow:1", "true"], check=False, timeout=30)
    eq(r.returncode != 0, True, "salloc borrower refused")
    contains(r.stderr, "a borrower must be a batch job (sbatch)", "salloc message")
    r = c.run(["sbatch", "--gres=vborrow:1,vslice:1", "--wrap", "true"], check=False)
    eq(r.returncode != 0, True, "borrower asking slices too refused")
    contains(r.stderr, "asks for vborrow only", "mixed message")
    # Left unset, requeue is turned on for a borrower.
    job = c.sbatch("--gres=vborrow:1", "--hold", script="#!/bin/bash\ntrue\n")
    eq(_field(c.show_job(job), "Requeue"), "1", "requeue forced on")
    _cancel(c, job)


def test_only_idle_allocated_slices_are_lent(c):
    _clean(c)
    _idle(c, c.nodes[0])
    _idle(c, c.nodes[1])
    borrower = _borrower(c)
    # Nothing is allocated: no slice is "idle to lend".
    time.sleep(6)
    eq(c.job_state(borrower), "PENDING", "borrower with no lender anywhere")
    # A normal slice job takes a free slice at once.
    normal = c.sbatch("--gres=vslice:1", "-w", c.nodes[1], script="#!/bin/bash\ntrue\n")
    eq(c.wait_job(normal, timeout=30), "COMPLETED", "normal slice job")
    lender = c.sbatch("--gres=vslice:1", "-w", c.nodes[0], script=LENDER)
    wait_until(lambda: c.job_state(lender) == "RUNNING", 20, "lender running")
    _busy(c, lender)
    time.sleep(6)
    eq(c.job_state(borrower), "PENDING", "borrower while the lender is busy")
    _idle(c)
    wait_until(lambda: c.job_state(borrower) == "RUNNING", 20, "borrower placed on the idle lender's slice")
    detail = c.show_job(borrower)
    eq(_field(detail, "NodeList"), c.nodes[0], "borrower on the lender's node")
    out = c.dir / "out" / f"borrower.{borrower}"
    wait_until(lambda: out.exists() and "started" in out.read_text(), 20, "borrower started")
    env = out.read_text()
    # 16 GiB T4, 4 slices x 20 % reserved: 20 % unreserved, a quarter of it per borrow unit.
    contains(env, "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25", "borrower compute share")
    contains(env, "SLURM_VSLICE_MEMORY_LIMIT_MIB=", "borrower memory cap")
    cap = int(re.search(r"SLURM_VSLICE_MEMORY_LIMIT_MIB=(\d+)", env).group(1))
    eq(0 < cap <= 16384 * 20 // 100 // 4 + 1, True, f"borrower memory cap {cap} MiB within unreserved memory")
    status = c.dir / "state" / "flexslurm_lending.status"
    wait_until(lambda: f"{c.nodes[0]} 0 0 lent JobId={lender} JobId={borrower}" in status.read_text(), 5,
               "the status file shows the loan")
    _cancel(c, borrower, lender)


def test_a_gpu_held_whole_is_lent_and_taken_back(c):
    """--gres=gpu:1 holds the T4 whole: its idle slices are lent (lending.whole_devices:
    true, this cluster's), and taken back when the job turns busy."""
    _clean(c)
    lender = c.sbatch("--gres=gpu:1", "-w", c.nodes[0], script=LENDER)
    wait_until(lambda: c.job_state(lender) == "RUNNING", 20, "whole-GPU lender running")
    _busy(c, lender)
    borrowers = [_borrower(c, "-w", c.nodes[0]) for _ in range(2)]
    time.sleep(6)
    eq([c.job_state(b) for b in borrowers], ["PENDING"] * 2, "borrowers while the GPU is busy")
    _idle(c)
    wait_until(lambda: all(c.job_state(b) == "RUNNING" for b in borrowers), 20,
               "two borrowers on slices of the idle whole GPU")
    status = c.dir / "state" / "flexslurm_lending.status"
    for b in borrowers:
        wait_until(lambda b=b: re.search(rf"^{c.nodes[0]} \d+ 0 lent JobId={lender} JobId={b} ",
                                         status.read_text(), re.M), 5, f"the status file shows the loan to {b}")
    dev = c.dir / "dev" / c.nodes[0] / "nvidia0"
    wait_until(lambda: _holders(dev), 20, "borrowers hold the device")
    time.sleep(4)  # old enough to be sent their checkpoint signal
    t0 = time.monotonic()
    _busy(c, lender)
    wait_until(lambda: all(c.job_state(b) != "RUNNING" for b in borrowers) and not _holders(dev),
               BOUND + 5, "borrowers off the whole GPU")
    took = time.monotonic() - t0
    eq(took <= BOUND, True, f"reclaim took {took:.1f}s (bound {BOUND}s)")
    for b in borrowers:
        wait_until(lambda b=b: c.job_state(b) == "PENDING", 20, f"borrower {b} requeued")
    eq(c.job_state(lender), "RUNNING", "lender untouched")
    env = c.run(["scontrol", "show", "job", "-d", str(lender)]).stdout
    contains(env, "gpu", "lender still holds its GPU")
    _cancel(c, *borrowers, lender)
    contains(c.show_job(lender), "SystemComment=flexslurm: lent", "lender's record")


# How many loans the reclaim loop makes and takes back (about 14 s each):
# scripts/test-all.sh runs 20 on the Debian leg and fewer on the others.
RECLAIM_TRIALS = int(os.environ.get("FLEXSLURM_RECLAIM_TRIALS", "20"))


def test_reclaim_when_the_lender_turns_busy_again_and_again(c):
    _clean(c)
    lender = c.sbatch("--gres=vslice:1", "-w", c.nodes[0], script=LENDER)
    wait_until(lambda: c.job_state(lender) == "RUNNING", 20, "lender running")
    before = _stable_detail(c, lender)
    dev = c.dir / "dev" / c.nodes[0] / "nvidia0"
    worst = 0.0
    for trial in range(RECLAIM_TRIALS):
        _idle(c)
        borrower = _borrower(c)
        wait_until(lambda: c.job_state(borrower) == "RUNNING", 30, f"trial {trial}: borrower running")
        out = c.dir / "out" / f"borrower.{borrower}"
        wait_until(lambda: out.exists() and "started" in out.read_text() and _holders(dev), 20,
                   f"trial {trial}: borrower holds the device")
        time.sleep(3 + random.uniform(0, 1.5))  # the lender wakes at some moment of the loan
        t0 = time.monotonic()
        _busy(c, lender)
        try:
            wait_until(lambda: c.job_state(borrower) != "RUNNING" and not _holders(dev), BOUND + 5,
                       f"trial {trial}: borrower off the device")
        except AssertionError:
            print(c.job_state(borrower), _holders(dev), (c.dir / "state" / "flexslurm_lending.status").read_text())
            os.system(f"tail -30 {c.dir}/log/slurmctld.log; tail -20 {c.dir}/log/slurmd.{c.nodes[0]}.log")
            raise
        took = time.monotonic() - t0
        worst = max(worst, took)
        eq(took <= BOUND, True, f"trial {trial}: reclaim took {took:.1f}s (bound {BOUND}s)")
        try:
            wait_until(lambda: c.job_state(borrower) == "PENDING", 20, f"trial {trial}: borrower requeued")
        except AssertionError:
            print(c.show_job(borrower))
            os.system(f"grep -E 'JobId={borrower}|lending' {c.dir}/log/slurmctld.log | tail -20")
            raise
        detail = c.show_job(borrower)
        eq(_field(detail, "Restarts"), "1", f"trial {trial}: restart count")
        contains(out.read_text(), "checkpoint", f"trial {trial}: checkpoint signal delivered")
        eq(c.job_state(lender), "RUNNING", f"trial {trial}: lender untouched")
        _cancel(c, borrower)
    eq(_stable_detail(c, lender), before, "lender's scontrol show job -d")
    contains(_stable_detail(c, borrower), "SystemComment=flexslurm: borrowed", "borrower's record")
    print(f"# worst reclaim of {RECLAIM_TRIALS}: {worst:.1f}s (bound {BOUND}s)")
    _cancel(c, lender)


def test_agent_hard_stops_a_borrower_that_ignores_sigterm(c):
    _clean(c)
    lender = c.sbatch("--gres=vslice:1", "-w", c.nodes[0], script=LENDER)
    wait_until(lambda: c.job_state(lender) == "RUNNING", 20, "lender running")
    dev = c.dir / "dev" / c.nodes[0] / "nvidia0"
    stubborn = BORROWER.replace("exec 3<", "trap '' TERM\nexec 3<")  # ignored by its children too
    borrower = c.sbatch("--gres=vborrow:1", "--signal=B:USR1@60",
                        script=stubborn.format(out=c.dir / "out", dev=dev))
    wait_until(lambda: c.job_state(borrower) == "RUNNING" and _holders(dev), 30, "borrower on the device")
    time.sleep(4)
    before = (c.dir / "log" / f"slurmd.{c.nodes[0]}.log").read_text()
    t0 = time.monotonic()
    _busy(c, lender)
    wait_until(lambda: not _holders(dev), GRACE + HARD_STOP + 2 + 3, "the agent's hard stop")
    took = time.monotonic() - t0
    log = (c.dir / "log" / f"slurmd.{c.nodes[0]}.log").read_text()[len(before):]
    # The agent's kill, not slurmd's KillWait (5 s after the requeue, later than t0 + G + 2 s).
    eq(bool(re.search(rf"hard stop of borrower JobId={borrower}: [1-9]\d* process\(es\) killed", log)), True,
       f"the agent killed what was left:\n{log}")
    eq(took <= BOUND, True, f"off the device {took:.1f}s after the lender woke")
    wait_until(lambda: c.job_state(borrower) == "PENDING", 20, "requeued, not failed")
    eq(_field(c.show_job(borrower), "Restarts"), "1", "restart count")
    _cancel(c, borrower, lender)


def test_requeued_borrower_restarts_and_completes(c):
    _clean(c)
    _idle(c)
    lender, borrower = _lender_and_borrower(c)
    time.sleep(4)  # old enough to be sent its checkpoint signal
    _busy(c, lender)
    wait_until(lambda: c.job_state(borrower) == "PENDING", BOUND + 5, "borrower requeued")
    _idle(c)
    # cred_expire=10 in this cluster: eligible again 11 s after the requeue.
    eq(c.wait_job(borrower, timeout=60), "COMPLETED", "requeued borrower completes")
    eq(_field(c.show_job(borrower), "Restarts"), "1", "restart count")
    out = (c.dir / "out" / f"borrower.{borrower}").read_text()
    contains(out, "checkpoint", "checkpoint before the requeue")
    contains(out, "resumed after 1 requeue(s)", "resumed after the requeue")
    contains(c.show_job(borrower), "SystemComment=flexslurm: borrowed", "borrower's record")
    _cancel(c, lender)
    # A lender's record gets its total when it ends.
    contains(c.show_job(lender), "SystemComment=flexslurm: lent", "lender's record")


def test_agent_stopped_nothing_lent_and_loans_reclaimed(c):
    _clean(c)
    _idle(c)
    lender, borrower = _lender_and_borrower(c)
    slurmd = c.procs[f"slurmd.{c.nodes[0]}"]
    os.kill(slurmd.pid, signal.SIGSTOP)  # the agent (and slurmd) stop reporting
    try:
        wait_until(lambda: c.job_state(borrower) != "RUNNING", 4 + GRACE + 10,
                   "the controller takes the loan back")
        contains(_log(c), f"reclaim JobId={borrower} from {c.nodes[0]} slice 0 of JobId={lender}: telemetry-lost",
                 "reclaim reason")
        second = _borrower(c)
        time.sleep(5)
        eq(c.job_state(second), "PENDING", "nothing lent on a node whose agent is silent")
    finally:
        os.kill(slurmd.pid, signal.SIGCONT)
    wait_until(lambda: c.job_state(second) == "RUNNING", 40, "lending resumes once the agent reports")
    _cancel(c, second, borrower, lender)


def test_slurmctld_killed_mid_loan_and_mid_reclaim(c):
    _clean(c)
    _idle(c)
    lender, borrower = _lender_and_borrower(c)
    other = _borrower(c)  # waits: one idle slice, one loan
    time.sleep(4)
    eq(c.job_state(other), "PENDING", "a second borrower waits while the one idle slice is lent")
    time.sleep(6)  # Slurm saves new job records within a few seconds (stock behaviour)
    # Mid-loan.
    c.stop_daemon("slurmctld", sig=signal.SIGKILL)
    c.start_slurmctld(clear_state=False)
    wait_until(lambda: c.job_state(borrower) == "RUNNING", 30, "borrower still running after restart")
    time.sleep(4)
    eq(c.job_state(other), "PENDING", "no second borrower on the lent slice after restart")
    status_file = c.dir / "state" / "flexslurm_lending.status"
    wait_until(lambda: f"JobId={borrower}" in status_file.read_text().split("RECLAIMS")[0], 15,
               "the loan in the rebuilt ledger")
    status = status_file.read_text()
    slices = status.split("RECLAIMS IN FLIGHT")[0]
    eq(slices.count(f"JobId={borrower}"), 1, f"one loan in the rebuilt ledger:\n{status}")
    eq(slices.count(" lent "), 1, f"one slice lent:\n{status}")
    # Mid-reclaim: the controller dies between the signal and the requeue.
    out = c.dir / "out" / f"borrower.{borrower}"
    t0 = time.monotonic()
    _busy(c, lender)
    wait_until(lambda: "checkpoint" in out.read_text(), 10, "checkpoint signal")
    c.stop_daemon("slurmctld", sig=signal.SIGKILL)
    c.start_slurmctld(clear_state=False)
    dev = c.dir / "dev" / c.nodes[0] / "nvidia0"
    wait_until(lambda: c.job_state(borrower) == "PENDING" and not _holders(dev), BOUND + 10,
               "reclaim completes after the restart")
    took = time.monotonic() - t0
    eq(took <= BOUND + 3, True, f"reclaim across a restart took {took:.1f}s")
    eq(_field(c.show_job(borrower), "Restarts"), "1", "requeued once")
    eq(c.job_state(lender), "RUNNING", "lender survives")
    eq(c.job_state(other), "PENDING", "waiting borrower not lost")
    _cancel(c, other, borrower, lender)


def _cli(c):
    """flexslurm-lending as installed beside the plugins under test (make install DESTDIR=stage...)."""
    for d in Path(c.plugin_dir).parents:
        if d.name.startswith("stage"):
            found = sorted(d.rglob("bin/flexslurm-lending"))
            if found:
                return str(found[0])
    raise AssertionError(f"flexslurm-lending not installed beside {c.plugin_dir}")


def test_admin_sees_loans_and_takes_one_back(c):
    _clean(c)
    cli = _cli(c)
    lender, borrower = _lender_and_borrower(c)
    wait_until(lambda: f"lent JobId={lender} JobId={borrower}" in c.run([cli, "status"]).stdout, 10,
               "flexslurm-lending status shows the loan")
    status = c.run([cli, "status"]).stdout
    contains(status, "NODE SLICE DEVICE STATE OWNER BORROWER SINCE", "status header")
    contains(status, "HISTORY", "status history")
    r = c.run([cli, "reclaim", "999999"], check=False)
    eq((r.returncode, r.stdout.strip()), (1, "error: JobId=999999 borrows nothing"), "reclaim of a non-borrower")
    time.sleep(3)  # old enough for its checkpoint signal
    dev = c.dir / "dev" / c.nodes[0] / "nvidia0"
    t0 = time.monotonic()
    r = c.run([cli, "reclaim", str(borrower)])
    contains(r.stdout, f"reclaim of JobId={borrower} started", "reclaim answer")
    wait_until(lambda: c.job_state(borrower) == "PENDING" and not _holders(dev), BOUND + 5, "admin reclaim done")
    eq(time.monotonic() - t0 <= BOUND, True, "admin reclaim within G + 10 s")
    contains((c.dir / "out" / f"borrower.{borrower}").read_text(), "checkpoint", "checkpoint signal")
    wait_until(lambda: f"reclaim JobId={borrower} done (admin)" in c.run([cli, "status"]).stdout, 10,
               "the reclaim in the status history")
    # Only root and SlurmUser may ask.
    os.chmod(c.dir / "munge", 0o711)
    try:
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", cli, "status"],
                           capture_output=True, text=True, env=c.env, timeout=30)
    finally:
        os.chmod(c.dir / "munge", 0o700)
    eq(r.returncode, 1, f"status as nobody refused: {r.stdout} {r.stderr}")
    contains(r.stdout + r.stderr, "only root and SlurmUser", "refusal")
    _cancel(c, borrower, lender)


# ---------------------------------------------------------------------------
# Forged and broken reports. Last in this module: a replayed report uses a
# high epoch, which then shuts out l1's real agent (its reports look old).

def _munge(c, payload, uid=None):
    argv = ["munge", "-S", str(c.dir / "munge" / "munge.socket"), "-s", payload]
    if uid is not None:
        argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


def _send(c, frame, source="127.0.0.1", raw=False):
    with socket.create_connection(("127.0.0.1", c.lending_port), timeout=5,
                                  source_address=(source, 0)) as s:
        data = frame if raw else struct.pack(">I", len(frame)) + frame
        s.sendall(data)
        try:
            s.settimeout(5)
            head = s.recv(4)
        except OSError:
            return b""
        return head


def _report(node, epoch, seq):
    return (f"flexslurm-report 1\nnode {node}\nepoch {epoch}\nseq {seq}\nsent_at {int(time.time())}\n"
            f"device 0 busy 0 used 0 lendable 3276 per_job 0\nend\n")


def _write_yaml(c, text):
    (c.dir / "etc" / "flexslurm.yaml").write_text(text.format(dir=c.dir, lending_port=c.lending_port))


def _reconfigure(c):
    c.run(["scontrol", "reconfigure"])
    # 22.05 re-reads in place; 23.11 and later re-execute slurmctld (and slurmd).
    wait_until(lambda: "UP" in c.run(["scontrol", "ping"], check=False).stdout, 30, "slurmctld after reconfigure")
    c.wait_nodes_idle(timeout=60)
    # The re-executed slurmctld opens the report port a tick or more after it answers pings.
    wait_until(lambda: _port_open(c.lending_port), 30, "the lending report port after reconfigure")


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def test_a_free_slice_is_lent_and_an_owner_takes_it_back(c):
    """lending.free_slices: true (turned on here by reconfigure; the rest of this module runs
    without it): a borrower starts on l2, where no job holds anything. A slice job that fits
    beside it gets the slices no borrower holds; one that needs the borrowed slice starts at
    once all the same, and the borrower is requeued within the bound. First, on l1: a loan
    whose lender ends goes on as the free slice's loan, with no reclaim."""
    _clean(c)
    node = c.nodes[1]
    dev = c.dir / "dev" / node / "nvidia0"
    status = c.dir / "state" / "flexslurm_lending.status"
    _write_yaml(c, YAML + "  free_slices: true\n")
    try:
        _reconfigure(c)
        for n in c.nodes:
            _idle(c, n)
        first = c.nodes[0]
        lender = c.sbatch("--gres=vslice:4", "-w", first, script=LENDER)  # every slice of l1: none free
        wait_until(lambda: c.job_state(lender) == "RUNNING", 20, "lender running")
        kept = _borrower(c, "-w", first, node=first)
        wait_until(lambda: c.job_state(kept) == "RUNNING", 30, "borrower on the idle lender's slice")
        k = min(_job_units(c, kept, "vborrow"))
        wait_until(lambda: f"{first} {k} 0 lent JobId={lender} JobId={kept} " in status.read_text(), 15,
                   "the status file shows the lender's loan")
        c.run(["scancel", str(lender)])
        wait_until(lambda: c.job_state(lender) in ("CANCELLED", None), 30, "lender ended")
        wait_until(lambda: f"{first} {k} 0 lent free JobId={kept} " in status.read_text(), 15,
                   "the loan goes on as the free slice's")
        time.sleep(GRACE + 2)  # a reclaim would have requeued it by now
        eq(c.job_state(kept), "RUNNING", "the borrower runs on after its lender ended")
        eq(_field(c.show_job(kept), "Restarts"), "0", "never requeued")
        eq(f"reclaim JobId={kept} " in _log(c), False, "no reclaim of that loan")
        _cancel(c, kept)
        borrower = _borrower(c, "-w", node, node=node)
        wait_until(lambda: c.job_state(borrower) == "RUNNING", 40, "borrower running with no owner on the node")
        eq(_field(c.show_job(borrower), "NodeList"), node, "borrower on the free node")
        units = _job_units(c, borrower, "vborrow")
        eq(len(units), 1, f"borrower holds one borrow unit ({units})")
        u = min(units)  # the slice it shadows
        out = c.dir / "out" / f"borrower.{borrower}"
        wait_until(lambda: out.exists() and "started" in out.read_text() and _holders(dev), 20,
                   "borrower holds the device")
        wait_until(lambda: f"{node} {u} 0 lent free JobId={borrower} " in status.read_text(), 15,
                   "the status file shows the loan of a free slice")
        contains(_log(c), f"{node} slice {u} (free) lent to JobId={borrower}", "the loan logged")
        # A one-slice job fits beside the borrower: it gets an unborrowed slice.
        beside = c.sbatch("--gres=vslice:1", "-w", node, script=LENDER)
        wait_until(lambda: c.job_state(beside) == "RUNNING", 20, "one-slice owner running")
        eq(_job_units(c, beside, "vslice") & {u}, set(), "the one-slice owner got a slice no borrower holds")
        time.sleep(3)  # the borrower is also old enough now to be sent its checkpoint signal
        eq(c.job_state(borrower), "RUNNING", "the borrower stays while owners fit beside it")
        # Three slices: only three are free, so one of them is the borrower's.
        t0 = time.monotonic()
        owner = c.sbatch("--gres=vslice:3", "-w", node, script=LENDER)
        wait_until(lambda: c.job_state(owner) == "RUNNING", 10, "the owner starts at once, borrower or not")
        started = time.monotonic() - t0
        eq(u in _job_units(c, owner, "vslice"), True, f"the owner holds the borrowed slice {u}")
        wait_until(lambda: c.job_state(borrower) != "RUNNING" and not _holders(dev), BOUND + 5,
                   "borrower off the device")
        took = time.monotonic() - t0
        eq(took <= BOUND, True, f"reclaim took {took:.1f}s (bound {BOUND}s; owner started after {started:.1f}s)")
        wait_until(lambda: c.job_state(borrower) == "PENDING", 20, "borrower requeued")
        detail = c.show_job(borrower)
        eq(_field(detail, "Restarts"), "1", "restart count")
        contains(out.read_text(), "checkpoint", "checkpoint signal delivered")
        contains(_log(c), f"reclaim JobId={borrower} from {node} slice {u} of JobId={owner}: owner-arrived",
                 "the reclaim's reason")
        eq([c.job_state(owner), c.job_state(beside)], ["RUNNING"] * 2, "owners untouched")
        wait_until(lambda: re.search(rf"^{node} {u} 0 (owned-busy|idle) JobId={owner} - -$", status.read_text(), re.M),
                   15,
                   "the slice is the owner's in the status file")
        squeue = c.run(["squeue", "-h", "-j", str(borrower), "-o", "%T %r"]).stdout
        contains(squeue, "PENDING", "squeue shows the borrower pending")
        _cancel(c, borrower, owner, beside)
    finally:
        c.run(["scancel", "--user=root"], check=False)
        _write_yaml(c, YAML)
        _reconfigure(c)


def test_forged_reports_are_dropped_and_scheduling_goes_on(c):
    _clean(c)
    before = _log(c)
    _send(c, b"not a munge credential")
    _send(c, struct.pack(">I", 200000) + b"x" * 100, raw=True)  # oversized
    _send(c, _munge(c, "garbage that is not a report").encode(), source="127.0.0.2")
    os.chmod(c.dir / "munge", 0o711)
    try:
        _send(c, _munge(c, _report(c.nodes[0], 10**10, 1), uid=65534).encode(), source="127.0.0.2")
    finally:
        os.chmod(c.dir / "munge", 0o700)
    _send(c, _munge(c, _report(c.nodes[1], 10**10, 1)).encode(), source="127.0.0.1")  # l2 is 127.0.0.3
    _send(c, _munge(c, _report("nosuchnode", 10**10, 1)).encode(), source="127.0.0.2")
    cred = _munge(c, _report(c.nodes[0], 10**10, 1)).encode()
    _send(c, cred, source="127.0.0.2")
    _send(c, cred, source="127.0.0.2")  # the same credential again
    for seq in range(2, 40):  # a flood
        _send(c, _munge(c, _report(c.nodes[0], 10**10, seq)).encode(), source="127.0.0.2")
    time.sleep(1)
    log = _log(c)[len(before):]
    contains(log, "refused a frame of 200000 bytes", "an oversized frame refused")
    for reason in ["bad-credential", "malformed", "wrong-uid", "wrong-address", "unknown-node",
                   "replayed", "flood"]:
        contains(log, f": {reason}", f"a dropped report logged as {reason}")
    job = c.sbatch("--gres=vslice:1", script="#!/bin/bash\ntrue\n")
    eq(c.wait_job(job, timeout=30), "COMPLETED", "slurmctld still schedules")
    eq(c._alive("slurmctld"), True, "slurmctld alive")
