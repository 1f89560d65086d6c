# SPDX-License-Identifier: GPL-2.0-or-later
"""select/flex on a real cluster: placement, whole-device/slice exclusivity,
and a slurmctld restart with jobs running."""

import datetime
import re
import signal
import time

from gres_state import device_conflicts, holdings, random_stream, sliced_devices
from helpers import contains, eq, wait_until
from localcluster import DEFAULT_YAML

SLICES = 8
# The local cluster's flexslurm.yaml with 8 slices per device and a
# `spread` partition.
YAML = DEFAULT_YAML.replace("slices: 4", "slices: 8") + """\
placement:
  default: best_fit
  partitions:
    spread: spread
"""

# f1: two T4 (16 slices), f2: one T4 (8 slices)
CLUSTER = dict(nodes=2, prefix="f", node_shapes={"f1": "nvidia-2gpu", "f2": "nvidia-1gpu"}, slices=SLICES,
               cpus=16, select="select/flex", flexslurm_yaml=YAML, partitions=["main", "spread"],
               spank_args=["isolation=required"])

HOLD = "#!/bin/bash\nwhile [ ! -e {flag} ]; do sleep 0.2; done\n"


def _idx(c, job):
    m = re.search(r"[\s=,]vslice:t4:\d+\(IDX:([^)]*)\)", c.show_job(job))
    return m.group(1) if m else None


def _devices(c, job):
    return sliced_devices(c.show_job(job), SLICES)


def _release(c, jobs, flag):
    flag.touch()
    for j in jobs:
        c.wait_job(j)


def _hold(c, name):
    flag = c.dir / "out" / f"release-{name}"
    return flag, HOLD.format(flag=flag)


def test_select_flex_is_the_select_plugin(c):
    contains(c.run(["scontrol", "show", "config"]).stdout, "SelectType              = select/flex", "config")
    job = c.sbatch("-w", "f1", "--gpus=1", script="#!/bin/bash\necho CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES\n")
    eq(c.wait_job(job), "COMPLETED", "--gpus=1 job (cons_tres semantics)")
    contains(c.job_output(job), "CUDA_VISIBLE_DEVICES=0", "--gpus job env")
    # Slurm accepts --mem-per-gpu only when the select plugin counts as cons_tres.
    job = c.sbatch("-w", "f1", "--gpus=1", "--mem-per-gpu=100M", script="#!/bin/bash\ntrue\n")
    eq(c.wait_job(job), "COMPLETED", "--mem-per-gpu job")
    detail = c.show_job(job)
    eq(bool(re.search(r"MemPerTres=gres[:/]gpu:100\b", detail)), True, f"memory per GPU recorded:\n{detail}")


def test_best_fit_four_two_slice_jobs_on_one_device(c):
    flag, script = _hold(c, "bestfit")
    jobs = [c.sbatch("-w", "f1", "--gres=vslice:2", script=script) for _ in range(4)]
    try:
        for j in jobs:
            c.wait_job(j, states=("RUNNING",))
        eq([_devices(c, j) for j in jobs], [[0]] * 4, "devices of four 2-slice jobs")
        # A 4-slice job now goes to the empty device; a 6-slice one waits for it? No: device 1 has 8.
        big = c.sbatch("-w", "f1", "--gres=vslice:6", script=script)
        c.wait_job(big, states=("RUNNING",))
        eq(_devices(c, big), [1], "6-slice job on the other device")
        jobs.append(big)
    finally:
        _release(c, jobs, flag)


def test_best_fit_does_not_straddle_devices(c):
    flag, script = _hold(c, "straddle")
    a = c.sbatch("-w", "f1", "--gres=vslice:6", script=script)
    c.wait_job(a, states=("RUNNING",))
    b = c.sbatch("-w", "f1", "--gres=vslice:4", script=script)  # first-fit would take 6,7,8,9
    c.wait_job(b, states=("RUNNING",))
    d = c.sbatch("-w", "f1", "--gres=vslice:2", script=script)  # fills device 0
    c.wait_job(d, states=("RUNNING",))
    try:
        eq([_idx(c, a), _idx(c, b), _idx(c, d)], ["0-5", "8-11", "6-7"], "slice indices")
    finally:
        _release(c, [a, b, d], flag)


