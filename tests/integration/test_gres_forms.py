"""Whole-GPU/slice exclusivity under select/flex for every form of gres.conf
gpu lines Slurm accepts: typed or untyped, with or without Cores=, a range or
one line per file (the last as AutoDetect=nvml writes its records: per file,
Type, Cores, Links). Each form gets a seeded random stream of whole-GPU and
slice jobs on a real cluster, and every snapshot of `scontrol show job -d` is
checked: no device is held whole while any of its slices is held."""

import random
import time

from gres_state import device_conflicts, holdings
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
        rng = random.Random(seed)
        submitted, checks, mixed = [], 0, 0
        deadline = time.monotonic() + 240
        while len(submitted) < SUBMISSIONS or any(c.job_state(j) in ("PENDING", "RUNNING") for j in submitted[-10:]):
            if time.monotonic() > deadline:
                raise AssertionError(f"{form}: stream did not finish: {len(submitted)} submitted")
            if len(submitted) < SUBMISSIONS:
                gres = "gpu:1" if rng.random() < 0.35 else f"vslice:{rng.choice([1, 1, 2, 3, 4])}"
                sleep = rng.choice([0.4, 0.8, 1.2, 1.6])
                submitted.append(c.sbatch(f"--gres={gres}", script=f"#!/bin/bash\nsleep {sleep}\n"))
            rows = holdings(c.run(["scontrol", "show", "job", "-d"]).stdout)
            names = {r[2] for r in rows}
            mixed += names == {"gpu", "vslice"}
            problems = device_conflicts(rows, SLICES)
            checks += 1
            if problems:
                raise AssertionError(f"{form}: after {len(submitted)} submissions: " + "; ".join(problems))
            time.sleep(0.05)
        states = [c.wait_job(j) for j in submitted]
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
