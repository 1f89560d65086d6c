# SPDX-License-Identifier: GPL-2.0-or-later
"""Nothing a user sets decides a device or a limit: jobs that set
SLURM_VSLICE_* themselves (sbatch's environment, and `export` before srun)
see and open only their own devices and get their allocation's limits. With
gres/shard before vslice in GresTypes, Slurm keeps a user's SLURM_VSLICE_*
in a job with a whole GPU and no slice (PROTECT_ENV carried across GRES
plugins): the SPANK plugin must not take devices from it."""

import re
import shutil
import subprocess
from pathlib import Path

from helpers import contains, env_of, eq, open_probe, opened

HERE = Path(__file__).resolve().parent
ENOENT = "No such file or directory"


def _prepare(c):
    (c.dir / "bin").mkdir()
    subprocess.run(["cc", "-shared", "-fPIC", f'-DJOBS_DIR="{c.dir}/jobs"', "-o",
                    str(c.dir / "bin" / "libstub.so"), str(HERE / "stub_preload.c")], check=True)


# u1: two T4, 4 slices each, 8 shards; task/cgroup ConstrainDevices; the
# plugin required, NVIDIA limits through the (stub) interception library.
CLUSTER = dict(nodes=1, prefix="u", shape="nvidia-2gpu", cpus=8,
               gres_per_node={"u1": "gpu:t4:2,shard:8,vslice:t4:8"},
               gres_conf="AutoDetect=off\nNodeName=u1 Name=gpu Type=t4 File={dir}/dev/u1/nvidia[0-1]\n"
                         "NodeName=u1 Name=shard Count=8\n",
               extra_conf="GresTypes=gpu,shard,vslice\n",
               spank_args=["isolation=required", "limits.nvidia=preload", "preload={dir}/bin/libstub.so",
                           "job_dir={dir}/jobs"],
               prepare=_prepare)

# What a user sets: every device, a whole device's share each, a borrower.
FORGED = {"SLURM_VSLICE_DEVICES": "0,1", "SLURM_VSLICE_COUNTS": "4,4", "SLURM_VSLICE_COMPUTE_PERCENT": "100,100",
          "SLURM_VSLICE_MEMORY_LIMIT_MIB": "999999,999999", "SLURMS_VSLICES_ON_NODE": "8",
          "SLURM_VSLICE_BORROWED": "1"}


def _probe(c, tag):
    d = c.dir / "dev" / "u1"
    return f"""echo "{tag} LS $(ls {d} | tr '\\n' ' ')"
echo "{tag} ENV VSLICE=$SLURM_VSLICE_DEVICES SM=$CUDA_DEVICE_SM_LIMIT MEM=$CUDA_DEVICE_MEMORY_LIMIT_0 PRELOAD=$LD_PRELOAD"
{open_probe([d / "nvidia0", d / "nvidia1"]).replace('echo "OPEN', f'echo "{tag} OPEN')}
"""


def _script(c):
    step = c.dir / "out" / "forged-step.sh"
    step.write_text("#!/bin/bash\n" + _probe(c, "STEP"))
    step.chmod(0o755)
    exports = "\n".join(f"export {k}={v}" for k, v in FORGED.items())
    return f"""#!/bin/bash
echo "DETAIL $(scontrol show job -d $SLURM_JOB_ID | grep -o ' GRES=[^ ]*' | tail -1)"
{_probe(c, "BATCH")}
{exports}
srun -n1 {step}
"""


def _seen(out, tag):
    ls = re.search(rf"^{tag} LS (.*)$", out, re.M)
    env = re.search(rf"^{tag} ENV (.*)$", out, re.M)
    opens = {Path(k).name: v for k, v in re.findall(rf"^{tag} OPEN (\S+) (.*)$", out, re.M)}
    return (ls.group(1).split() if ls else None), (env.group(1) if env else None), opens


def _device_of(out, name):
    """The device file of the job's `name` GRES, from `scontrol show job -d` in the job (IDX)."""
    m = re.search(rf"^DETAIL .*{name}(?::t4)?:\d+\(IDX:(\d+)", out, re.M)
    if not m:
        raise AssertionError(f"no {name} IDX in:\n{out}")
    idx = int(m.group(1))
    return f"nvidia{idx // 4 if name == 'vslice' else idx}"


def test_slice_job_with_forged_variables_gets_its_allocation(c):
    job = c.sbatch("--gres=vslice:1", env=FORGED, script=_script(c))
    state = c.wait_job(job)
    out = c.job_output(job)
    eq(state, "COMPLETED", f"job:\n{out}")
    own = _device_of(out, "vslice")
    other = "nvidia1" if own == "nvidia0" else "nvidia0"
    for tag in ("BATCH", "STEP"):
        ls, env, opens = _seen(out, tag)
        eq([n for n in ls if n.startswith("nvidia")], [own], f"{tag}: device dir:\n{out}")
        eq(opens, {own: "ok", other: ENOENT}, f"{tag}: opens")
        # The allocation's share: one slice of 4 (25 %), a slice's memory.
        contains(env, "SM=25 ", f"{tag}: compute limit")
        contains(env, f"PRELOAD={c.dir}/bin/libstub.so", f"{tag}: the library")
    contains(out, "STUB from=file sm=25 ", "the library read the job's own root file")
    eq("sm=100" in out, False, "the user's share changed nothing")


def test_whole_gpu_job_keeps_forged_variables_but_sees_no_slice_device(c):
    job = c.sbatch("--gres=gpu:1", env=FORGED, script=_script(c))
    state = c.wait_job(job)
    out = c.job_output(job)
    eq(state, "COMPLETED", f"job:\n{out}")
    own = _device_of(out, "gpu")
    other = "nvidia1" if own == "nvidia0" else "nvidia0"
    for tag in ("BATCH", "STEP"):
        ls, env, opens = _seen(out, tag)
        # Slurm kept the user's value (else this test would prove nothing).
        contains(env, "VSLICE=0,1 ", f"{tag}: the user's SLURM_VSLICE_DEVICES survives into the job")
        eq([n for n in ls if n.startswith("nvidia")], [own], f"{tag}: device dir:\n{out}")
        eq(opens, {own: "ok", other: ENOENT}, f"{tag}: opens")
        contains(env, "SM= MEM= PRELOAD=", f"{tag}: no slice limits for a job without slices")
    contains(out, "SLURM_VSLICE_DEVICES=0,1 names devices this job does not hold on this node",
             "the user is told")
