# SPDX-License-Identifier: GPL-2.0-or-later
"""The SPANK plugin: a private device directory per task, the devices-cgroup
check and the failure policy, on a real cluster."""

import re

from helpers import contains, eq, open_probe, opened

# s1: two T4, task/cgroup ConstrainDevices, plugin required.
CLUSTER = dict(nodes=1, prefix="s", shape="nvidia-2gpu", cpus=8, spank_args=["isolation=required"],
               prepare=lambda c: make_aliases(c))

ENOENT = "No such file or directory"
EPERM = "Operation not permitted"


def make_aliases(c):
    """Second device nodes for the same devices outside the device dir: the
    "other route" to a device that the private view cannot hide. Also the
    NVIDIA control nodes every job keeps."""
    import os
    import stat
    for node in c.nodes:
        for ctl in ("nvidiactl", "nvidia-uvm"):
            (c.dir / "dev" / node / ctl).write_text("")
        alias = c.dir / "alias" / node
        alias.mkdir(parents=True)
        for dev in ("nvidia0", "nvidia1"):
            st = os.stat(c.dir / "dev" / node / dev)
            os.mknod(alias / dev, 0o666 | stat.S_IFCHR, st.st_rdev)


def _script(c, node, body=""):
    """Lists the device dir, opens both nodes there and through their
    aliases, after rewriting CUDA_VISIBLE_DEVICES."""
    d = c.dir / "dev" / node
    host = [str(c.dir / "alias" / node / "nvidia0"), str(c.dir / "alias" / node / "nvidia1")]
    return f"""#!/bin/bash
unset CUDA_VISIBLE_DEVICES; export CUDA_VISIBLE_DEVICES=0,1
echo "LS $(ls {d} | tr '\\n' ' ')"
{open_probe([d / "nvidia0", d / "nvidia1"] + host)}
{body}
"""


def _ls(out):
    return re.search(r"^LS (.*)$", out, re.M).group(1).split()


def _run(c, *args, script):
    job = c.sbatch(*args, script=script)
    state = c.wait_job(job)
    return state, c.job_output(job)


def test_slice_job_sees_only_its_device(c):
    d = c.dir / "dev" / c.nodes[0]
    state, out = _run(c, "--gres=vslice:1", script=_script(c, c.nodes[0]))
    eq(state, "COMPLETED", f"job state:\n{out}")
    eq(_ls(out), ["nvidia-uvm", "nvidia0", "nvidiactl"], "device dir as the job sees it")
    alias = c.dir / "alias" / c.nodes[0]
    eq(opened(out), {str(d / "nvidia0"): "ok", str(d / "nvidia1"): ENOENT,
                     str(alias / "nvidia0"): "ok", str(alias / "nvidia1"): EPERM}, "opens")


def test_srun_step_sees_only_its_device(c):
    d = c.dir / "dev" / c.nodes[0]
    step = c.dir / "out" / "spank-step.sh"
    step.write_text(_script(c, c.nodes[0]))
    step.chmod(0o755)
    state, out = _run(c, "--gres=vslice:1", script=f"#!/bin/bash\nsrun -n1 {step}\n")
    eq(state, "COMPLETED", f"job state:\n{out}")
    eq(_ls(out), ["nvidia-uvm", "nvidia0", "nvidiactl"], "device dir in the step")
    eq(opened(out)[str(d / "nvidia1")], ENOENT, "other device in the step")
    eq(opened(out)[str(c.dir / "alias" / c.nodes[0] / "nvidia1")], EPERM, "other device through an alias node")


def test_two_slice_jobs_share_and_whole_gpu_job_opens_its_own(c):
    d = c.dir / "dev" / c.nodes[0]
    flag = c.dir / "out" / "spank-share"
    hold = f"touch {c.dir}/out/spank-$SLURM_JOB_ID.up; while [ ! -e {flag} ]; do sleep 0.2; done"
    a = c.sbatch("--gres=vslice:1", script=_script(c, c.nodes[0], hold))
    b = c.sbatch("--gres=vslice:1", script=_script(c, c.nodes[0], hold))
    try:
        for j in (a, b):
            c._wait_for(lambda j=j: (c.dir / "out" / f"spank-{j}.up").exists(), 30, f"job {j} running")
    finally:
        flag.touch()
    for j in (a, b):
        eq(c.wait_job(j), "COMPLETED", f"job {j}")
        eq(opened(c.job_output(j))[str(d / "nvidia0")], "ok", f"job {j} opens the shared device")
    # A whole GPU: the job sees and opens that one only (gres/gpu's own index).
    state, out = _run(c, "--gres=gpu:1", script=_script(c, c.nodes[0], "echo GPUS=$SLURM_JOB_GPUS"))
    eq(state, "COMPLETED", f"gpu job:\n{out}")
    gpu = int(re.search(r"GPUS=(\d+)", out).group(1))
    other = 1 - gpu
    eq(_ls(out), ["nvidia-uvm", f"nvidia{gpu}", "nvidiactl"], "device dir of the whole-GPU job")
    eq(opened(out)[str(d / f"nvidia{gpu}")], "ok", "own GPU")
    eq(opened(out)[str(d / f"nvidia{other}")], ENOENT, "other GPU")


def test_job_without_accelerators_sees_none(c):
    state, out = _run(c, script=_script(c, c.nodes[0]))
    eq(state, "COMPLETED", f"job state:\n{out}")
    eq(_ls(out), ["nvidia-uvm", "nvidiactl"], "device dir of a CPU-only job: control nodes only")


def test_salloc_and_srun(c):
    d = c.dir / "dev" / c.nodes[0]
    step = c.dir / "out" / "spank-salloc.sh"
    step.write_text(_script(c, c.nodes[0]))
    step.chmod(0o755)
    r = c.run(["salloc", "-N1", "--gres=vslice:1", "srun", "-n1", str(step)], timeout=60)
    eq(_ls(r.stdout), ["nvidia-uvm", "nvidia0", "nvidiactl"], f"interactive step's device dir: {r.stderr}")
    eq(opened(r.stdout)[str(d / "nvidia1")], ENOENT, "other device in the interactive step")
    eq(opened(r.stdout)[str(c.dir / "alias" / c.nodes[0] / "nvidia1")], EPERM, "other device through an alias")


def test_option_in_help(c):
    for cmd in ("sbatch", "srun"):
        out = c.run([cmd, "--help"]).stdout
        contains(out, "--vslice-verbose", f"{cmd} --help")
        contains(out, "[flexslurm] print which accelerator device nodes", f"{cmd} --help")
