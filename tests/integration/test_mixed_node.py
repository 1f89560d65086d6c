# SPDX-License-Identifier: GPL-2.0-or-later
"""A mixed node (mx1: one Tesla T4 and one Ascend 910B, shape mixed-nvidia-ascend) with per-vendor slicing
classes (T4: 4 slices, Ascend: 2), select/flex and isolation=required: a typed request gets its vendor's
device only, with that vendor's visible-devices variable, the GRES IDX of that device, and a private /dev
where only that device opens; a request of both types gets both; an untyped request gets one device of
either vendor, and everything about it agrees with the device it got. Lending is per device (file
telemetry): the idle 910B's slice is lent while the busy T4's is not, until the T4 turns idle."""

import os
import re
import time

import lending_scene as scene
from helpers import contains, env_of, eq, open_probe, opened, wait_until

YAML = """\
version: 1
inventory:
  topology_xml: {dir}/topology/%n.xml
  device_dir: {dir}/dev/%n
  layout_file: {dir}/state/layout.%n
slicing:
  default:
    slices: 4
    memory_percent: 20
  classes:
    - vendor: ascend
      slices: 2
      memory_percent: 20
      device_memory: 64GiB
""" + scene.lending_section()

# Slice indices in inventory (PCI) order: the T4 (0000:3b) first, then the 910B (0000:81).
T4_IDX, ASCEND_IDX = "IDX:0-3", "IDX:4-5"
CLUSTER = dict(nodes=1, prefix="mx", shape="mixed-nvidia-ascend", cpus=8, select="select/flex",
               flexslurm_yaml=YAML, spank_args=["isolation=required"],
               lending=True, gres_per_node={"mx1": "gpu:t4:1,gpu:ascend910b:1,vslice:t4:4,vslice:ascend910b:2,"
                                                   "vborrow:t4:4,vborrow:ascend910b:2"},
               prepare=lambda c: _control_nodes(c))

ENOENT = "No such file or directory"
EPERM = "Operation not permitted"
VENDOR_VARS = ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "ASCEND_VISIBLE_DEVICES",
               "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


def _control_nodes(c):
    """The vendors' control nodes, which every job keeps (plain files: nothing opens them here), and second
    device nodes for the T4 and the 910B outside the device dir (the route the private /dev cannot hide:
    only the devices cgroup refuses it)."""
    import os
    import stat
    for node in c.nodes:
        (c.dir / "telemetry" / node).mkdir(parents=True)
        for dev in ("nvidia0", "davinci0"):
            _telemetry(c, dev, "busy 0\n", node)
        for ctl in ("nvidiactl", "davinci_manager"):
            (c.dir / "dev" / node / ctl).write_text("")
        alias = c.dir / "alias" / node
        alias.mkdir(parents=True)
        for dev in ("nvidia0", "davinci0"):
            os.mknod(alias / dev, 0o666 | stat.S_IFCHR, os.stat(c.dir / "dev" / node / dev).st_rdev)


def _telemetry(c, dev, text, node="mx1"):
    path = c.dir / "telemetry" / node / dev
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _script(c, flag):
    d, a = c.dir / "dev" / "mx1", c.dir / "alias" / "mx1"
    return (f"#!/bin/bash\nenv | grep -E '^(SLURM_VSLICE|CUDA_|ASCEND_|ROCR_|HIP_)' | sort\n"
            f"echo LS $(ls {d} | sort | tr '\\n' ' ')\n" + open_probe([d / "nvidia0", d / "davinci0", a / "nvidia0", a / "davinci0"]) +
            f"\nwhile [ ! -e {flag} ]; do sleep 0.2; done\n")


def _run(c, *args):
    """Runs a job to completion: (its GRES as `scontrol show job -d` gave it while it ran, its environment,
    output)."""
    flag = c.dir / "out" / f"flag-{time.monotonic_ns()}"
    job = c.sbatch(*args, script=_script(c, flag))
    try:
        c.wait_job(job, states=("RUNNING", "COMPLETED", "FAILED"), timeout=90)
        gres = " ".join(re.findall(r"GRES=(\S*)", c.show_job(job)))
    finally:
        flag.touch()
    state = c.wait_job(job, timeout=90)
    out = c.job_output(job)
    eq(state, "COMPLETED", f"job {' '.join(args)}:\n{out}")
    return gres, env_of(out), out


def _accelerators(out):
    return [n for n in re.search(r"^LS (.*)$", out, re.M).group(1).split() if re.fullmatch(r"(nvidia|davinci)\d+", n)]


