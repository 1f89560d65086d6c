"""In-device limits at launch: the mps and preload backends, against
stand-ins that record what they were asked (no GPU here; see
docs/spank.md for the same test on a real GPU)."""

import re
import shutil
import subprocess
from pathlib import Path

from helpers import contains, env_of, eq

HERE = Path(__file__).resolve().parent


def _prepare(c):
    (c.dir / "bin").mkdir()
    shutil.copy(HERE / "fake-mps-control", c.dir / "bin" / "fake-mps-control")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(c.dir / "bin" / "libstub.so"),
                    str(HERE / "stub_preload.c")], check=True)


# m1: two T4 (mps); m2: two MI210 (preload, 64 GiB each).
CLUSTER = dict(nodes=2, prefix="m", node_shapes={"m1": "nvidia-2gpu", "m2": "amd-2gpu"}, cpus=8,
               spank_args=["isolation=required", "limits.nvidia=mps", "limits.amd=preload",
                           "preload={dir}/bin/libstub.so", "mps_control={dir}/bin/fake-mps-control",
                           "mps_dir={dir}/mps"],
               prepare=_prepare)

ENV = "env | grep -E '^(CUDA_|LD_PRELOAD|SLURM_VSLICE)' | sort"


def _record(c):
    p = c.dir / "bin" / "mps-record.log"
    return p.read_text() if p.exists() else ""


def test_mps_daemon_per_step_with_slice_limits(c):
    flag = c.dir / "out" / "mps-release"
    filler = c.sbatch("-w", "m1", "--gres=vslice:4", script=f"#!/bin/bash\nwhile [ ! -e {flag} ]; do sleep 0.2; done\n")
    c.wait_job(filler, states=("RUNNING",))
    before = _record(c)
    job = c.sbatch("-w", "m1", "--gres=vslice:2", "--export=ALL,CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=100", script=f"""#!/bin/bash
{ENV}
echo "PIPE_LISTING $(stat -c '%a' $CUDA_MPS_PIPE_DIRECTORY) $(ls $CUDA_MPS_PIPE_DIRECTORY)"
""")
    eq(c.wait_job(job), "COMPLETED", "job")
    flag.touch()
    c.wait_job(filler)
    out = c.job_output(job)
    env = env_of(out)
    mps_dir = c.dir / "mps"
    step_dir = f"{mps_dir}/{job}.4294967291"  # the batch step
    eq(env.get("CUDA_MPS_PIPE_DIRECTORY"), f"{step_dir}/pipe", "task pipe dir")
    eq(env.get("CUDA_MPS_LOG_DIRECTORY"), f"{step_dir}/log", "task log dir")
    eq(env.get("CUDA_VISIBLE_DEVICES"), "0", "the job's own numbering")
    contains(out, "PIPE_LISTING 700 control", "pipe dir private to the job, daemon inside")
    rec = [l for l in _record(c)[len(before):].splitlines() if f"/mps/{job}." in l]
    eq(rec, [
        f"start uid=0 pipe={step_dir}/pipe log={step_dir}/log visible=1 pipe_mode=700 0",
        f"cmd pipe={step_dir}/pipe: set_default_active_thread_percentage 50",
        f"cmd pipe={step_dir}/pipe: set_default_device_pinned_mem_limit 0 7680M",
        f"cmd pipe={step_dir}/pipe: quit",
    ], "what the MPS control program was asked (device 1 in host numbering)")
    eq(Path(step_dir).exists(), False, "step's MPS directories removed at step end")
    contains(_record(c), f"/mps/{filler}.4294967291/log visible=0", "the other job has a daemon of its own")


def test_preload_limits_from_the_allocation(c):
    job = c.sbatch("-w", "m2", "--gres=vslice:3",
                   "--export=ALL,CUDA_DEVICE_SM_LIMIT=100,SLURM_VSLICE_COUNTS=4",
                   script=f"#!/bin/bash\n{ENV}\n")
    eq(c.wait_job(job), "COMPLETED", "job")
    out = c.job_output(job)
    env = env_of(out)
    eq(env.get("LD_PRELOAD"), str(c.dir / "bin" / "libstub.so"), "LD_PRELOAD")
    eq(env.get("CUDA_DEVICE_SM_LIMIT"), "75", "3 slices x 25 % (the user's 100 overwritten)")
    eq(env.get("CUDA_DEVICE_MEMORY_LIMIT_0"), "49152m", "3 x 16 GiB")
    eq(env.get("SLURM_VSLICE_COUNTS"), "3", "Slurm's count, not the user's")
    contains(out, "STUB sm=75 mem0=49152m", "the library saw the limits")
    eq("CUDA_MPS_PIPE_DIRECTORY" in env, False, "no MPS on the AMD node")


def test_job_without_slices_gets_no_limits(c):
    before = _record(c)
    job = c.sbatch("-w", "m1", script=f"#!/bin/bash\n{ENV}\n")
    eq(c.wait_job(job), "COMPLETED", "job")
    env = env_of(c.job_output(job))
    eq([k for k in env if k.startswith(("CUDA_MPS", "CUDA_DEVICE_SM", "LD_PRELOAD"))], [], "no limit variables")
    eq(_record(c)[len(before):], "", "no MPS daemon")
