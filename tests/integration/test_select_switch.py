"""Switching SelectType between select/cons_tres and select/flex with running
and pending jobs, and rolling the plugins back (issue 16 §1; docs/admin.md
"Switching SelectType" and "Upgrade and rollback" describe what these tests
observe). One node with two T4 (4 slices each); the tests run in order, each
starting from the state the one before left."""

import re
import time

from helpers import contains, eq, wait_until
from host_roles import plugin_dir_without, slurm_release

CLUSTER = dict(nodes=1, prefix="sw", shape="nvidia-2gpu", cpus=8, select="select/cons_tres")

SLEEP = "#!/bin/bash\nsleep 600\n"
NODE = "sw1"


def _conf(c):
    return c.dir / "etc" / "slurm.conf"


def _set(c, key, value):
    path = _conf(c)
    text, n = re.subn(rf"^{key}=.*$", f"{key}={value}", path.read_text(), flags=re.M)
    eq(n, 1, f"{key} in slurm.conf")
    path.write_text(text)


def _select_type(c):
    return re.search(r"^SelectType\s*=\s*(\S+)", c.run(["scontrol", "show", "config"]).stdout, re.M).group(1)


def _restart_all(c):
    """What an admin does after editing slurm.conf everywhere: restart slurmctld, then every slurmd
    (job steps keep running: slurmstepd is not slurmd's child). Returns where slurmctld's log starts."""
    since = len(c.log("slurmctld"))
    c.stop_daemon("slurmctld")
    c.stop_daemon(f"slurmd.{NODE}")
    c.start_slurmctld(clear_state=False)
    c.start_slurmd(NODE)
    wait_until(lambda: c.node_states().get(NODE, "").rstrip("*") in ("idle", "mixed", "allocated"), 60,
               f"{NODE} responding after the restart")
    return since


def _gres(c, job):
    return re.findall(r"\bGRES=(\S+)", c.show_job(job))


def _state(c, job):
    return c.job_state(job)


def _running(c, *jobs):
    for j in jobs:
        wait_until(lambda j=j: _state(c, j) == "RUNNING", 60, f"job {j} running")


def _reconfigure(c):
    r = c.run(["scontrol", "reconfigure"], check=False)
    # 23.11 and later re-execute slurmctld (and slurmd) for a reconfigure.
    wait_until(lambda: "UP" in c.run(["scontrol", "ping"], check=False).stdout, 60, "slurmctld up")
    return r


def test_reconfigure_and_select_type(c):
    """22.05: `scontrol reconfigure` refuses a new SelectType (slurmctld must be restarted). 23.11 and
    later re-execute slurmctld at a reconfigure, which switches it; a running job survives both ways."""
    job = c.sbatch("--gres=gpu:1", script=SLEEP)
    _running(c, job)
    _set(c, "SelectType", "select/flex")
    try:
        r = _reconfigure(c)
        if slurm_release(c) < (23, 11):
            eq(r.returncode, 1, f"reconfigure refused: {r.stderr}")
            contains(r.stderr, "SelectType change requires restart of the slurmctld daemon to take effect",
                     "scontrol's message")
            eq(_select_type(c), "select/cons_tres", "SelectType after reconfigure")
        else:
            eq(r.returncode, 0, f"reconfigure: {r.stderr}")
            eq(_select_type(c), "select/flex", "SelectType after reconfigure")
            eq(_state(c, job), "RUNNING", "the job across the switch")
    finally:
        _set(c, "SelectType", "select/cons_tres")
    if slurm_release(c) >= (23, 11):
        _reconfigure(c)
        eq(_select_type(c), "select/cons_tres", "SelectType after the second reconfigure")
    eq(_state(c, job), "RUNNING", "the job")
    c.run(["scancel", str(job)])
    c.wait_job(job, timeout=60)


STATE = {}


