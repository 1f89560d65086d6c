# SPDX-License-Identifier: GPL-2.0-or-later
"""Lending across a controller failover (issue 13 item 3): SlurmctldHost x2,
the primary killed with SIGKILL, the backup takes control; the loans in
place are taken back by the backup and lending goes on there. Before, the
lending thread and its report port ran only where slurmctld_primary is set,
which a backup that took over never sets."""

import signal
import time

import lending_scene as ls
from helpers import contains, eq, wait_until

# d1, d2: one T4 each, 4 slices and 4 borrow units; each node its own address.
CLUSTER = dict(nodes=2, prefix="d", shape="nvidia-1gpu", cpus=8, select="select/flex",
               flexslurm_yaml=ls.lending_yaml(), lending=True, node_addrs=True, prepare=ls.prepare,
               backup_ctld=True)


def _backup_log(c):
    return c.log("slurmctld", backup=True)


def test_backup_in_standby_keeps_off_the_report_port(c):
    ls.clean(c)
    log = _backup_log(c)
    contains(log, "slurmctld running in background mode", "backup in standby")
    eq("lending: listening" in log, False, f"a standby backup does not listen:\n{log[-3000:]}")
    eq("lending: state restored" in log, False, "a standby backup does not read the lending state")


def test_backup_takes_over_reclaims_and_lends(c):
    ls.clean(c)
    lender, borrower = ls.lender_and_borrower(c, "d1")
    status = c.dir / "state" / "flexslurm_lending.status"
    wait_until(lambda: f"lent JobId={lender} JobId={borrower}" in status.read_text(), 10,
               "the primary's ledger shows the loan")
    time.sleep(6)  # Slurm saves the new job records within a few seconds
    c.stop_daemon("slurmctld", sig=signal.SIGKILL)
    t0 = time.monotonic()
    ls.wait_log(lambda: _backup_log(c), "taking over", 40, "the backup taking over")
    ls.wait_log(lambda: _backup_log(c), "lending: listening for node reports", 30,
                "lending on the backup")
    print(f"# backup in control and lending {time.monotonic() - t0:.1f}s after the primary died")
    contains(c.run(["scontrol", "ping"], check=False).stdout, "UP", "the backup answers")
    wait_until(lambda: c.job_state(borrower) == "RUNNING", 30, "borrower still running on the backup")
    wait_until(lambda: f"lent JobId={lender} JobId={borrower}" in status.read_text(), 15,
               "the backup's ledger shows the loan")
    # The backup takes the loan back.
    time.sleep(2)
    t1 = time.monotonic()
    ls.busy(c, lender, "d1")
    dev = ls.device(c, "d1")
    wait_until(lambda: c.job_state(borrower) == "PENDING" and not ls.holders(dev), ls.BOUND + 10,
               "the backup reclaims the loan")
    took = time.monotonic() - t1
    eq(took <= ls.BOUND + 3, True, f"reclaim on the backup took {took:.1f}s")
    eq(ls.restarts(c, borrower), 1, "borrower requeued once")
    contains(ls.borrower_out(c, borrower), "checkpoint", "checkpoint signal from the backup")
    contains(_backup_log(c), f"reclaim JobId={borrower} from d1 slice 0 of JobId={lender}: lender-busy",
             "the backup's reclaim")
    eq(c.job_state(lender), "RUNNING", "lender untouched")
    # Lending goes on: the lender idles again; a new borrower is lent the
    # slice, and the requeued one runs again and completes. (The submission
    # also wakes the backup's scheduler: its backfill waits for a change, and
    # the requeued borrower becomes eligible only by the clock.)
    ls.idle(c, "d1")
    time.sleep(12)  # cred_expire=10: the requeued borrower is eligible again
    second = ls.borrower(c, "d1")
    try:
        eq(c.wait_job(borrower, timeout=60), "COMPLETED", "borrower lent again by the backup and completed")
        try:
            wait_until(lambda: c.job_state(second) == "RUNNING", 20, "a new loan on the backup")
        except AssertionError:
            # Seen once in CI (two test modules at once): the backup's
            # scheduler left the second borrower pending (Reason=Priority)
            # after the first completed, until another event; a job
            # submission is one.
            print("# the backup's scheduler waited for an event: submitting one", flush=True)
            c.run(["sbatch", "--output=/dev/null", "--wrap", "true"])
            wait_until(lambda: c.job_state(second) == "RUNNING", 40, "a new loan on the backup")
    except Exception:
        print(c.run(["squeue", "-o", "%i %T %r %S"], check=False).stdout)
        print(status.read_text())
        raise
    contains(ls.borrower_out(c, borrower), "resumed after 1 requeue(s)", "the borrower's second run")
    eq(ls.field(c.show_job(second), "NodeList"), "d1", "on the lender's node")
    contains(_backup_log(c), f"d1 slice 0 of JobId={lender} lent to JobId={second}", "the backup's loan")
    c.run(["scancel", str(second), str(lender)], check=False)
