# SPDX-License-Identifier: GPL-2.0-or-later
"""The controller's lending across restarts and reconfigures (issue 13 items
4, 13, 15, 16): slurmctld killed with SIGKILL at each moment of a reclaim,
`scontrol reconfigure` with loans in flight (on 23.11 and later it
re-executes slurmctld), lending settings reloaded, and a broken
flexslurm.yaml on reconfigure (the last good settings kept, one line)."""

import re
import signal
import time

import lending_scene as ls
from helpers import contains, eq, wait_until

CLUSTER = dict(nodes=2, prefix="a", shape="nvidia-1gpu", cpus=8, select="select/flex",
               flexslurm_yaml=ls.lending_yaml(), lending=True, node_addrs=True, prepare=ls.prepare)


def _log(c):
    return c.log("slurmctld")


def _restart(c):
    c.stop_daemon("slurmctld", sig=signal.SIGKILL)
    c.start_slurmctld(clear_state=False)


def _reconfigure(c):
    before = len(_log(c))
    c.run(["scontrol", "reconfigure"])
    # 22.05 re-reads in place; 23.11 and later re-execute slurmctld (same pid with -D).
    wait_until(lambda: "UP" in c.run(["scontrol", "ping"], check=False).stdout, 30, "slurmctld after reconfigure")
    return before


def _write_yaml(c, text):
    (c.dir / "etc" / "flexslurm.yaml").write_text(text.format(dir=c.dir, lending_port=c.lending_port))


def _reclaim_killed_at(c, moment):
    """A loan, the lender wakes, slurmctld is SIGKILLed at `moment` of the reclaim and restarted."""
    ls.clean(c)
    lender, borrower = ls.lender_and_borrower(c, "a1")
    time.sleep(6)  # old enough for its checkpoint signal; Slurm has saved the job records
    before = ls.restarts(c, borrower)
    since = len(_log(c))
    dev = ls.device(c, "a1")
    ls.busy(c, lender, "a1")
    if moment == "signal":
        wait_until(lambda: "checkpoint" in ls.borrower_out(c, borrower), 10, "checkpoint signal")
        _restart(c)
    else:
        # Within the tick that requeued it: Slurm's job state on disk predates the requeue.
        ls.wait_log(lambda: _log(c), f"reclaim JobId={borrower}: requeued", ls.GRACE + 10, "the requeue", since)
        c.stop_daemon("slurmctld", sig=signal.SIGKILL)
        if moment == "hard-stop":
            # Down across the agent's hard stop (deadline + hard_stop_after).
            wait_until(lambda: not ls.holders(dev), ls.HARD_STOP + 10, "the borrower off the device")
            time.sleep(2)
        c.start_slurmctld(clear_state=False)
    try:
        wait_until(lambda: c.job_state(borrower) == "PENDING" and not ls.holders(dev), ls.BOUND + 15,
                   f"{moment}: borrower requeued after the restart")
    except AssertionError:
        print(c.show_job(borrower))
        print("\n".join(l for l in _log(c)[since:].splitlines() if "lending" in l or f"{borrower}" in l))
        raise
    eq(ls.restarts(c, borrower), before + 1, f"{moment}: Restarts +1")
    eq(c.job_state(lender), "RUNNING", f"{moment}: lender survives")
    ls.idle(c, "a1")
    eq(c.wait_job(borrower, timeout=90), "COMPLETED", f"{moment}: borrower completes later")
    contains(ls.borrower_out(c, borrower), "resumed after 1 requeue(s)", f"{moment}: its second run")
    c.run(["scancel", str(lender)], check=False)


def test_slurmctld_killed_after_the_signal(c):
    _reclaim_killed_at(c, "signal")


def test_slurmctld_killed_after_the_requeue(c):
    _reclaim_killed_at(c, "requeue")


def test_slurmctld_down_across_the_hard_stop(c):
    _reclaim_killed_at(c, "hard-stop")


