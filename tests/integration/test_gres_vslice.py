# SPDX-License-Identifier: GPL-2.0-or-later
"""gres/vslice on a real cluster: counts, job environment, device fencing."""

from helpers import VSLICE_ENV, contains, env_of, eq, open_probe, opened, wait_until

# n1, n2: two NVIDIA T4 (4 slices each); n3: two AMD MI210; n4: two Ascend 910B.
CLUSTER = dict(nodes=4, node_shapes={"n1": "nvidia-2gpu", "n2": "nvidia-2gpu", "n3": "amd-2gpu",
                                     "n4": "ascend-2npu"},
               extra_conf="Prolog={dir}/etc/prolog.sh", prepare=lambda c: _write_prolog(c))

EPERM = "Operation not permitted"


def _write_prolog(c):
    """A prolog that records its environment (prolog/epilog get host numbering)."""
    script = c.dir / "etc" / "prolog.sh"
    script.write_text(f"#!/bin/bash\n{VSLICE_ENV} > {c.dir}/out/prolog-$SLURM_JOB_ID.env\nexit 0\n")
    script.chmod(0o755)


def test_nodes_show_vslice_counts(c):
    eq(_gres(c, "n1"), "gpu:t4:2,vslice:t4:8(S:0-1)", "n1 Gres")
    eq(_gres(c, "n3"), "gpu:mi210:2,vslice:mi210:8(S:0-1)", "n3 Gres")
    eq(_gres(c, "n4"), "gpu:ascend910b:2,vslice:ascend910b:8(S:0-1)", "n4 Gres")
    contains(c.log("slurmd.n1"), "gres/vslice: nvidia " + str(c.dir / "dev/n1/nvidia1") +
             ": 4 slices (index 4-7), 25% compute and 3840 MiB each", "slurmd log")


def _gres(c, node):
    import re
    return re.search(r"Gres=(\S+)", c.show_node(node)).group(1)


def test_job_env_device_and_limits(c):
    """Slices on the second device: local index 0 in the job, physical 1 beside it."""
    dev = c.dir / "dev" / "n1"
    filler = c.sbatch("-w", "n1", "--gres=vslice:4", script="#!/bin/bash\nsleep 30\n")
    c.wait_job(filler, states=("RUNNING",))
    job = c.sbatch("-w", "n1", "--gres=vslice:2", script=f"""#!/bin/bash
{VSLICE_ENV}
{open_probe([dev / "nvidia0", dev / "nvidia1"])}
sleep 2
""")
    wait_until(lambda: c.job_state(job) in ("RUNNING", "COMPLETED"), 30, "job to start")
    detail = c.show_job(job)
    c.run(["scancel", str(filler)])
    eq(c.wait_job(job), "COMPLETED", "job state")
    contains(detail, "GRES=vslice:t4:2(IDX:4-5)", "scontrol show job -d")
    out = c.job_output(job)
    env = env_of(out)
    expected = {
        "CUDA_VISIBLE_DEVICES": "0",  # renumbered inside the device cgroup, as gres/gpu does
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "50",
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": "0=7680M",
        "SLURM_VSLICES_ON_NODE": "2",
        "SLURM_VSLICE_DEVICES": "1",  # the physical device
        "SLURM_VSLICE_COUNTS": "2",
        "SLURM_VSLICE_COMPUTE_PERCENT": "50",
        "SLURM_VSLICE_MEMORY_LIMIT_MIB": "7680",
    }
    eq({k: env.get(k) for k in expected}, expected, "job environment")
    eq(opened(out), {str(dev / "nvidia0"): EPERM, str(dev / "nvidia1"): "ok"}, "device opens")
    prolog = env_of((c.dir / "out" / f"prolog-{job}.env").read_text())
    eq(prolog.get("CUDA_VISIBLE_DEVICES"), "1", "prolog CUDA_VISIBLE_DEVICES (host numbering)")
    eq(prolog.get("SLURM_VSLICE_DEVICES"), "1", "prolog SLURM_VSLICE_DEVICES")


