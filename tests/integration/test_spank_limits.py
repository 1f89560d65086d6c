# SPDX-License-Identifier: GPL-2.0-or-later
"""In-device limits: per job (shared by its steps), from Slurm's allocation,
in root-owned per-job state made by the SPANK job prolog, against stand-ins
for nvidia-cuda-mps-control (fake-mps-control) and an interception library
(stub_preload.c). Jobs run as two users (nobody and a user made here).
No GPU here; docs/spank.md has the same checks for a real GPU."""

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from helpers import contains, env_of, eq
from localcluster import ensure_user

HERE = Path(__file__).resolve().parent
OTHER = "flexslurm-y2"  # a second job user


def _prepare(c):
    (c.dir / "bin").mkdir()
    shutil.copy(HERE / "fake-mps-control", c.dir / "bin" / "fake-mps-control")
    subprocess.run(["cc", "-shared", "-fPIC", f'-DJOBS_DIR="{c.dir}/jobs"', "-o",
                    str(c.dir / "bin" / "libstub.so"), str(HERE / "stub_preload.c")], check=True)
    os.chmod(c.dir / "out", 0o1777)  # job output of users other than root
    os.chmod(c.dir / "munge", 0o711)  # srun in a job of another user reaches munged
    record = c.dir / "bin" / "mps-record.log"  # the fake records its users' commands too
    record.touch()
    os.chmod(record, 0o666)
    ensure_user(OTHER)


# m1: two T4 (mps); m2: two MI210 (preload, 64 GiB each).
CLUSTER = dict(nodes=2, prefix="m", node_shapes={"m1": "nvidia-2gpu", "m2": "amd-2gpu"}, cpus=8,
               spank_args=["isolation=required", "limits.nvidia=mps", "limits.amd=preload",
                           "preload={dir}/bin/libstub.so", "mps_control={dir}/bin/fake-mps-control",
                           "job_dir={dir}/jobs"],
               prepare=_prepare)

ENV = "env | grep -E '^(CUDA_|LD_PRELOAD|SLURM_VSLICE)' | sort"
MPS = "{dir}/bin/fake-mps-control"


def _record(c):
    p = c.dir / "bin" / "mps-record.log"
    return p.read_text() if p.exists() else ""


def _as(user):
    pw = pwd.getpwnam(user)
    return [f"--uid={pw.pw_uid}", f"--gid={pw.pw_gid}", "--chdir=/tmp"]


def test_mps_daemon_per_job_root_owned_user_cannot_raise(c):
    flag = c.dir / "out" / "mps-release"
    mps = MPS.format(dir=c.dir)
    before = _record(c)
    # A job of another user on the same node, holding its slices meanwhile.
    other = c.sbatch("-w", c.nodes[0], "--gres=vslice:1", *_as(OTHER), script=f"""#!/bin/bash
{ENV}
{mps} client
while [ ! -e {flag} ]; do sleep 0.2; done
""")
    c.wait_job(other, states=("RUNNING",))
    job = c.sbatch("-w", c.nodes[0], "--gres=vslice:2", *_as("nobody"),
                   env={"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": "100"}, script=f"""#!/bin/bash
{ENV}
echo "PIPE $(stat -c '%u %a' $CUDA_MPS_PIPE_DIRECTORY)"
touch $CUDA_MPS_PIPE_DIRECTORY/mine 2>/dev/null && echo PIPE_WRITABLE || echo PIPE_NOT_WRITABLE
echo set_default_active_thread_percentage 100 | {mps}; echo "USERCMD rc=$?"
{mps} client
env -u CUDA_MPS_PIPE_DIRECTORY -u CUDA_MPS_LOG_DIRECTORY srun -n1 bash -c 'echo "STEP $CUDA_MPS_PIPE_DIRECTORY"; {mps} client'
""")
    eq(c.wait_job(job), "COMPLETED", "job")
    flag.touch()
    c.wait_job(other)
    out = c.job_output(job)
    env = env_of(out)
    jobdir = f"{c.dir}/jobs/{job}"
    nobody = pwd.getpwnam("nobody").pw_uid
    eq(env.get("CUDA_MPS_PIPE_DIRECTORY"), f"{jobdir}/mps-pipe", "task pipe dir")
    eq(env.get("CUDA_VISIBLE_DEVICES"), "0", "the job's own numbering")
    contains(out, "PIPE 0 755", "the pipe directory is root's")
    contains(out, "PIPE_NOT_WRITABLE", "the user cannot write in it")
    # The user's own set_default_* reached the daemon (MPS lets it), and
    # changed nothing for the job: its server runs with the job's share.
    contains(out, f"CLIENT uid={nobody} mem0=7680M thread=50", "batch step gets the job's share")
    contains(out, f"STEP {jobdir}/mps-pipe", "an srun step gets the job's daemon back after unsetting it")
    eq(out.count(f"CLIENT uid={nobody} mem0=7680M thread=50"), 2, "batch and srun step share the job's limits")
    rec = [l for l in _record(c)[len(before):].splitlines() if f"/jobs/{job}/" in l]
    eq(rec[0].split(" visible=")[0], f"start uid=0 groups=0 pipe={jobdir}/mps-pipe log={jobdir}/mps-log",
       "daemon started by root, no supplementary groups")
    eq(rec[1:5], [
        f"cmd uid=0 pipe={jobdir}/mps-pipe: set_default_active_thread_percentage 50",
        f"cmd uid=0 pipe={jobdir}/mps-pipe: set_default_device_pinned_mem_limit 0 7680M",
        f"cmd uid=0 pipe={jobdir}/mps-pipe: start_server -uid {nobody}",
        f"cmd uid={nobody} pipe={jobdir}/mps-pipe: set_default_active_thread_percentage 100",
    ], "what the MPS control program was asked")
    eq(rec[-1], f"cmd uid=0 pipe={jobdir}/mps-pipe: quit", "job epilog stops the daemon")
    eq(Path(jobdir).exists(), False, "the job's state removed at job end")
    # The other user's job: a daemon and a server of its own, its own share.
    other_out = c.job_output(other)
    other_uid = pwd.getpwnam(OTHER).pw_uid
    contains(other_out, f"CLIENT uid={other_uid} mem0=3840M thread=25", "the other user's job, its own share")
    contains(_record(c), f"/jobs/{other}/mps-pipe: start_server -uid {other_uid}", "its own server")


