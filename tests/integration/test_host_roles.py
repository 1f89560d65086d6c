"""Which host needs which flexslurm file (issue 16 §1, docs/admin.md "Host
roles"), and the user guide's job forms (docs/user.md: job arrays, steps,
heterogeneous jobs) on a select/flex cluster with the SPANK plugin.

A login host is emulated by a copy of the cluster's etc/ whose PluginDir
holds every plugin but the ones left out (links to the staged and Slurm's
own), used through SLURM_CONF."""

import re

from helpers import contains, eq, env_of
from host_roles import client_host, slurm_release



def _cpu_only(c):
    """hr3 without accelerators: no device nodes, no gres.conf line, no Gres=."""
    for dev in (c.dir / "dev" / "hr3").iterdir():
        dev.unlink()
    gres = c.dir / "etc" / "gres.conf"
    gres.write_text("".join(l for l in gres.read_text().splitlines(True) if not l.startswith("NodeName=hr3 ")))


# hr1, hr2: two T4 each; hr3: a CPU-only node.
CLUSTER = dict(nodes=3, prefix="hr", shape="nvidia-2gpu", cpus=4, select="select/flex",
               spank_args=["isolation=required"], gres_per_node={"hr3": "(null)"}, prepare=_cpu_only)

SLEEP = "#!/bin/bash\nsleep 120\n"
FATAL = "fatal: Can't find plugin for select/flex"


def _commands(job):
    return {
        "sinfo": ["sinfo", "-O", "NodeList,Gres,GresUsed"],
        "squeue": ["squeue", "-j", str(job)],
        "scontrol show node": ["scontrol", "show", "node", "hr1"],
        "scontrol show job": ["scontrol", "show", "job", str(job)],
        "scontrol show job -d": ["scontrol", "show", "job", "-d", str(job)],
    }


def _expected_ok(job):
    """What each command must show on a host that can read select/flex's data."""
    return {
        "sinfo": "vslice:t4:8",
        "squeue": f"{job}",
        "scontrol show node": "Gres=gpu:t4:2,vslice:t4:8",
        "scontrol show job": "TresPerNode=gres",
        "scontrol show job -d": "GRES=vslice:t4:1(IDX:",
    }


def _failing_without_select_flex(release):
    """The client commands that stop with FATAL without select_flex.so (observed on 22.05.8, 24.11.5,
    26.05.3): up to 24.11 clients load every select plugin and unpack node (and, up to 23.x, job)
    records by the controller's select plugin id; from 25.11 select/flex uses cons_tres's id."""
    if release < (24, 11):
        return {"sinfo", "squeue", "scontrol show node", "scontrol show job", "scontrol show job -d"}
    if release < (25, 11):
        return {"sinfo", "scontrol show node", "scontrol show job -d"}
    return set()


def test_client_host_without_select_flex(c):
    job = c.sbatch("-w", "hr1", "--gres=vslice:1", script=SLEEP)
    c.wait_job(job, states=("RUNNING",))
    try:
        env = client_host(c, "login-no-select-flex", omit=("select_flex.so",))
        failing = _failing_without_select_flex(slurm_release(c))
        expected = _expected_ok(job)
        for what, argv in _commands(job).items():
            r = c.run(argv, check=False, env=env)
            if what in failing:
                eq(r.returncode, 1, f"{what} without select_flex.so: {r.stdout}")
                contains(r.stderr, FATAL, f"{what}'s message")
            else:
                eq(r.returncode, 0, f"{what} without select_flex.so: {r.stderr}")
                contains(r.stdout, expected[what], what)
        # Submitting is not reading node records: sbatch works from 24.11 on.
        r = c.run(["sbatch", "--gres=vslice:1", "--wrap", "true", f"--output={c.dir}/out/%j.out"], check=False,
                  env=env)
        if slurm_release(c) < (24, 11):
            contains(r.stderr, FATAL, "sbatch without select_flex.so")
        else:
            contains(r.stdout, "Submitted batch job", f"sbatch without select_flex.so: {r.stderr}")

        # The GRES plugins are not needed by client commands (every release tested).
        env = client_host(c, "login-no-gres-plugins", omit=("gres_vslice.so", "gres_vborrow.so"))
        for what, argv in _commands(job).items():
            r = c.run(argv, check=False, env=env)
            eq(r.returncode, 0, f"{what} without gres_vslice.so: {r.stderr}")
            contains(r.stdout, expected[what], f"{what} without gres_vslice.so")
    finally:
        c.run(["scancel", str(job)], check=False)


