# SPDX-License-Identifier: GPL-2.0-or-later
"""The SPANK plugin's failure policy and argument checking, each on a
cluster of its own."""

from helpers import contains, eq, opened
from test_spank import ENOENT, _ls, _run, _script, make_aliases


def test_no_cgroup_fencing_required_fails_launch(env):
    with env.cluster("spank-nocgroup-req", nodes=1, prefix="r", spank_args=["isolation=required"],
                     task_plugin="task/affinity", prepare=make_aliases) as c:
        state, out = _run(c, "--gres=vslice:1", script=_script(c, "r1"))
        eq(state, "FAILED", "job state")
        contains(out, "flexslurm: no cgroup device fencing: " + str(c.dir / "dev" / "r1" / "nvidia1"),
                 "message in the job's output")
        contains(c.log("slurmd.r1"), "flexslurm: no cgroup device fencing", "slurmd log")
        eq(c.procs["slurmd.r1"].poll(), None, "slurmd still running")


def test_no_cgroup_fencing_optional_runs_with_private_view(env):
    with env.cluster("spank-nocgroup-opt", nodes=1, prefix="o", spank_args=["isolation=optional"],
                     task_plugin="task/affinity", prepare=make_aliases) as c:
        d = c.dir / "dev" / "o1"
        state, out = _run(c, "--gres=vslice:1", script=_script(c, "o1"))
        eq(state, "COMPLETED", f"job state:\n{out}")
        eq(_ls(out), ["nvidia-uvm", "nvidia0", "nvidiactl"], "private view without task/cgroup")
        eq(opened(out)[str(d / "nvidia1")], ENOENT, "hidden device")
        # Without the cgroup the host path is open: this is what `required` prevents.
        eq(opened(out)[str(c.dir / "alias" / "o1" / "nvidia1")], "ok", "alias node without cgroup fencing")
        contains(c.log("slurmd.o1"), "no cgroup device fencing", "slurmd log")
        contains(c.log("slurmd.o1"), "task runs without cgroup fencing (private device view only)", "log")


def test_broken_plugstack_arguments_refused(env):
    with env.cluster("spank-broken", nodes=1, prefix="k", spank_args=["isolation=maybe"]) as c:
        r = c.sbatch("--gres=vslice:1", script="#!/bin/bash\ntrue\n", check=False)
        eq(isinstance(r, int), False, "submission with a broken plugstack")
        lines = [l for l in r.stderr.splitlines() if "flexslurm:" in l]
        eq(len(lines), 1, f"flexslurm lines: {r.stderr}")
        contains(lines[0], "flexslurm: isolation: \"maybe\" is not allowed (allowed: required, optional)", "line")
        eq(c.procs["slurmd.k1"].poll(), None, "slurmd stays up")
        contains(c.log("slurmd.k1"), "flexslurm: isolation: \"maybe\" is not allowed", "slurmd log")
        contains(c.run(["scontrol", "ping"]).stdout, "UP", "slurmctld")
