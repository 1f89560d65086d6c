# SPDX-License-Identifier: GPL-2.0-or-later
"""preload=system: the interception library is in /etc/ld.so.preload (here
bind-mounted for slurmd and its steps only), so a job that unsets LD_PRELOAD
still loads it, and it takes the job's limits from the root-owned per-job
file the SPANK job prolog wrote (stub_preload.c stands in for the library)."""

from helpers import contains, eq
from test_spank_limits import _as, _prepare


def _prepare_system(c):
    _prepare(c)
    (c.dir / "etc" / "ld.so.preload").write_text(f"{c.dir}/bin/libstub.so\n")


CLUSTER = dict(nodes=1, prefix="z", shape="amd-2gpu", cpus=8,
               spank_args=["isolation=required", "limits.amd=preload", "preload=system", "job_dir={dir}/jobs"],
               prepare=_prepare_system, slurmd_binds=[("{dir}/etc/ld.so.preload", "/etc/ld.so.preload")])


def test_unset_ld_preload_still_gets_the_jobs_limits(c):
    job = c.sbatch("--gres=vslice:2", *_as("nobody"), env={"CUDA_DEVICE_SM_LIMIT": "100"}, script="""#!/bin/bash
echo "LD_PRELOAD=[$LD_PRELOAD]"
env -u LD_PRELOAD -u CUDA_DEVICE_SM_LIMIT -u CUDA_DEVICE_MEMORY_SHARED_CACHE /bin/true
""")
    eq(c.wait_job(job), "COMPLETED", "job")
    out = c.job_output(job)
    contains(out, "LD_PRELOAD=[]", "preload=system leaves LD_PRELOAD alone")
    cache = f"{c.dir}/jobs/{job}/preload.cache"
    # /bin/true, started without any of the variables, still loaded the
    # library, and the library still found 2 slices x 25 % and 2 x 16 GiB.
    contains(out, f"STUB from=file sm=50 mem0=32768m cache={cache}", "limits of a process without LD_PRELOAD")
    eq(out.count("sm=100"), 0, "the user's variables changed nothing")
