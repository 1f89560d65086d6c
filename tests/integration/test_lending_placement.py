# SPDX-License-Identifier: GPL-2.0-or-later
"""lending.free_slices and whole GPUs, on lp1 (two T4s, 4 slices each): a borrower runs on a free
slice of nvidia0; a job asking for one whole GPU gets nvidia1, which no borrower uses, and the
borrower runs on; the next one needs nvidia0, starts at once all the same, and the borrower is
taken back (owner-arrived). Once with typed gpu lines (cons_tres picks the GPU under job_test's
masks) and once untyped (Slurm picks it at allocation, under mask_for_allocation's)."""

import time

import lending_scene as scene
from helpers import contains, eq, wait_until


def _prepare(c):
    scene.prepare(c)
    for node in c.nodes:
        (c.dir / "telemetry" / node / "nvidia1").write_text("busy 0\n")


def _cluster(env, name, gres_conf=None):
    return env.cluster(name, nodes=1, prefix="lp", shape="nvidia-2gpu", cpus=8, select="select/flex",
                       flexslurm_yaml=scene.lending_yaml(extra="  free_slices: true\n"), lending=True,
                       node_addrs=True, prepare=_prepare, gres_conf=gres_conf,
                       gres_per_node={"lp1": "gpu:2,vslice:t4:8,vborrow:t4:8"} if gres_conf else None)


def _log(c):
    return (c.dir / "log" / "slurmctld.log").read_text(errors="replace")


def test_typed_gpu_lines(env):
    with _cluster(env, "typed") as c:
        _whole_gpu_owners_take_the_device_no_borrower_uses_first(c)


def test_untyped_gpu_lines(env):
    with _cluster(env, "untyped", "NodeName=lp1 Name=gpu File={dir}/dev/lp1/nvidia[0-1]\n") as c:
        _whole_gpu_owners_take_the_device_no_borrower_uses_first(c)


def _whole_gpu_owners_take_the_device_no_borrower_uses_first(c):
    scene.clean(c)
    node = c.nodes[0]
    dev0 = scene.device(c, node)
    borrower = scene.borrower(c, node)
    wait_until(lambda: c.job_state(borrower) == "RUNNING", 40, "borrower running on a free slice")
    units = scene.job_units(c, borrower, "vborrow")
    eq(len(units) == 1 and units <= {0, 1, 2, 3}, True, f"the borrower shadows a slice of nvidia0 ({units})")
    u = min(units)
    wait_until(lambda: "started" in scene.borrower_out(c, borrower) and scene.holders(dev0), 20,
               "borrower holds nvidia0")
    # One whole GPU: nvidia1 is open and no borrower uses it.
    first = c.sbatch("--gres=gpu:1", "-w", node, script=scene.LENDER)
    wait_until(lambda: c.job_state(first) == "RUNNING", 20, "first whole-GPU owner running")
    eq(scene.job_units(c, first, "gpu"), {1}, "the first whole-GPU owner got nvidia1, which no borrower uses")
    time.sleep(4)  # a reclaim, had one started, would show by now
    eq(c.job_state(borrower), "RUNNING", "the borrower runs on beside it")
    eq(f"reclaim JobId={borrower} " in _log(c), False, "no reclaim started")
    # The next needs nvidia0: it starts at once and the borrower is taken back.
    t0 = time.monotonic()
    second = c.sbatch("--gres=gpu:1", "-w", node, script=scene.LENDER)
    wait_until(lambda: c.job_state(second) == "RUNNING", 10, "second whole-GPU owner starts at once")
    eq(scene.job_units(c, second, "gpu"), {0}, "the second whole-GPU owner got nvidia0")
    wait_until(lambda: c.job_state(borrower) != "RUNNING" and not scene.holders(dev0), scene.BOUND + 5,
               "borrower off nvidia0")
    took = time.monotonic() - t0
    eq(took <= scene.BOUND, True, f"reclaim took {took:.1f}s (bound {scene.BOUND}s)")
    log = _log(c)
    contains(log, f"reclaim JobId={borrower} from {node} slice {u}", "the reclaim logged")
    contains(log[log.index(f"reclaim JobId={borrower} from"):].splitlines()[0], "owner-arrived",
             "the reclaim's reason")
    wait_until(lambda: c.job_state(borrower) == "PENDING", 20, "borrower requeued")
    eq([c.job_state(first), c.job_state(second)], ["RUNNING"] * 2, "owners untouched")
    c.run(["scancel", str(borrower), str(first), str(second)], check=False)