LS = "echo LS $(ls {dev} | tr '\\n' ' ')\nenv | grep -E '^SLURM_VSLICE_COUNTS='\n"


def _ls(out):
    return re.search(r"^LS (.*)$", out, re.M).group(1).split()


def test_login_host_without_spank_plugin(c):
    omit = ("spank_flexslurm.so",)
    # plugstack.conf still names the plugin as `required`: sbatch, srun and salloc refuse to run.
    env = client_host(c, "login-required-missing", omit=omit,
                      plugstack="required {plugins}/spank_flexslurm.so isolation=required\n")
    for cmd, says in (("sbatch", "Failed to initialize plugin stack"), ("srun", "Plug-in initialization failed"),
                      ("salloc", "Failed to initialize plugin stack")):
        argv = [cmd, "--gres=vslice:1"] + (["--wrap", "true"] if cmd == "sbatch" else ["true"])
        r = c.run(argv, check=False, env=env)
        eq(r.returncode != 0, True, f"{cmd} with a required plugin missing: {r.stdout}")
        contains(r.stderr, "Dlopen of plugin file failed", f"{cmd}'s message")
        contains(r.stderr, says, f"{cmd}'s message")

    # No plugstack line on the login host: jobs run, and the nodes' own plugstack.conf still fences
    # them; only the plugin's options are unknown.
    env = client_host(c, "login-no-spank", omit=omit, plugstack="")
    dev = c.dir / "dev" / "hr2"
    r = c.run(["sbatch", "--parsable", "-w", "hr2", "--gres=vslice:1", f"--output={c.dir}/out/%j.out",
               "--wrap", LS.format(dev=dev)], check=False, env=env)
    eq(r.returncode, 0, f"sbatch without the SPANK plugin: {r.stderr}")
    job = int(r.stdout.strip())
    eq(c.wait_job(job), "COMPLETED", "the job")
    out = c.job_output(job)
    eq(_ls(out), ["nvidia0"], f"the job's device dir (the node's SPANK plugin):\n{out}")
    contains(out, "SLURM_VSLICE_COUNTS=1", "the job's slices")
    r = c.run(["srun", "--gres=vslice:1", "true"], check=False, env=env, timeout=60)
    eq(r.returncode, 0, f"srun without the SPANK plugin: {r.stderr}")
    for cmd in ("sbatch", "srun"):
        r = c.run([cmd, "--vslice-split", "--gres=vslice:1", "true"], check=False, env=env)
        contains(r.stderr, "unrecognized option '--vslice-split'", f"{cmd} --vslice-split without the plugin")

    # `optional`: it works (22.05 prints the loader's error lines first; 26.05 nothing).
    env = client_host(c, "login-optional-missing", omit=omit,
                      plugstack="optional {plugins}/spank_flexslurm.so isolation=required\n")
    r = c.run(["sbatch", "--gres=vslice:1", "--wrap", "true", f"--output={c.dir}/out/%j.out"], check=False,
              env=env)
    eq(r.returncode, 0, f"sbatch with an optional plugin missing: {r.stderr}")
    if slurm_release(c) < (23, 0):
        contains(r.stderr, "Dlopen of plugin file failed", "sbatch's message")


def test_job_array_with_slices(c):
    """docs/user.md: `sbatch --array=0-3 --gres=vslice:1`: each task its own slice."""
    r = c.run(["sbatch", "--parsable", "--array=0-3", "--gres=vslice:1", f"--output={c.dir}/out/array-%A_%a.out",
               "--wrap", "env | grep -E '^(SLURM_ARRAY_TASK_ID|SLURM_VSLICE_COUNTS|CUDA_VISIBLE_DEVICES)='"])
    array = int(r.stdout.strip())
    for task in range(4):
        eq(c.wait_job(f"{array}_{task}"), "COMPLETED", f"task {task}")
        env = env_of((c.dir / "out" / f"array-{array}_{task}.out").read_text())
        eq((env.get("SLURM_ARRAY_TASK_ID"), env.get("SLURM_VSLICE_COUNTS"), env.get("CUDA_VISIBLE_DEVICES")),
           (str(task), "1", "0"), f"task {task}'s environment")