def _vendor_vars(env):
    return {k: v for k, v in env.items() if k in VENDOR_VARS}


def _expect_t4(c, gres, env, out, what):
    d = c.dir / "dev" / "mx1"
    contains(gres, f"vslice:t4:1({T4_IDX[:5]}", f"{what}: GRES IDX on the T4")
    eq(_vendor_vars(env), {"CUDA_VISIBLE_DEVICES": "0"}, f"{what}: visible-devices variables:\n{out}")
    eq((env.get("SLURM_VSLICE_DEVICES"), env.get("SLURM_VSLICE_VENDORS")), ("0", "nvidia"), f"{what}: slice variables")
    eq(env.get("SLURM_VSLICE_COMPUTE_PERCENT"), "25", f"{what}: one of the T4's 4 slices")
    eq(_accelerators(out), ["nvidia0"], f"{what}: private /dev:\n{out}")
    a = c.dir / "alias" / "mx1"
    eq(opened(out), {str(d / "nvidia0"): "ok", str(d / "davinci0"): ENOENT,
                     str(a / "nvidia0"): "ok", str(a / "davinci0"): EPERM}, f"{what}: opens")


def _expect_ascend(c, gres, env, out, what):
    d = c.dir / "dev" / "mx1"
    contains(gres, f"vslice:ascend910b:1({ASCEND_IDX[:5]}", f"{what}: GRES IDX on the 910B")
    eq(_vendor_vars(env), {"ASCEND_RT_VISIBLE_DEVICES": "0"}, f"{what}: visible-devices variables:\n{out}")
    eq((env.get("SLURM_VSLICE_DEVICES"), env.get("SLURM_VSLICE_VENDORS")), ("0", "ascend"), f"{what}: slice variables")
    eq(env.get("SLURM_VSLICE_COMPUTE_PERCENT"), "50", f"{what}: one of the 910B's 2 slices")
    eq(_accelerators(out), ["davinci0"], f"{what}: private /dev:\n{out}")
    a = c.dir / "alias" / "mx1"
    eq(opened(out), {str(d / "nvidia0"): ENOENT, str(d / "davinci0"): "ok",
                     str(a / "nvidia0"): EPERM, str(a / "davinci0"): "ok"}, f"{what}: opens")


def test_layout_has_both_vendors_with_their_classes(c):
    d = c.dir / "dev" / "mx1"
    log = c.log("slurmd.mx1")
    contains(log, f"gres/vslice: nvidia {d}/nvidia0: type t4", "the T4 in slurmd's start-up lines")
    contains(log, f"gres/vslice: ascend {d}/davinci0: type ascend910b", "the 910B in slurmd's start-up lines")
    # slurmd reported 4 + 2 slices, as slurm.conf says (a mismatch would drain the node).
    node = c.show_node("mx1")
    contains(node, "State=IDLE", f"the node took the per-vendor slice counts:\n{node}")
    contains(node, "vslice:ascend910b:2", "the 910B's slices (its class: 2) in the node record")


def test_t4_request_gets_only_the_t4(c):
    gres, env, out = _run(c, "--gres=vslice:t4:1")
    _expect_t4(c, gres, env, out, "vslice:t4:1")


def test_ascend_request_gets_only_the_910b(c):
    gres, env, out = _run(c, "--gres=vslice:ascend910b:1")
    _expect_ascend(c, gres, env, out, "vslice:ascend910b:1")


def test_both_types_in_one_job(c):
    d = c.dir / "dev" / "mx1"
    gres, env, out = _run(c, "--gres=vslice:t4:1,vslice:ascend910b:1")
    contains(gres, "vslice:t4:1(IDX:", "the T4 slice")
    contains(gres, "vslice:ascend910b:1(IDX:", "the 910B slice")
    eq(_vendor_vars(env), {"CUDA_VISIBLE_DEVICES": "0", "ASCEND_RT_VISIBLE_DEVICES": "0"}, f"both variables:\n{out}")
    eq((env.get("SLURM_VSLICE_DEVICES"), env.get("SLURM_VSLICE_VENDORS")), ("0,0", "nvidia,ascend"), "slice variables")
    eq(_accelerators(out), ["davinci0", "nvidia0"], f"private /dev:\n{out}")
    a = c.dir / "alias" / "mx1"
    eq(opened(out), {str(d / "nvidia0"): "ok", str(d / "davinci0"): "ok",
                     str(a / "nvidia0"): "ok", str(a / "davinci0"): "ok"}, "opens")


