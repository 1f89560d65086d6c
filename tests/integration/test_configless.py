# SPDX-License-Identifier: GPL-2.0-or-later
"""Configless sites (SlurmctldParameters=enable_configless, slurmd started
with --conf-server and no slurm.conf of its own): slurmctld never sends
flexslurm.yaml, so a configless slurmd refuses to start without it in its
conf-cache, with one line naming where it is expected, and uses it when an
admin put it there. Outside configless mode a missing file still means the
built-in defaults."""

import re

from helpers import contains, eq
from localcluster import DEFAULT_YAML, install_flexslurm_yaml


def _flexslurm_errors(log):
    # This machine's live hwloc knows no GPU memory: that line is expected
    # where no topology is pinned (the defaults' case).
    return [l for l in log.splitlines() if "flexslurm" in l and "error" in l and "memory size unknown" not in l]


def test_configless_slurmd_refuses_without_flexslurm_yaml(env):
    with env.cluster("configless-missing", nodes=1, prefix="c", configless=True, wait_idle=False) as c:
        rc = c.daemon_exit_code("slurmd.c1", timeout=30)
        if rc in (None, 0):
            raise AssertionError(f"configless slurmd c1 did not refuse to start (exit {rc})")
        cache = c.conf_cache("c1")
        # It did run configless: slurm.conf came from slurmctld, flexslurm.yaml did not.
        eq((cache / "slurm.conf").exists(), True, f"{cache}/slurm.conf fetched")
        eq((cache / "flexslurm.yaml").exists(), False, "flexslurm.yaml is not sent")
        log = c.log("slurmd.c1")
        lines = _flexslurm_errors(log)
        eq(len(lines), 1, f"flexslurm error lines in slurmd log:\n{log}")
        eq(lines[0].split("error: ", 1)[1],
           f"flexslurm: configless slurmd: {cache}/flexslurm.yaml not found; slurmctld does not send "
           "flexslurm.yaml: install the controller's copy there on every node (Slurm leaves it in place; "
           "a file holding `version: 1` means the built-in defaults)", "the refusal line")
        eq(c.procs["slurmctld"].poll(), None, "slurmctld running")


def test_configless_slurmd_uses_flexslurm_yaml_from_its_conf_cache(env):
    # 8 slices per device: the built-in default (4) would leave the node
    # short of slurm.conf's Gres=vslice:t4:16 and drained.
    yaml = DEFAULT_YAML.replace("slices: 4", "slices: 8")
    with env.cluster("configless-present", nodes=2, prefix="g", configless=True, slices=8, flexslurm_yaml=yaml,
                     prepare=install_flexslurm_yaml) as c:
        for node in c.nodes:
            eq((c.conf_cache(node) / "slurm.conf").exists(), True, f"{node} runs configless")
            contains(c.show_node(node), "vslice:t4:16", f"{node} Gres")
        contains(c.log("slurmd.g1"), "slices (index 8-15)", "slurmd log")
        eq(_flexslurm_errors(c.log("slurmd.g1")), [], "no flexslurm errors")
        job = c.sbatch("-w", "g1", "--gres=vslice:8",
                       script="#!/bin/bash\necho CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES\n")
        eq(c.wait_job(job), "COMPLETED", "8-slice job")
        out = c.job_output(job)
        m = re.search(r"CUDA_VISIBLE_DEVICES=(\S+)", out)
        eq(bool(m) and "," not in m.group(1), True, f"8 slices are one device: {out}")
        # A reconfigure rewrites the conf-cache; flexslurm.yaml stays.
        c.run(["scontrol", "reconfigure"])
        c._wait_for(lambda: c.log("slurmd.g1").count("slices (index 8-15)") >= 2, 30,
                    "g1 to load its slices again")
        c.wait_nodes_idle()
        eq((c.conf_cache("g1") / "flexslurm.yaml").read_text(), c.flexslurm_yaml.format(dir=c.dir, lending_port=None),
           "flexslurm.yaml after reconfigure")
        job = c.sbatch("-w", "g2", "--gres=vslice:8", script="#!/bin/bash\ntrue\n")
        eq(c.wait_job(job), "COMPLETED", "8-slice job after reconfigure")


def test_missing_flexslurm_yaml_outside_configless_means_defaults(env):
    def remove_yaml(c):
        (c.dir / "etc" / "flexslurm.yaml").unlink()

    with env.cluster("configured-missing", nodes=1, prefix="c", wait_idle=False, prepare=remove_yaml) as c:
        path = c.dir / "etc" / "flexslurm.yaml"
        line = f"gres/vslice: {path}: not found; using built-in defaults (4 slices per device)"
        c._wait_for(lambda: line in c.log("slurmd.c1"), 30, "the defaults line in the slurmd log")
        eq(c.procs["slurmd.c1"].poll(), None, "slurmd keeps running")
        eq(_flexslurm_errors(c.log("slurmd.c1")), [], "no flexslurm errors")
