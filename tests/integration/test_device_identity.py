# SPDX-License-Identifier: GPL-2.0-or-later
"""Device identity from Slurm's own GPU records on a real cluster: a gres.conf
whose minor numbers run against the PCI order (the NVIDIA driver's answers
recorded in a fake /proc/driver/nvidia/gpus), and a node mixing a MIG-style
GPU record with a sliced GPU, both with isolation=required."""

import os
import re
import stat
import time

from helpers import contains, env_of, eq, open_probe, opened
from localcluster import DEFAULT_YAML

# cluster-nvidia-2gpu.xml: two T4 on these buses, in PCI order.
BUSES = ["0000:3b:00.0", "0000:af:00.0"]
UUIDS = ["GPU-3b3b3b3b-0000-1111-2222-333333333333", "GPU-afafafaf-0000-1111-2222-333333333333"]

YAML = DEFAULT_YAML.replace("  layout_file:", "  nvidia_proc_dir: {dir}/nvidia-proc/%n\n  layout_file:")


def _driver(minor_of_bus):
    """prepare(): the driver's information files, minor numbers as given."""
    def prepare(c):
        for node in c.nodes:
            for bus, uuid in zip(BUSES, UUIDS):
                d = c.dir / "nvidia-proc" / node / bus
                d.mkdir(parents=True)
                (d / "information").write_text(
                    f"Model: \t\t Tesla T4\nIRQ:   \t\t 40\nGPU UUID: \t {uuid}\nVideo BIOS: \t 90.04.96.00.9f\n"
                    f"Bus Type: \t PCIe\nDMA Size: \t 47 bits\nDMA Mask: \t 0x7fffffffffff\n"
                    f"Bus Location: \t {bus}\nDevice Minor: \t {minor_of_bus[bus]}\nGPU Excluded:\t No\n")
    return prepare


def _probe_script(c, node, flag, extra=""):
    d = c.dir / "dev" / node
    return ("#!/bin/bash\n" + extra + "\necho GPUS=$SLURM_JOB_GPUS\nenv | grep -E '^(SLURM_VSLICE|CUDA_)'\n"
            f"echo LS $(ls {d} | sort | tr '\\n' ' ')\n" +
            open_probe([d / "nvidia0", d / "nvidia1"]) + f"\nwhile [ ! -e {flag} ]; do sleep 0.2; done\n")


def _ls(out):
    return re.search(r"^LS (.*)$", out, re.M).group(1).split()


def _gpu_nodes(out):
    return [n for n in _ls(out) if re.fullmatch(r"nvidia\d+", n)]


def _run(c, node, *args, extra=""):
    """Runs a job to completion; returns (its GRES IDX while it ran, output)."""
    flag = c.dir / "out" / f"flag-{time.monotonic_ns()}"
    job = c.sbatch(*args, script=_probe_script(c, node, flag, extra))
    try:
        c.wait_job(job, states=("RUNNING", "COMPLETED", "FAILED"))
        idx = re.findall(r"GRES=(\S*)", c.show_job(job))
    finally:
        flag.touch()
    state = c.wait_job(job)
    out = c.job_output(job)
    eq(state, "COMPLETED", f"job {' '.join(args)}:\n{out}")
    return " ".join(idx), out


def test_minor_numbers_against_pci_order(env):
    # The driver put minor 1 on the first bus: /dev/nvidia1 is PCI device 0.
    gres = "NodeName=i1 Name=gpu Type=t4 File={dir}/dev/i1/nvidia[0-1]\n"
    with env.cluster("identity-minors", nodes=1, prefix="i", shape="nvidia-2gpu", cpus=8, select="select/flex",
                     flexslurm_yaml=YAML, gres_conf=gres, prepare=_driver({BUSES[0]: 1, BUSES[1]: 0}),
                     spank_args=["isolation=required"]) as c:
        d = c.dir / "dev" / "i1"
        log = c.log("slurmd.i1")
        for unit, minor, pci in [(0, 0, 1), (1, 1, 0)]:
            contains(log, f"gres/vslice: nvidia {d}/nvidia{minor}: type t4, UUID {UUIDS[pci]}, PCI {BUSES[pci]} "
                          f"(gres.conf gpu unit {unit}, PCI bus from the NVIDIA driver)", "slurmd start-up line")
        # Slices 0-3 are gpu unit 0's: /dev/nvidia0, which is PCI device 1.
        # Best fit fills one device before the other: run jobs until both
        # devices were seen.
        seen = {}
        for _ in range(2):
            idx, out = _run(c, "i1", "--gres=vslice:4")
            mine = "nvidia0" if "IDX:0-3" in idx else "nvidia1"
            contains(idx, "vslice:t4:4(IDX:0-3)" if mine == "nvidia0" else "vslice:t4:4(IDX:4-7)", "allocation")
            e = env_of(out)
            eq(e.get("SLURM_VSLICE_DEVICES"), "1" if mine == "nvidia0" else "0", f"PCI index of {mine}:\n{out}")
            eq(e.get("CUDA_VISIBLE_DEVICES"), "0", "local numbering under ConstrainDevices")
            eq(_gpu_nodes(out), [mine], f"private /dev:\n{out}")
            other = "nvidia1" if mine == "nvidia0" else "nvidia0"
            o = opened(out)
            eq(o[str(d / mine)], "ok", "its own device")
            eq(o[str(d / other)], "No such file or directory", f"the other device (hidden; isolation=required checked the cgroup denies it):\n{out}")
            seen[mine] = True
        # Two 4-slice jobs at once take both devices.
        flag = c.dir / "out" / "flag-both"
        jobs = [c.sbatch("--gres=vslice:4", script=_probe_script(c, "i1", flag)) for _ in range(2)]
        try:
            for j in jobs:
                c.wait_job(j, states=("RUNNING",))
            idx = {j: c.show_job(j) for j in jobs}
        finally:
            flag.touch()
        for j in jobs:
            eq(c.wait_job(j), "COMPLETED", "slice jobs side by side")
            mine = "nvidia0" if "IDX:0-3" in idx[j] else "nvidia1"
            out = c.job_output(j)
            eq(_gpu_nodes(out), [mine], f"private /dev of {j}:\n{out}")
            eq(env_of(out).get("SLURM_VSLICE_DEVICES"), "1" if mine == "nvidia0" else "0", f"index of {j}")
            eq(opened(out)[str(d / mine)], "ok", f"{j} opens {mine}")

        # A whole GPU: SLURM_JOB_GPUS is Slurm's unit index, mapped through its records.
        _, out = _run(c, "i1", "--gres=gpu:t4:1")
        unit = int(re.search(r"GPUS=(\d+)", out).group(1))
        eq(_gpu_nodes(out), [f"nvidia{unit}"], f"gpu job /dev:\n{out}")
        eq(opened(out)[str(d / f"nvidia{unit}")], "ok", "gpu job opens its GPU")


