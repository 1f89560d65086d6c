# SPDX-License-Identifier: GPL-2.0-or-later
"""slurmd as init scripts start it (without -D: it forks into a daemon), and
slurmd -G / -C beside a running slurmd, with lending configured: the node
agent reports from the daemon, `scontrol reconfigure` and shutdown finish
(bounded waits, a hang fails the test), and -G / -C send no report (a report
with a newer epoch would make every later report of the running agent
"not newer than the last accepted")."""

import re
import time

from helpers import contains, eq, wait_until
from test_lending import YAML, _cli

LENDER = "#!/bin/bash\nsleep 100000\n"


def _prepare(c):
    for node in c.nodes:
        (c.dir / "telemetry" / node).mkdir(parents=True)
        (c.dir / "telemetry" / node / "nvidia0").write_text("busy 0\n")


# h1, h2: one T4 each, 4 slices; h1's slurmd daemonized (tracked by its
# PidFile), h2's in the foreground (-D).
CLUSTER = dict(nodes=2, prefix="h", shape="nvidia-1gpu", cpus=8, select="select/flex", flexslurm_yaml=YAML,
               lending=True, node_addrs=True, prepare=_prepare, daemonize={"h1"})

REJECTED = "is not newer than the last accepted"


def _telemetry(c, text, node="h1"):
    path = c.dir / "telemetry" / node / "nvidia0"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _ctld_log(c):
    return (c.dir / "log" / "slurmctld.log").read_text(errors="replace")


def _slice_state(c, lender, node="h1"):
    """The state select/flex shows for the lender's slice, from flexslurm-lending status."""
    m = re.search(rf"^{node} \d+ \d+ (\S+) JobId={lender} ", c.run([_cli(c), "status"]).stdout, re.M)
    return m.group(1) if m else None


def _agent_is_heard(c, lender, what, node="h1"):
    """The slice follows what the telemetry says, so the agent's reports reach the controller."""
    _telemetry(c, f"busy 80\njob {lender} busy 80\n", node)
    wait_until(lambda: _slice_state(c, lender, node) == "owned-busy", 10,
               f"{what}: {node}'s slice busy, as reported")
    _telemetry(c, "busy 0\n", node)
    wait_until(lambda: _slice_state(c, lender, node) == "idle", 10, f"{what}: {node}'s slice idle, as reported")


def _lender(c, node="h1"):
    lenders = c.__dict__.setdefault("h_lenders", {})
    if lenders.get(node) and c.job_state(lenders[node]) == "RUNNING":
        return lenders[node]
    lenders[node] = c.sbatch("--gres=vslice:1", "-w", node, script=LENDER)
    wait_until(lambda: c.job_state(lenders[node]) == "RUNNING", 20, f"lender on {node} running")
    return lenders[node]


def _node_serves_jobs(c, what):
    job = c.sbatch("-w", "h1", "--gres=vslice:1", script="#!/bin/bash\necho served\n")
    eq(c.wait_job(job, timeout=30), "COMPLETED", f"{what}: a job on h1")


def test_daemonized_slurmd_runs_the_agent(c):
    daemon = c.procs["slurmd.h1"]
    pidfile_pid = int((c.dir / "state" / "slurmd.h1.pid").read_text().split()[0])
    eq(daemon.pid, pidfile_pid, "the daemon is the PidFile's")
    lender = _lender(c)
    wait_until(lambda: _slice_state(c, lender) == "idle", 10, "the idle lender's slice idle (reports arrive)")
    _agent_is_heard(c, lender, "daemonized slurmd")
    contains(c.log("slurmd.h1"), f"reclaim agent: reporting to port {c.lending_port} every 1s (slurmd pid {daemon.pid})",
             "the agent runs in the daemon")
    _node_serves_jobs(c, "daemonized slurmd")


def test_slurmd_G_and_C_send_no_report(c):
    """Beside a daemonized (h1) and a foreground (h2) slurmd."""
    lenders = {node: _lender(c, node) for node in c.nodes}
    mark = len(_ctld_log(c))
    for node in c.nodes:
        for option, shows in [("-G", "vslice"), ("-C", "NodeName=")]:
            t0 = time.monotonic()
            r = c.slurmd_prints(node, option)
            eq(r.returncode, 0, f"slurmd {option} -N {node}: {r.stdout} {r.stderr}")
            contains(r.stdout + r.stderr, shows, f"slurmd {option} -N {node} output")
            eq("reclaim agent" in r.stdout + r.stderr, False, f"slurmd {option} -N {node} starts no agent")
            if time.monotonic() - t0 > 20:
                raise AssertionError(f"slurmd {option} -N {node} took {time.monotonic() - t0:.0f}s")
    time.sleep(3)  # three report intervals of the running agents
    for node in ["h2", "h1"]:
        _agent_is_heard(c, lenders[node], "after slurmd -G and -C", node)
    new = _ctld_log(c)[mark:]
    if REJECTED in new:
        raise AssertionError(f"the running agents' reports are rejected after -G/-C:\n{new[-3000:]}")