def test_steps_take_slices_of_the_allocation(c):
    """docs/user.md: `srun --gres=vslice:N` inside a job takes N of the job's slices; more is refused."""
    job = c.sbatch("-w", "hr1", "--gres=vslice:2", script="""#!/bin/bash
echo "STEP1 $(srun --gres=vslice:1 printenv SLURM_VSLICE_COUNTS)"
echo "STEP2 $(srun printenv SLURM_VSLICE_COUNTS)"
srun --gres=vslice:3 true 2>&1 | sed 's/^/STEP3 /'
""")
    eq(c.wait_job(job), "COMPLETED", "job")
    out = c.job_output(job)
    contains(out, "STEP1 1", "a step with one slice")
    contains(out, "STEP2 2", "a step without --gres gets the job's slices")
    contains(out, "STEP3 srun: error: Unable to create step for job", "a step asking more than the job holds")


def test_heterogeneous_job(c):
    """docs/user.md: `sbatch --gres=vslice:1 : --gres=vslice:2`: each component its own slices (here on
    its own node: Slurm's backfill places components on different nodes)."""
    r = c.run(["sbatch", "--parsable", f"--output={c.dir}/out/het-%j.out", "--gres=vslice:1", ":", "--gres=vslice:2",
               "--wrap", "srun --het-group=0,1 printenv SLURM_VSLICE_COUNTS | sort | sed 's/^/COUNT /'; sleep 4"])
    job = int(r.stdout.strip().split("+")[0])
    c.wait_job(f"{job}+0", states=("RUNNING",))
    detail = c.show_job(f"{job}")  # every component, while it runs
    eq(c.wait_job(f"{job}+0"), "COMPLETED", "component 0")
    eq(sorted(re.findall(r"\bGRES=(vslice:t4:\d)\(IDX:", detail)), ["vslice:t4:1", "vslice:t4:2"],
       f"the components' slices:\n{detail}")
    out = (c.dir / "out" / f"het-{job}.out").read_text()
    eq(re.findall(r"^COUNT (\d)$", out, re.M), ["1", "2"], f"each component's step:\n{out}")


def test_slurmd_host_roles(c):
    """A CPU-only node (no Gres=) still needs flexslurm's plugins: without select_flex.so slurmd stops at
    start up to 24.11 (it loads the SelectType plugin to read job records); without gres_vslice.so it
    starts (Slurm counts a GRES without a plugin) but no slice layout is written, so the SPANK plugin
    (plugstack.conf is the same everywhere) fails every job there."""
    c.stop_daemon("slurmd.hr3")
    try:
        env = client_host(c, "cpu-node-no-select-flex", omit=("select_flex.so",))
        r = c.run(["timeout", "15", "slurmd", "-D", "-N", "hr3", "-f", env["SLURM_CONF"]], check=False, timeout=30)
        if slurm_release(c) < (25, 11):
            eq(r.returncode, 1, f"slurmd without select_flex.so: {r.stderr}")
            contains(r.stderr, FATAL, "slurmd's message")
        else:
            eq(r.returncode, 124, f"slurmd without select_flex.so still running after 15 s: {r.stderr}")
        env = client_host(c, "cpu-node-no-gres-plugins", omit=("gres_vslice.so", "gres_vborrow.so"))
        layout = c.dir / "state" / "layout.hr3"
        layout.unlink(missing_ok=True)  # gres/vslice writes it at slurmd's start
        c._spawn("slurmd.hr3", ["slurmd", "-D", "-N", "hr3", "-f", env["SLURM_CONF"]])
        c.wait_nodes_idle(timeout=60, nodes=["hr3"])
        job = c.sbatch("-w", "hr3", script="#!/bin/bash\necho cpu job\n")
        eq(c.wait_job(job), "FAILED", "a job on the CPU-only node without gres_vslice.so")
        contains(c.job_output(job), f"flexslurm: cannot isolate devices: {layout}: No such file or directory",
                 "the job's error")
    finally:
        c.stop_daemon("slurmd.hr3")
        c.start_slurmd("hr3")
    c.wait_nodes_idle(timeout=60, nodes=["hr3"])
    job = c.sbatch("-w", "hr3", script="#!/bin/bash\necho cpu job\n")
    eq(c.wait_job(job), "COMPLETED", "a job on the CPU-only node with every plugin")