def _mig_prepare(c):
    caps = c.dir / "dev" / "j1" / "nvidia-caps"
    caps.mkdir(parents=True)
    os.mknod(caps / "nvidia-cap21", 0o666 | stat.S_IFCHR, os.makedev(1, 4))  # /dev/port: nothing a job needs


def test_mig_gpu_is_never_sliced_and_its_jobs_keep_working(env):
    # GPU 0 in MIG mode (one instance, as AutoDetect=nvml writes it), GPU 1 sliced.
    gres = ("NodeName=j1 Name=gpu Type=t4_1g.4gb MultipleFiles={dir}/dev/j1/nvidia0,{dir}/dev/j1/nvidia-caps/nvidia-cap21\n"
            "NodeName=j1 Name=gpu Type=t4 File={dir}/dev/j1/nvidia1\n")
    with env.cluster("identity-mig", nodes=1, prefix="j", shape="nvidia-2gpu", cpus=8, select="select/flex",
                     gres_conf=gres, gres_per_node={"j1": "gpu:t4_1g.4gb:1,gpu:t4:1,vslice:t4:4"},
                     prepare=_mig_prepare, spank_args=["isolation=required"]) as c:
        d = c.dir / "dev" / "j1"
        contains(c.log("slurmd.j1"), f"gres/vslice: nvidia {d}/nvidia0: type t4_1g.4gb", "MIG GPU named")
        contains(c.log("slurmd.j1"), "in MIG mode, not sliced", "MIG GPU not sliced")
        contains(c.show_node("j1"), "vslice:t4:4", "only GPU 1's slices are offered")

        _, out = _run(c, "j1", "--gres=gpu:t4_1g.4gb:1")
        eq(_gpu_nodes(out), ["nvidia0"], f"MIG job /dev:\n{out}")
        contains(_ls(out), "nvidia-caps", "capability dir stays")
        eq(opened(out)[str(d / "nvidia0")], "ok", "MIG job opens its GPU")

        _, out = _run(c, "j1", "--gres=vslice:1")
        eq(_gpu_nodes(out), ["nvidia1"], f"slice job /dev:\n{out}")
        eq(opened(out)[str(d / "nvidia0")], "No such file or directory", "the MIG GPU is hidden from a slice job")


def test_excluded_gpu_stays_whole(env):
    # slicing.exclude by PCI bus id: GPU 1 is for whole-GPU jobs only (its own Type, as docs/admin.md says).
    yaml = DEFAULT_YAML + f"  exclude: [\"{BUSES[1][5:]}\"]\n"
    gres = ("NodeName=t1 Name=gpu Type=t4 File={dir}/dev/t1/nvidia0\n"
            "NodeName=t1 Name=gpu Type=t4whole File={dir}/dev/t1/nvidia1\n")
    with env.cluster("identity-exclude", nodes=1, prefix="t", shape="nvidia-2gpu", cpus=8, select="select/flex",
                     flexslurm_yaml=yaml, gres_conf=gres, gres_per_node={"t1": "gpu:t4:1,gpu:t4whole:1,vslice:t4:4"},
                     spank_args=["isolation=required"]) as c:
        d = c.dir / "dev" / "t1"
        contains(c.log("slurmd.t1"), f"nvidia {d}/nvidia1: type t4whole, UUID", "excluded GPU named")
        contains(c.log("slurmd.t1"), "excluded by slicing.exclude, not sliced", "excluded GPU not sliced")
        eq("warning: an excluded GPU" in c.log("slurmd.t1"), False, "no pairing warning with a type of its own")
        idx, out = _run(c, "t1", "--gres=vslice:4")
        eq(_gpu_nodes(out), ["nvidia0"], f"slices only on GPU 0:\n{out}")
        _, out = _run(c, "t1", "--gres=gpu:t4whole:1")
        eq(_gpu_nodes(out), ["nvidia1"], f"the excluded GPU as a whole:\n{out}")