def test_untyped_request_gets_one_device_of_either_vendor(c):
    # Documented (docs/user.md): --gres=vslice:1 takes a slice of any type; on a mixed node name the type.
    gres, env, out = _run(c, "--gres=vslice:1")
    if "vslice:t4:1(" in gres:
        _expect_t4(c, gres, env, out, "vslice:1 (placed on the T4)")
    else:
        _expect_ascend(c, gres, env, out, "vslice:1 (placed on the 910B)")


def test_more_slices_than_the_type_has_is_refused(c):
    r = c.run(["sbatch", "--gres=vslice:ascend910b:3", "-o", "/dev/null", "--wrap", "true"], check=False)
    if r.returncode == 0:
        raise AssertionError(f"3 slices of a 2-slice 910B were accepted: {r.stdout}")
    contains(r.stderr, "Requested node configuration is not available", "the refusal")
    # the same count of the T4's type fits
    ok = c.run(["sbatch", "--gres=vslice:t4:3", "-o", "/dev/null", "--wrap", "true"])
    eq(c.wait_job(ok.stdout.split()[-1], timeout=90), "COMPLETED", "3 slices of the 4-slice T4")


def test_lending_is_per_device(c):
    """An idle 910B slice is lent to a vborrow:ascend910b borrower while the busy T4's is not lent to a
    vborrow:t4 one (file telemetry: nvidia0 busy, davinci0 idle)."""
    hold = "#!/bin/bash\nsleep 100000\n"
    t4 = c.sbatch("--gres=vslice:t4:1", script=hold)
    npu = c.sbatch("--gres=vslice:ascend910b:1", script=hold)
    jobs = [t4, npu]
    try:
        wait_until(lambda: c.job_state(t4) == "RUNNING" and c.job_state(npu) == "RUNNING", 60, "lenders running")
        _telemetry(c, "nvidia0", f"busy 80\njob {t4} busy 80\n")
        _telemetry(c, "davinci0", "busy 0\n")
        b_t4 = c.sbatch("--gres=vborrow:t4:1", script=hold)
        b_npu = c.sbatch("--gres=vborrow:ascend910b:1", script=hold)
        jobs += [b_t4, b_npu]
        wait_until(lambda: c.job_state(b_npu) == "RUNNING", 60, "the 910B borrower placed on the idle 910B slice")
        detail = c.show_job(b_npu)
        contains(detail, "vborrow:ascend910b:1(IDX:", f"the borrower's unit:\n{detail}")
        time.sleep(4)  # a few report intervals more: the busy T4's slice is still not lent
        eq(c.job_state(b_t4), "PENDING", "the T4 borrower while the T4 is busy")
        _telemetry(c, "nvidia0", "busy 0\n")
        wait_until(lambda: c.job_state(b_t4) == "RUNNING", 60, "the T4 borrower once the T4 is idle")
        contains(c.show_job(b_t4), "vborrow:t4:1(IDX:", "the T4 borrower's unit")
    finally:
        c.run(["scancel", *map(str, jobs)], check=False)
        for j in jobs:
            c.wait_job(j, timeout=60)
        _telemetry(c, "nvidia0", "busy 0\n")


def test_whole_910b_beside_a_t4_slice(c):
    """A whole 910B (gres/gpu) runs beside a T4 slice job; while the 910B is held whole, no 910B slice is
    offered (select/flex maps each gpu unit to its own vendor's device)."""
    d = c.dir / "dev" / "mx1"
    flag = c.dir / "out" / f"flag-{time.monotonic_ns()}"
    whole = c.sbatch("--gres=gpu:ascend910b:1", script=_script(c, flag))
    jobs = [whole]
    try:
        c.wait_job(whole, states=("RUNNING",), timeout=90)
        contains(c.show_job(whole), "gpu:ascend910b:1(IDX:1)", "the 910B's gpu unit")
        gres, env, out = _run(c, "--gres=vslice:t4:1")
        _expect_t4(c, gres, env, out, "vslice:t4:1 beside a whole 910B")
        npu = c.sbatch("--gres=vslice:ascend910b:1", script="#!/bin/bash\ntrue\n")
        jobs.append(npu)
        time.sleep(4)
        eq(c.job_state(npu), "PENDING", "a 910B slice while the 910B is held whole")
    finally:
        flag.touch()
        for j in jobs:
            c.wait_job(j, timeout=90)
    out = c.job_output(whole)
    eq(_accelerators(out), ["davinci0"], f"the whole 910B job's /dev:\n{out}")
    eq(opened(out)[str(d / "davinci0")], "ok", "the whole 910B job opens it")
    eq(opened(out)[str(d / "nvidia0")], ENOENT, "the whole 910B job does not see the T4")