def test_spread_partition_uses_both_devices(c):
    flag, script = _hold(c, "spread")
    jobs = [c.sbatch("-p", "spread", "-w", "f1", "--gres=vslice:2", script=script) for _ in range(4)]
    try:
        for j in jobs:
            c.wait_job(j, states=("RUNNING",))
        eq(sorted(_devices(c, j)[0] for j in jobs), [0, 0, 1, 1], "devices with spread")
    finally:
        _release(c, jobs, flag)


def _seven_on_each_device(c, name):
    """Two jobs of 7 slices on f1: one free slice on each device."""
    flags = [c.dir / "out" / f"release-{name}-{k}" for k in (0, 1)]
    jobs = [c.sbatch("-w", "f1", "--gres=vslice:7", script=HOLD.format(flag=f)) for f in flags]
    for j in jobs:
        c.wait_job(j, states=("RUNNING",))
    eq([_devices(c, j) for j in jobs], [[0], [1]], "devices of the two 7-slice jobs")
    return jobs, flags


SHOW_AND_HOLD = "#!/bin/bash\necho CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES\n" + HOLD


def test_one_device_request_waits_for_one_device(c):
    """Two free slices, one on each device: --gres=vslice:2 is not split
    over them; it pends (accepted at submit) and starts, on one device, when
    one frees."""
    jobs, flags = _seven_on_each_device(c, "onedev")
    flag, _ = _hold(c, "onedev-job")
    job = c.sbatch("-w", "f1", "--gres=vslice:2", script=SHOW_AND_HOLD.format(flag=flag))
    try:
        time.sleep(3)  # several scheduling and backfill cycles
        eq(c.job_state(job), "PENDING", "2-slice job while no device has 2 free")
        contains(c.show_job(job), "Reason=Resources", "pending reason")
        flags[0].touch()
        eq(c.wait_job(jobs[0]), "COMPLETED", "first 7-slice job")
        c.wait_job(job, states=("RUNNING",), timeout=30)
        eq(_devices(c, job), [0], "the 2-slice job on the freed device only")
        _expect_visible_devices(c, job, "0")
    finally:
        for f in flags:
            f.touch()
        _release(c, [*jobs, job], flag)


def _expect_visible_devices(c, job, value):
    """Waits for the held job's printed environment and checks CUDA_VISIBLE_DEVICES."""
    wait_until(lambda: (c.dir / "out" / f"{job}.out").exists() and "CUDA" in c.job_output(job), 10, "job output")
    contains(c.job_output(job), f"CUDA_VISIBLE_DEVICES={value}\n", "job environment")


def test_vslice_split_runs_at_once_on_two_devices(c):
    jobs, flags = _seven_on_each_device(c, "split")
    flag, _ = _hold(c, "split-job")
    job = c.sbatch("-w", "f1", "--vslice-split", "--gres=vslice:2", script=SHOW_AND_HOLD.format(flag=flag))
    try:
        c.wait_job(job, states=("RUNNING",), timeout=15)
        eq(_devices(c, job), [0, 1], "the opted-in job takes a slice on each device")
        eq(_idx(c, job), "7,15", "its slices")
        _expect_visible_devices(c, job, "0,1")
    finally:
        for f in flags:
            f.touch()
        _release(c, [*jobs, job], flag)


