# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad configuration: slurmd refuses with one line naming file, line, key;
slurmctld without select/flex keeps running, with select/flex it refuses to
start with one such line (and keeps the last good settings at reconfigure:
test_controller_restart); an empty file is refused; a slice-count mismatch
drains the node."""

import re

from helpers import contains, eq, wait_until
from localcluster import ClusterError

BROKEN_YAML = """\
version: 1
inventory:
  topology_xml: {dir}/topology/%n.xml
  device_dir: {dir}/dev/%n
slicing:
  default:
    slices: 0
"""


def test_broken_yaml_refused_by_slurmd(env):
    with env.cluster("broken-yaml", nodes=2, prefix="b", flexslurm_yaml=BROKEN_YAML, wait_idle=False) as c:
        for node in c.nodes:
            rc = c.daemon_exit_code(f"slurmd.{node}", timeout=30)
            if rc in (None, 0):
                raise AssertionError(f"slurmd {node} did not refuse to start (exit {rc})")
        log = c.log("slurmd.b1")
        path = c.dir / "etc" / "flexslurm.yaml"
        lines = [l for l in log.splitlines() if "flexslurm" in l and "error" in l]
        eq(len(lines), 1, f"flexslurm error lines in slurmd log:\n{log}")
        contains(lines[0], f"flexslurm: {path}:7: slicing.default.slices: 0 is out of range "
                           "(allowed: an integer from 1 to 64)", "slurmd log line")
        # The controller is unaffected and still answers.
        eq(c.procs["slurmctld"].poll(), None, "slurmctld running")
        contains(c.run(["scontrol", "ping"]).stdout, "UP", "scontrol ping")
        eq(c.run(["sinfo", "-h", "-o", "%D"]).returncode, 0, "sinfo")


def test_fewer_slices_than_configured_drains_node(env):
    # slurm.conf promises 12 slices; discovery finds 2 devices x 4.
    with env.cluster("mismatch", nodes=2, prefix="w", wait_idle=False,
                     gres_per_node={"w2": "gpu:t4:2,vslice:t4:12"}) as c:
        c.wait_nodes_idle(nodes=["w1"])

        def drained():
            out = c.show_node("w2")
            return out if re.search(r"State=\S*DRAIN", out) else None
        out = wait_until(drained, 30, "w2 to drain")
        contains(out, "Reason=gres/vslice count reported lower than configured (8 < 12)", "drain reason")
        eq(c.procs["slurmctld"].poll(), None, "slurmctld running")
        job = c.sbatch("--gres=vslice:2", script="#!/bin/bash\ntrue\n")
        eq(c.wait_job(job), "COMPLETED", "jobs still run on the healthy node")
        contains(c.show_job(job), "NodeList=w1", "job node")


def test_missing_device_node_drains_node(env):
    def remove_nvidia1(c):
        # The device node is gone; gres/gpu is told (it would wait for it).
        (c.dir / "dev" / "x1" / "nvidia1").unlink()
        gres_conf = c.dir / "etc" / "gres.conf"
        gres_conf.write_text(gres_conf.read_text().replace("nvidia[0-1]", "nvidia0"))

    with env.cluster("missing-dev", nodes=1, prefix="x", wait_idle=False, prepare=remove_nvidia1,
                     gres_per_node={"x1": "gpu:t4:1,vslice:t4:8"}) as c:
        def drained():
            out = c.show_node("x1")
            return out if "DRAIN" in out else None
        out = wait_until(drained, 30, "x1 to drain")
        contains(out, "Reason=gres/vslice count reported lower than configured (4 < 8)", "drain reason")
        contains(c.log("slurmd.x1"), f"{c.dir}/dev/x1/nvidia1: No such file or directory; its slices are not "
                                     "offered", "slurmd log")


def _refused_at_start(c):
    """Starts the cluster expecting slurmctld to refuse; returns its log."""
    try:
        c.start()
    except ClusterError:
        pass
    else:
        raise AssertionError("slurmctld started")
    rc = c.daemon_exit_code("slurmctld", timeout=30)
    if rc in (None, 0):
        raise AssertionError(f"slurmctld did not refuse to start (exit {rc})")
    return c.log("slurmctld")


def _flexslurm_lines(log):
    return [l for l in log.splitlines() if "flexslurm" in l and ("error" in l or "fatal" in l)]


def test_broken_yaml_refused_by_slurmctld_at_start(env):
    c = env.cluster("broken-yaml-ctld", nodes=1, prefix="b", select="select/flex", flexslurm_yaml=BROKEN_YAML,
                    wait_idle=False)
    try:
        log = _refused_at_start(c)
        lines = _flexslurm_lines(log)
        eq(len(lines), 1, f"one flexslurm line in slurmctld's log:\n{log}")
        contains(lines[0], f"fatal: select/flex: refusing to start: {c.dir}/etc/flexslurm.yaml:7: "
                           "slicing.default.slices: 0 is out of range (allowed: an integer from 1 to 64)",
                 "slurmctld log line")
    finally:
        c.stop()


def test_empty_yaml_refused_with_one_line(env):
    c = env.cluster("empty-yaml-ctld", nodes=1, prefix="b", select="select/flex", flexslurm_yaml="",
                    wait_idle=False)
    empty = ("flexslurm.yaml:1: (top level): the file is empty (allowed: the keys version, inventory, slicing, "
             "placement, lending, metrics; `version: 1` alone means the built-in defaults)")
    try:
        log = _refused_at_start(c)
        lines = _flexslurm_lines(log)
        eq(len(lines), 1, f"one flexslurm line in slurmctld's log:\n{log}")
        contains(lines[0], f"fatal: select/flex: refusing to start: {c.dir}/etc/{empty}", "slurmctld log line")
    finally:
        c.stop()
    # slurmd too (here slurmctld does not read the file).
    with env.cluster("empty-yaml-slurmd", nodes=1, prefix="b", flexslurm_yaml="", wait_idle=False) as c:
        rc = c.daemon_exit_code("slurmd.b1", timeout=30)
        if rc in (None, 0):
            raise AssertionError(f"slurmd did not refuse to start (exit {rc})")
        log = c.log("slurmd.b1")
        lines = _flexslurm_lines(log)
        eq(len(lines), 1, f"one flexslurm line in slurmd's log:\n{log}")
        contains(lines[0], f"flexslurm: {c.dir}/etc/{empty}", "slurmd log line")