def test_planted_link_in_next_job_dir_is_not_followed(c):
    target = c.dir / "out" / "target"
    target.write_text("secret\n")
    os.chmod(target, 0o600)
    # The next job id: one more than the last submitted.
    probe = c.sbatch("-w", c.nodes[0], "--hold", script="#!/bin/bash\ntrue\n")
    c.run(["scancel", str(probe)])
    jobdir = c.dir / "jobs" / str(probe + 1)
    jobdir.mkdir(parents=True)
    for name in ["mps-log", "mps-pipe", "limits", "preload.cache"]:
        (jobdir / name).symlink_to(target)
    job = c.sbatch("-w", c.nodes[0], "--gres=vslice:1", *_as("nobody"), script=f"#!/bin/bash\n{ENV}\n")
    eq(job, probe + 1, "the planted directory is the job's")
    eq(c.wait_job(job), "COMPLETED", "job")
    st = target.stat()
    eq((st.st_uid, oct(st.st_mode & 0o777), target.read_text()), (0, "0o600", "secret\n"), "target untouched")
    contains(c.log(f"slurmd.{c.nodes[0]}"), f"flexslurm: job {job}: removed what was already at {jobdir}", "logged")


def test_preload_limits_per_job_from_a_root_file(c):
    lib = c.dir / "bin" / "libstub.so"
    jobs = {}
    for user, n in (("nobody", 3), (OTHER, 1)):
        jobs[user] = c.sbatch("-w", c.nodes[1], f"--gres=vslice:{n}", *_as(user),
                              env={"CUDA_DEVICE_SM_LIMIT": "100", "SLURM_VSLICE_COUNTS": "4"},
                              script=f"""#!/bin/bash
{ENV}
CUDA_DEVICE_SM_LIMIT=100 CUDA_DEVICE_MEMORY_LIMIT_0=999999m /bin/true
echo "CUDA_DEVICE_SM_LIMIT=100" > $(dirname $CUDA_DEVICE_MEMORY_SHARED_CACHE)/preload.conf 2>/dev/null \
  && echo CONF_WRITABLE || echo CONF_NOT_WRITABLE
env -u LD_PRELOAD -u CUDA_DEVICE_SM_LIMIT srun -n1 bash -c 'echo "STEP $LD_PRELOAD $CUDA_DEVICE_SM_LIMIT"'
sleep 2
""")
    for user, job in jobs.items():
        eq(c.wait_job(job), "COMPLETED", f"job of {user}")
    out = c.job_output(jobs["nobody"])
    env = env_of(out)
    cache = f"{c.dir}/jobs/{jobs['nobody']}/preload.cache"
    eq(env.get("LD_PRELOAD"), str(lib), "LD_PRELOAD")
    eq(env.get("CUDA_DEVICE_SM_LIMIT"), "75", "3 slices x 25 % (the user's 100 overwritten)")
    eq(env.get("CUDA_DEVICE_MEMORY_LIMIT_0"), "49152m", "3 x 16 GiB")
    eq(env.get("CUDA_DEVICE_MEMORY_SHARED_CACHE"), cache, "a shared cache of the job's own")
    eq(env.get("SLURM_VSLICE_COUNTS"), "3", "Slurm's count, not the user's")
    contains(out, f"STUB from=file sm=75 mem0=49152m cache={cache}", "the library read the root-owned file")
    eq(out.count("sm=100"), 0, "the user's variables changed nothing")
    contains(out, "CONF_NOT_WRITABLE", "the user cannot write its own limits file")
    contains(out, f"STEP {lib} 75", "an srun step gets LD_PRELOAD and the job's share back")
    eq("CUDA_MPS_PIPE_DIRECTORY" in env, False, "no MPS on the AMD node")
    other = c.job_output(jobs[OTHER])
    contains(other, f"STUB from=file sm=25 mem0=16384m cache={c.dir}/jobs/{jobs[OTHER]}/preload.cache",
             "the other user's job: its own limits and cache")


def test_job_without_slices_gets_no_limits(c):
    before = _record(c)
    job = c.sbatch("-w", c.nodes[0], *_as("nobody"), script=f"#!/bin/bash\n{ENV}\n")
    eq(c.wait_job(job), "COMPLETED", "job")
    env = env_of(c.job_output(job))
    eq([k for k in env if k.startswith(("CUDA_MPS", "CUDA_DEVICE_SM", "LD_PRELOAD"))], [], "no limit variables")
    eq(_record(c)[len(before):], "", "no MPS daemon")