def _waits_then_runs(c, first, second):
    """`second` pends while `first` holds f2's only device, answered by
    select/flex's own view of the devices (the main scheduler's test of it
    does not reach cons_tres), and runs when `first` ends."""
    flag, script = _hold(c, f"order-{first}")
    a = c.sbatch("-w", "f2", f"--gres={first}", script=script)
    c.wait_job(a, states=("RUNNING",))
    log = c.dir / "log" / "slurmctld.log"
    mark = len(log.read_text(errors="replace"))
    c.run(["scontrol", "setdebug", "debug2"])
    try:
        b = c.sbatch("-w", "f2", f"--gres={second}", script="#!/bin/bash\ntrue\n")
        time.sleep(3)  # several scheduling cycles (sched_interval=1)
        eq(c.job_state(b), "PENDING", f"{second} while {first} holds the only device")
        contains(c.show_job(b), "Reason=Resources", "pending reason")
        contains(log.read_text(errors="replace")[mark:],
                 f"select/flex: JobId={b}: no candidate node's devices can take it now", "slurmctld log")
    finally:
        c.run(["scontrol", "setdebug", "info"], check=False)
        flag.touch()
    eq(c.wait_job(a), "COMPLETED", first)
    eq(c.wait_job(b), "COMPLETED", f"{second} after {first} ended")


def test_gpu_then_slice_waits(c):
    _waits_then_runs(c, "gpu:1", "vslice:1")


def test_slice_then_gpu_waits(c):
    _waits_then_runs(c, "vslice:1", "gpu:1")


def test_gpu_and_slices_in_one_job_use_different_devices(c):
    flag, script = _hold(c, "both")
    job = c.sbatch("-w", "f1", "--gres=gpu:1,vslice:2", script=script)
    try:
        c.wait_job(job, states=("RUNNING",))
        rows = holdings(c.show_job(job))
        gpus = [u for _j, _n, name, idx in rows if name == "gpu" for u in idx]
        eq(len(gpus), 1, f"one gpu: {rows}")
        eq(_devices(c, job) == gpus, False, f"slices and the whole GPU on different devices: {rows}")
        eq(device_conflicts(rows, SLICES), [], "conflicts")
    finally:
        _release(c, [job], flag)


def test_backfill_respects_exclusivity(c):
    """A whole GPU held, a two-GPU job blocked behind it: only backfill may
    start the short slice job queued after them, and only on the free device."""
    flag, script = _hold(c, "backfill")
    a = c.sbatch("-w", "f1", "-t", "10", "--gres=gpu:1", script=script)
    c.wait_job(a, states=("RUNNING",))
    held = [u for _j, _n, name, idx in holdings(c.show_job(a)) if name == "gpu" for u in idx]
    b = c.sbatch("-w", "f1", "-t", "10", "--gres=gpu:2", script=script)
    d = c.sbatch("-w", "f1", "-t", "1", "--gres=vslice:2", script=script)
    try:
        c.wait_job(d, states=("RUNNING",), timeout=30)
        detail = c.show_job(d)
        contains(detail, "Scheduler=Backfill", "slice job started by backfill")
        eq(_devices(c, d) == held, False, f"slice job device {_devices(c, d)} vs whole GPU {held}")
        eq(c.job_state(b), "PENDING", "two-GPU job still waits")
    finally:
        c.run(["scancel", str(b)])
        _release(c, [a, d], flag)


def _time_field(c, job, field):
    """A job's StartTime/EndTime as a datetime, None while Unknown."""
    m = re.search(rf"\b{field}=(\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d)", c.show_job(job))
    return datetime.datetime.fromisoformat(m.group(1)) if m else None


def _planned(c, job, near, what):
    """Waits for backfill to plan the pending job; its planned start must be
    within a minute or two of `near` (bf_resolution rounds it)."""
    when = wait_until(lambda: _time_field(c, job, "StartTime"), 15, f"{what}: a planned start")
    if abs((when - near).total_seconds()) > 150:
        raise AssertionError(f"{what}: planned at {when}, expected near {near}")
    return when