def test_cons_tres_to_flex_keeps_running_and_pending_jobs(c):
    g1 = c.sbatch("--gres=gpu:1", script=SLEEP)
    v1 = c.sbatch("--gres=vslice:2", script=SLEEP)
    _running(c, g1, v1)
    # cons_tres knows no exclusivity: the whole GPU and the two slices are on device 0.
    eq(_gres(c, g1), ["gpu:t4:1(IDX:0)"], "cons_tres: whole-GPU job")
    eq(_gres(c, v1), ["vslice:t4:2(IDX:0-1)"], "cons_tres: slice job on the same device")
    g2 = c.sbatch("--gres=gpu:2", script=SLEEP)
    v2 = c.sbatch("--gres=vslice:7", script=SLEEP)
    wait_until(lambda: _state(c, g2) == "PENDING" and _state(c, v2) == "PENDING", 10, "pending jobs")

    _set(c, "SelectType", "select/flex")
    _restart_all(c)
    eq(_select_type(c), "select/flex", "SelectType after the restart")
    eq([_state(c, j) for j in (g1, v1, g2, v2)], ["RUNNING", "RUNNING", "PENDING", "PENDING"], "jobs survive")
    eq(_gres(c, g1) + _gres(c, v1), ["gpu:t4:1(IDX:0)", "vslice:t4:2(IDX:0-1)"], "allocations kept")

    # The jobs end normally and the pending ones start under select/flex's rules.
    c.run(["scancel", str(g1), str(v1)])
    for j in (g1, v1):
        eq(c.wait_job(j, timeout=60), "CANCELLED", f"job {j} ends")
    _running(c, g2)
    eq(_gres(c, g2), ["gpu:t4:2(IDX:0-1)"], "the pending whole-GPU job started")
    v3 = c.sbatch("--gres=vslice:1", script=SLEEP)
    time.sleep(5)
    # select/flex: no slice on a device held whole (cons_tres would start it).
    eq([_state(c, j) for j in (v2, v3)], ["PENDING", "PENDING"], "slice jobs wait for a device")
    STATE.update(g2=g2, v2=v2, v3=v3)


def test_flex_to_cons_tres(c):
    g2, v2, v3 = STATE["g2"], STATE["v2"], STATE["v3"]
    _set(c, "SelectType", "select/cons_tres")
    flexslurm_dir = c.plugin_dir
    if slurm_release(c) < (25, 11):
        # Wrong: SelectType back to cons_tres and select_flex.so gone in one step. Up to 24.11 every
        # job record saved by select/flex names its plugin id, so slurmctld cannot read them.
        _set(c, "PluginDir", plugin_dir_without(c, "select_flex.so"))
        since = len(c.log("slurmctld"))
        c.stop_daemon("slurmctld")
        try:
            c.start_slurmctld(clear_state=False)
            raise AssertionError("slurmctld started without select_flex.so over select/flex's job records")
        except Exception as e:  # noqa: BLE001 - ClusterError from the start, checked below
            if "slurmctld exited" not in str(e):
                raise
        log = c.log("slurmctld")[since:]
        contains(log, "fatal: Incomplete job state save file, start with '-i' to ignore this", "slurmctld log")
        # Nothing is lost yet: with the plugin back, the same state loads.
        _set(c, "PluginDir", f"{flexslurm_dir}:{c.system_plugin_dir}")
        _restart_all(c)
        # Once slurmctld has saved its state under cons_tres, select_flex.so may go.
        _set(c, "PluginDir", plugin_dir_without(c, "select_flex.so"))
    else:
        # From 25.11 select/flex saves cons_tres's plugin id: both in one step.
        _set(c, "PluginDir", plugin_dir_without(c, "select_flex.so"))
    _restart_all(c)
    eq(_select_type(c), "select/cons_tres", "SelectType after the restart")
    eq(_state(c, g2), "RUNNING", "whole-GPU job survives")
    eq(_gres(c, g2), ["gpu:t4:2(IDX:0-1)"], "its allocation kept")
    # cons_tres starts the slice jobs on the devices the whole-GPU job holds.
    _running(c, v2, v3)
    c.run(["scancel", str(g2), str(v2)])
    for j in (g2, v2):
        c.wait_job(j, timeout=60)


def test_gres_rollback_with_slice_jobs(c):
    """vslice out of GresTypes while a slice job runs and one is pending: Slurm forgets the running
    job's slices (it keeps running), the pending one can never run, new requests are refused."""
    v3 = STATE["v3"]
    v4 = c.sbatch("--gres=vslice:8", script=SLEEP)  # 7 free: pending
    wait_until(lambda: _state(c, v4) == "PENDING", 10, "pending slice job")
    _set(c, "GresTypes", "gpu")
    path = _conf(c)
    path.write_text(path.read_text().replace(",vslice:t4:8", ""))
    since = _restart_all(c)
    log = c.log("slurmctld")[since:]
    contains(log, "gres_job_state_unpack: no plugin configured to unpack data type", "slurmctld log")
    eq(_state(c, v3), "RUNNING", "the running slice job keeps running")
    eq(_gres(c, v3), [], "but Slurm no longer records its slices")
    wait_until(lambda: "Reason=BadConstraints" in c.show_job(v4), 30, "pending slice job never runnable")
    eq(_state(c, v4), "PENDING", "it stays pending")
    r = c.sbatch("--gres=vslice:1", script=SLEEP, check=False)
    eq(isinstance(r, int), False, "new slice jobs refused")
    contains(r.stderr, "Invalid generic resource (gres) specification", "sbatch's message")
    # A whole-GPU job now gets the device the slice job still uses.
    g = c.sbatch("--gres=gpu:2", script=SLEEP)
    _running(c, g)
    eq(_gres(c, g), ["gpu:t4:2(IDX:0-1)"], "whole-GPU job over the slice job's device")
    c.run(["scancel", str(g), str(v3), str(v4)])