def test_reconfigure_restarts_the_agent_in_the_daemon(c):
    """22.05 reconfigures in place; from 23.11 slurmd re-executes itself (a new
    daemon, its PID in the PidFile) and the old one exits."""
    lender = _lender(c)
    starts = c.log("slurmd.h1").count("reclaim agent: reporting to port")
    mark = len(_ctld_log(c))
    for n in range(2):
        old = c.procs["slurmd.h1"]
        c.run(["scontrol", "reconfigure"], timeout=20)
        wait_until(lambda n=n: c.log("slurmd.h1").count("reclaim agent: reporting to port") >= starts + n + 1,
                   20, f"reconfigure {n + 1}: the agent restarted in slurmd")
        pid = c.follow_daemonized_slurmd("h1")
        if pid != old.pid:
            wait_until(lambda: old.poll() is not None, 10, f"the slurmd {old.pid} that handed over exits")
        contains(c.log("slurmd.h1"), f"(slurmd pid {pid})", "the agent runs in the serving slurmd")
        _node_serves_jobs(c, f"after reconfigure {n + 1}")
        _agent_is_heard(c, lender, f"after reconfigure {n + 1}")
    new = _ctld_log(c)[mark:]
    if REJECTED in new:
        raise AssertionError(f"reports rejected after reconfigure:\n{new[-3000:]}")


# A borrower that names itself slurmstepd (a copy of bash under that name,
# exec'd: its comm is "slurmstepd") and ignores SIGTERM; no other process.
FORGED_STEPD = """#!/bin/bash
mkdir -p {out}/forged.$SLURM_JOB_ID && cp /bin/bash {out}/forged.$SLURM_JOB_ID/slurmstepd
exec {out}/forged.$SLURM_JOB_ID/slurmstepd -c '
trap "" TERM
trap "echo checkpoint >>{out}/forged.$SLURM_JOB_ID/log" USR1
exec 3<{dev}
mkfifo {out}/forged.$SLURM_JOB_ID/fifo && exec 4<>{out}/forged.$SLURM_JOB_ID/fifo
while :; do read -t 1 -u 4 x; done'
"""


def test_hard_stop_kills_a_borrower_named_slurmstepd(c):
    """The agent hard-stops a borrower whatever it calls itself (h2: the module's foreground slurmd)."""
    from test_lending import GRACE, HARD_STOP, _holders
    lender = _lender(c, "h2")
    _telemetry(c, "busy 0\n", "h2")
    wait_until(lambda: _slice_state(c, lender, "h2") == "idle", 10, "the lender's slice idle")
    dev = c.dir / "dev" / "h2" / "nvidia0"
    borrower = c.sbatch("--gres=vborrow:1", "-w", "h2", "--signal=B:USR1@60",
                        script=FORGED_STEPD.format(out=c.dir / "out", dev=dev))
    wait_until(lambda: c.job_state(borrower) == "RUNNING" and _holders(dev), 30, "borrower on the device")
    holder = _holders(dev)[0]
    eq(open(f"/proc/{holder}/comm").read().strip(), "slurmstepd", "the borrower's name")
    time.sleep(3)
    t0 = time.monotonic()
    _telemetry(c, f"busy 80\njob {lender} busy 80\n", "h2")
    # The agent's stop is due at t0 + G + hard_stop_after; slurmd's own
    # SIGKILL (KillWait 5 s after the requeue, itself at t0 + G) comes later.
    wait_until(lambda: not _holders(dev), GRACE + HARD_STOP + 8, "the agent's hard stop of the forged slurmstepd")
    log = c.log("slurmd.h2")
    if not re.search(rf"hard stop of borrower JobId={borrower}: [1-9]\d* process\(es\) killed", log):
        raise AssertionError(f"the agent killed nothing ({time.monotonic() - t0:.1f}s):\n{log[-3000:]}")
    # Its slurmstepd was left alone: the job is requeued, not failed.
    wait_until(lambda: c.job_state(borrower) == "PENDING", 20, "the borrower requeued (its slurmstepd alive)")
    _telemetry(c, "busy 0\n", "h2")
    c.run(["scancel", str(borrower)], check=False)


def test_daemonized_slurmd_shuts_down(c):
    c.run(["scancel", "--user=root"], check=False)
    wait_until(lambda: not c.run(["squeue", "-h", "-o", "%i"]).stdout.strip(), 30, "the queue empty")
    for node in c.nodes:
        t0 = time.monotonic()
        if not c.stop_daemon(f"slurmd.{node}", timeout=20):
            raise AssertionError(f"slurmd {node} did not exit within 20 s of SIGTERM (killed):\n"
                                 f"{c.log(f'slurmd.{node}')[-2000:]}")
        contains(c.log(f"slurmd.{node}")[-3000:], "Slurmd shutdown completing",
                 f"{node}: slurmd's own shutdown ({time.monotonic() - t0:.1f}s)")