def test_backfill_reserves_a_device_for_a_whole_gpu_job(c):
    """A slice in use on f2's only device, a whole-GPU job queued behind it:
    backfill plans the GPU job for when the slice job's time ends, and a
    later slice job whose time would run past that start does not take the
    device's free slices meanwhile (it would keep the GPU job waiting); one
    that ends before it does."""
    flag, script = _hold(c, "bf-gpu")
    a = c.sbatch("-w", "f2", "-t", "5", "--gres=vslice:1", script=script)
    c.wait_job(a, states=("RUNNING",))
    b = c.sbatch("-w", "f2", "-t", "3", "--gres=gpu:1", script=script)
    try:
        when = _planned(c, b, _time_field(c, a, "EndTime"), "the whole-GPU job")
        d = c.sbatch("-w", "f2", "-t", "10", "--gres=vslice:1", script=script)
        time.sleep(4)  # several scheduling and backfill cycles
        eq(c.job_state(d), "PENDING", f"10-minute slice job while the GPU job is planned at {when}")
        eq(c.job_state(b), "PENDING", "the GPU job while the slice is in use")
        e = c.sbatch("-w", "f2", "-t", "1", "--gres=vslice:1", script="#!/bin/bash\ntrue\n")
        eq(c.wait_job(e, timeout=30), "COMPLETED", "a 1-minute slice job, by backfill meanwhile")
        contains(c.show_job(e), "Scheduler=Backfill", "how the 1-minute slice job started")
    finally:
        flag.touch()
    eq(c.wait_job(a), "COMPLETED", "first slice job")
    eq(c.wait_job(b), "COMPLETED", "the whole-GPU job")
    eq(c.wait_job(d), "COMPLETED", "the later slice job")


def test_backfill_plans_the_device_that_frees_first(c):
    """f1's two devices held whole for 30 minutes, f2's device sliced for 5:
    a whole-GPU job on either node is planned on f2, when its slices end,
    not on f1 when a whole GPU does (what cons_tres alone would answer)."""
    flag, script = _hold(c, "bf-first")
    whole = [c.sbatch("-w", "f1", "-t", "30", "--gres=gpu:1", script=script) for _ in range(2)]
    a = c.sbatch("-w", "f2", "-t", "5", "--gres=vslice:1", script=script)
    jobs = [*whole, a]
    try:
        for j in jobs:
            c.wait_job(j, states=("RUNNING",))
        b = c.sbatch("-t", "3", "--gres=gpu:1", script=script)
        jobs.append(b)
        _planned(c, b, _time_field(c, a, "EndTime"), "the whole-GPU job")
        contains(c.show_job(b), "SchedNodeList=f2", "the node it is planned on")
    finally:
        flag.touch()
        c.run(["scancel", *map(str, jobs)])
        for j in jobs:
            c.wait_job(j)


def test_backfill_plans_a_whole_gpu_job_when_the_cpus_free_too(c):
    """f2's device sliced for 5 minutes and its other 15 CPUs held for 10:
    a whole-GPU job asking 2 CPUs on f2 is planned when the CPUs come back,
    not when the slices end (its device and one CPU are free then, the
    second CPU is not; the test as of the devices' time must not be taken as
    the plan)."""
    flag, script = _hold(c, "bf-cpus")
    a = c.sbatch("-w", "f2", "-t", "5", "--gres=vslice:1", script=script)
    cpus = c.sbatch("-w", "f2", "-t", "10", "-c", "15", script=script)
    jobs = [a, cpus]
    try:
        for j in jobs:
            c.wait_job(j, states=("RUNNING",))
        b = c.sbatch("-w", "f2", "-t", "3", "-c", "2", "--gres=gpu:1", script=script)
        jobs.append(b)
        _planned(c, b, _time_field(c, cpus, "EndTime"), "the whole-GPU job")
    finally:
        flag.touch()
        c.run(["scancel", *map(str, jobs)])
        for j in jobs:
            c.wait_job(j)


