# SPDX-License-Identifier: GPL-2.0-or-later
"""Whole-GPU/slice exclusivity under select/flex for every form of gres.conf
gpu lines Slurm accepts: typed or untyped, with or without Cores=, a range or
one line per file (the last as AutoDetect=nvml writes its records: per file,
Type, Cores, Links). Each form gets a seeded random stream of whole-GPU and
slice jobs on a real cluster, and every snapshot of `scontrol show job -d` is
checked: no device is held whole while any of its slices is held."""

from gres_state import random_stream, sliced_devices
from helpers import eq
from test_select_flex import _hold, _planned, _time_field

SLICES = 4  # the local cluster's default flexslurm.yaml
SUBMISSIONS = 50
# The node has CPUs=8 and nothing else: 8 sockets of one core as Slurm counts
# them, and 26.05 refuses a Cores= range that crosses sockets.

FORMS = {
    "typed_range": ("gpu:t4:2", "NodeName=e1 Name=gpu Type=t4 File={dir}/dev/e1/nvidia[0-1]\n"),
    "untyped_range": ("gpu:2", "NodeName=e1 Name=gpu File={dir}/dev/e1/nvidia[0-1]\n"),
    "untyped_cores": ("gpu:2", "NodeName=e1 Name=gpu File={dir}/dev/e1/nvidia0 Cores=0\n"
                               "NodeName=e1 Name=gpu File={dir}/dev/e1/nvidia1 Cores=1\n"),
    "autodetect_style": ("gpu:t4:2", "NodeName=e1 Name=gpu Type=t4 File={dir}/dev/e1/nvidia0 Cores=0 Links=-1,2\n"
                                     "NodeName=e1 Name=gpu Type=t4 File={dir}/dev/e1/nvidia1 Cores=1 Links=2,-1\n"),
}


def _random_stream(env, form, seed):
    gpu_gres, gres_conf = FORMS[form]
    with env.cluster(f"forms-{form}", nodes=1, prefix="e", shape="nvidia-2gpu", cpus=8, select="select/flex",
                     gres_conf=gres_conf, gres_per_node={"e1": f"{gpu_gres},vslice:t4:8"}) as c:
        checks, _, mixed, states = random_stream(c, seed, SUBMISSIONS, [1, 1, 2, 3, 4], 0.35, [0.4, 0.8, 1.2, 1.6],
                                                 SLICES, timeout=240)
        eq(states.count("COMPLETED"), SUBMISSIONS, f"{form}: all jobs completed")
        # A stream in which whole-GPU and slice jobs never ran side by side
        # could not have found a conflict.
        if mixed < 5:
            raise AssertionError(f"{form}: whole-GPU and slice jobs ran together in only {mixed} snapshots")
        print(f"  {form}: {checks} snapshots, {mixed} with whole-GPU and slice jobs running together")


def test_typed_range(env):
    _random_stream(env, "typed_range", 1)


def test_untyped_range(env):
    _random_stream(env, "untyped_range", 2)


def test_untyped_with_cores(env):
    _random_stream(env, "untyped_cores", 3)


def test_autodetect_style_records(env):
    _random_stream(env, "autodetect_style", 4)


def test_untyped_gpu_backfill_plans_the_first_device_to_free(env):
    """Untyped gpu records (gpu:2, no Type=): both devices wholly sliced,
    one for 5 minutes and one for 15; a whole-GPU job is planned when the
    first device's slices end, as with typed records (the device plan must
    match an untyped gpu request to the sliced devices)."""
    with env.cluster("forms-untyped-plan", nodes=1, prefix="e", shape="nvidia-2gpu", cpus=8, select="select/flex",
                     gres_conf=FORMS["untyped_range"][1], gres_per_node={"e1": "gpu:2,vslice:t4:8"}) as c:
        flag, script = _hold(c, "untyped-plan")
        a = c.sbatch("-t", "5", "--gres=vslice:4", script=script)
        b = c.sbatch("-t", "15", "--gres=vslice:4", script=script)
        jobs = [a, b]
        try:
            for j in jobs:
                c.wait_job(j, states=("RUNNING",))
            held = sliced_devices(c.show_job(a), SLICES) + sliced_devices(c.show_job(b), SLICES)
            eq(sorted(held), [0, 1], "each slice job holds one whole device's slices")
            g = c.sbatch("-t", "3", "--gres=gpu:1", script=script)
            jobs.append(g)
            when = _planned(c, g, _time_field(c, a, "EndTime"), "the whole-GPU job")
            print(f"  planned at {when}; slice jobs end {_time_field(c, a, 'EndTime')}, {_time_field(c, b, 'EndTime')}")
        finally:
            flag.touch()
            c.run(["scancel", *map(str, jobs)])
            for j in jobs:
                c.wait_job(j)