def test_reconfigure_with_a_reclaim_in_flight(c):
    """Item 15: the report port is handed over, one tick acts (one signal, one requeue), nothing is lost."""
    ls.clean(c)
    lender, borrower = ls.lender_and_borrower(c, "a1")
    time.sleep(4)
    since = len(_log(c))
    ls.busy(c, lender, "a1")
    wait_until(lambda: "checkpoint" in ls.borrower_out(c, borrower), 10, "checkpoint signal")
    t0 = time.monotonic()
    _reconfigure(c)
    dev = ls.device(c, "a1")
    wait_until(lambda: c.job_state(borrower) == "PENDING" and not ls.holders(dev), ls.BOUND + 10,
               "the reclaim completes across the reconfigure")
    eq(time.monotonic() - t0 <= ls.BOUND + 3, True, "within the bound")
    eq(ls.restarts(c, borrower), 1, "requeued once")
    eq(ls.borrower_out(c, borrower).count("checkpoint"), 1, "one checkpoint signal")
    log = _log(c)[since:]
    eq(log.count(f"reclaim JobId={borrower} from a1"), 1, f"one reclaim started:\n{log}")
    eq(len(re.findall(rf"reclaim JobId={borrower}: requeued", log)), 1, f"one requeue:\n{log}")
    # Reports reach the controller after the reconfigure: a new loan is made.
    ls.idle(c, "a1")
    eq(c.wait_job(borrower, timeout=90), "COMPLETED", "lent again after the reconfigure")
    c.run(["scancel", str(lender)], check=False)
    eq("cannot listen" in _log(c)[since:], False, f"the port was free for the controller:\n{_log(c)[since:]}")


def test_reconfigure_reloads_lending_settings(c):
    """Item 13: lending.grace from 4 s to 12 s takes effect at `scontrol reconfigure`."""
    ls.clean(c)
    _write_yaml(c, ls.lending_yaml(grace=12))
    try:
        since = _reconfigure(c)
        lender, borrower = ls.lender_and_borrower(c, "a1")
        time.sleep(4)
        ls.busy(c, lender, "a1")
        wait_until(lambda: "checkpoint" in ls.borrower_out(c, borrower), 10, "checkpoint signal")
        t0 = time.monotonic()
        wait_until(lambda: c.job_state(borrower) == "PENDING", 12 + 10, "requeue after the new grace")
        took = time.monotonic() - t0
        eq(took >= 12 - 2, True, f"requeued {took:.1f}s after the signal: the new grace (12 s) applies")
        contains(_log(c)[since:], f"reclaim JobId={borrower} from a1 slice 0 of JobId={lender}: lender-busy, "
                                  "grace 12 s", "the reclaim under the new grace")
        c.run(["scancel", str(borrower), str(lender)], check=False)
    finally:
        _write_yaml(c, ls.lending_yaml())
        _reconfigure(c)


BROKEN = ls.lending_yaml().replace("    slices: 4\n", "    slices: 0\n")


def test_broken_yaml_on_reconfigure_keeps_the_last_good_settings(c):
    """Item 16: slurmctld keeps running on the last good settings and says why in one line."""
    ls.clean(c)
    path = c.dir / "etc" / "flexslurm.yaml"
    _write_yaml(c, BROKEN)
    try:
        since = _reconfigure(c)
        time.sleep(2)
        eq(c.procs["slurmctld"].poll(), None, "slurmctld running")
        lines = [l for l in _log(c)[since:].splitlines() if "flexslurm.yaml" in l and "error" in l]
        eq(len(lines), 1, f"one error line about flexslurm.yaml:\n{_log(c)[since:]}")
        contains(lines[0], f"select/flex: reconfigure: {path}:8: slicing.default.slices: 0 is out of range "
                           "(allowed: an integer from 1 to 64); keeping the last good settings", "the line")
        # Lending goes on with the settings the controller kept. The good file
        # goes back for the nodes only (the controller is not told): on 23.11
        # and later slurmd re-executed at the reconfigure and refused the
        # broken file (its own one line), so it is started again.
        _write_yaml(c, ls.lending_yaml())
        for node in c.nodes:
            if c.procs[f"slurmd.{node}"].poll() is not None:
                c.start_slurmd(node)
        c.wait_nodes_idle(timeout=60)
        lender, borrower = ls.lender_and_borrower(c, "a2")
        time.sleep(4)
        ls.busy(c, lender, "a2")
        wait_until(lambda: c.job_state(borrower) == "PENDING", ls.BOUND + 5, "a reclaim on the last good settings")
        c.run(["scancel", str(borrower), str(lender)], check=False)
    finally:
        _write_yaml(c, ls.lending_yaml())
        _reconfigure(c)
