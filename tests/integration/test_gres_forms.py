# SPDX-License-Identifier: GPL-2.0-or-later
"""Whole-GPU/slice exclusivity under select/flex for every form of gres.conf
gpu lines Slurm accepts: typed or untyped, with or without Cores=, a range or
one line per file (the last as AutoDetect=nvml writes its records: per file,
Type, Cores, Links). Each form gets a seeded random stream of whole-GPU and
slice jobs on a real cluster, and every snapshot of `scontrol show job -d` is
checked: no device is held whole while any of its slices is held."""

from gres_state import random_stream
from helpers import eq

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