def test_srun_step_in_allocation(c):
    dev = c.dir / "dev" / "n2"
    step = c.dir / "out" / "step.sh"
    step.write_text(f"#!/bin/bash\n{VSLICE_ENV}\n{open_probe([dev / 'nvidia0', dev / 'nvidia1'])}\n")
    step.chmod(0o755)
    job = c.sbatch("-w", "n2", "--gres=vslice:1", script=f"#!/bin/bash\nsrun -n1 {step}\n")
    eq(c.wait_job(job), "COMPLETED", "job state")
    out = c.job_output(job)
    env = env_of(out)
    eq(env.get("CUDA_VISIBLE_DEVICES"), "0", "step CUDA_VISIBLE_DEVICES")
    eq(env.get("SLURM_VSLICE_COUNTS"), "1", "step SLURM_VSLICE_COUNTS")
    eq(env.get("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"), "25", "step MPS percentage")
    eq(opened(out), {str(dev / "nvidia0"): "ok", str(dev / "nvidia1"): EPERM}, "step device opens")


def test_two_jobs_share_one_device(c):
    dev = c.dir / "dev" / "n2"
    flag = c.dir / "out" / "share-release"
    script = f"""#!/bin/bash
{VSLICE_ENV}
{open_probe([dev / "nvidia0"])}
touch {c.dir}/out/share-$SLURM_JOB_ID.started
while [ ! -e {flag} ]; do sleep 0.2; done
"""
    a = c.sbatch("-w", "n2", "--gres=vslice:2", script=script)
    b = c.sbatch("-w", "n2", "--gres=vslice:2", script=script)
    try:
        # Both hold slices of nvidia0 at the same time.
        wait_until(lambda: all((c.dir / "out" / f"share-{j}.started").exists() for j in (a, b)), 30,
                   "both jobs running together")
        for j in (a, b):
            contains(c.show_job(j), "GRES=vslice:t4:2(IDX:", f"job {j} detail")
    finally:
        flag.touch()
    for j in (a, b):
        eq(c.wait_job(j), "COMPLETED", f"job {j}")
        out = c.job_output(j)
        eq(env_of(out).get("SLURM_VSLICE_DEVICES"), "0", f"job {j} device")
        eq(opened(out), {str(dev / "nvidia0"): "ok"}, f"job {j} opens the shared device")


def test_typed_requests(c):
    job = c.sbatch("--gres=vslice:mi210:1", script=f"#!/bin/bash\n{VSLICE_ENV}\n")
    eq(c.wait_job(job), "COMPLETED", "mi210 job")
    contains(c.show_job(job), "NodeList=n3", "mi210 job node")
    env = env_of(c.job_output(job))
    eq(env.get("ROCR_VISIBLE_DEVICES"), "0", "ROCR_VISIBLE_DEVICES")
    eq(env.get("SLURM_VSLICE_MEMORY_LIMIT_MIB"), "16384", "AMD memory limit from device_memory")
    eq([k for k in env if k.startswith(("CUDA_VISIBLE", "CUDA_MPS", "CUDA_DEVICE"))], [],
       "no CUDA variables for AMD")

    job = c.sbatch("--gres=vslice:ascend910b:3", script=f"#!/bin/bash\n{VSLICE_ENV}\n")
    eq(c.wait_job(job), "COMPLETED", "ascend job")
    contains(c.show_job(job), "NodeList=n4", "ascend job node")
    env = env_of(c.job_output(job))
    eq(env.get("ASCEND_RT_VISIBLE_DEVICES"), "0", "ASCEND_RT_VISIBLE_DEVICES")
    eq(env.get("SLURM_VSLICE_COMPUTE_PERCENT"), "75", "3 slices x 25%")

    job = c.sbatch("--gres=vslice:t4:1", script="#!/bin/bash\nsleep 3\n")
    c.wait_job(job, states=("RUNNING",))
    contains(c.show_job(job), "GRES=vslice:t4:1(IDX:", "t4 job detail")  # only while it runs
    eq(c.wait_job(job), "COMPLETED", "t4 job")


def test_more_slices_than_any_node_rejected_at_submit(c):
    r = c.sbatch("--gres=vslice:9", script="#!/bin/bash\ntrue\n", check=False)
    eq(isinstance(r, int), False, "submission refused")
    contains(r.stderr, "Requested node configuration is not available", "sbatch message")
    r = c.sbatch("--gres=vslice:h100:1", script="#!/bin/bash\ntrue\n", check=False)
    eq(isinstance(r, int), False, "unknown type refused")