def test_resize_releases_slices(c):
    flag, script = _hold(c, "resize")
    job = c.sbatch("-N", "2", "-w", "f1,f2", "--gres=vslice:2", script=script)
    jobs = [job]
    try:
        c.wait_job(job, states=("RUNNING",))
        eq(sorted({n for _j, n, _g, _i in holdings(c.show_job(job))}), ["f1", "f2"], "two nodes")
        c.run(["scontrol", "update", f"JobId={job}", "NumNodes=1"])
        rows = wait_until(lambda: (r := holdings(c.show_job(job))) and len({x[1] for x in r}) == 1 and r, 20,
                          "job to shrink to one node")
        kept = rows[0][1]
        freed = "f2" if kept == "f1" else "f1"
        # The freed node's devices are whole again: a whole-GPU job may take one.
        g = c.sbatch("-w", freed, "--gres=gpu:1", script=script)
        jobs.append(g)
        c.wait_job(g, states=("RUNNING",))
        eq(device_conflicts(holdings(c.run(["scontrol", "show", "job", "-d"]).stdout), SLICES), [],
           "conflicts after resize")
    finally:
        _release(c, jobs, flag)


def test_random_mixed_sequence_never_overlaps(c):
    checks, max_running, _, states = random_stream(c, 20261125, 200, [1, 1, 2, 3, 4, 8], 0.3, [0.3, 0.6, 1.0, 1.5],
                                                   SLICES, timeout=400, tail=20)
    eq(states.count("COMPLETED"), 200, "all 200 jobs completed")
    if max_running < 3:
        raise AssertionError(f"jobs never overlapped in time (max {max_running} running): test proves nothing")
    print(f"  {checks} checks, up to {max_running} jobs running at once")


def test_restart_with_jobs_running_keeps_allocations(c):
    flag, script = _hold(c, "restart")
    s1 = c.sbatch("-w", "f1", "--gres=vslice:3", script=script)
    g1 = c.sbatch("-w", "f1", "--gres=gpu:1", script=script)
    s2 = c.sbatch("-w", "f2", "--gres=vslice:8", script=script)
    jobs = [s1, g1, s2]
    try:
        for j in jobs:
            c.wait_job(j, states=("RUNNING",))
        before = sorted(holdings(c.run(["scontrol", "show", "job", "-d"]).stdout))
        eq(len(before), 3, f"three allocations: {before}")
        # slurmctld writes its state a moment after changes; kill it once
        # the running jobs are on disk (a crash before that loses them in
        # stock Slurm too).
        started = time.time()
        state = c.dir / "state" / "job_state"
        # A change to a job makes slurmctld save the job state soon (if the
        # last save came before `started`, nothing else would within 30 s).
        time.sleep(1.1)  # mtime resolution: a save in the same second as `started` is not one after it
        c.run(["scontrol", "update", f"JobId={s1}", "Comment=restart-test"])
        wait_until(lambda: state.exists() and state.stat().st_mtime > started, 30, "job state saved")
        c.stop_daemon("slurmctld", sig=signal.SIGKILL)
        c.start_slurmctld(clear_state=False)
        wait_until(lambda: all(c.job_state(j) == "RUNNING" for j in jobs), 30, "jobs RUNNING after restart")
        after = sorted(holdings(c.run(["scontrol", "show", "job", "-d"]).stdout))
        eq(after, before, "allocations after restart")
        # Exclusivity still enforced: f1's device 0 is sliced, device 1 whole.
        g2 = c.sbatch("-w", "f1", "--gres=gpu:1", script="#!/bin/bash\ntrue\n")
        s3 = c.sbatch("-w", "f1", "--gres=vslice:2", script=script)
        c.wait_job(s3, states=("RUNNING",))
        jobs.append(s3)
        eq(_devices(c, s3), [0], "slice job after restart goes to the sliced device")
        time.sleep(2)
        eq(c.job_state(g2), "PENDING", "gpu job after restart while both devices are taken")
        jobs.append(g2)
        eq(device_conflicts(holdings(c.run(["scontrol", "show", "job", "-d"]).stdout), SLICES), [],
           "conflicts after restart")
    finally:
        _release(c, jobs, flag)
