# SPDX-License-Identifier: GPL-2.0-or-later
"""Idle reclaim on AMD and Ascend nodes with the vendor telemetry backends
(`telemetry: auto`): the real node agent in slurmd loads the stub AMD SMI and
DCMI libraries (tests/unit/stub_amdsmi.c, stub_dcmi.c, built here under the
production names libamd_smi.so and libdcmi.so and found through slurmd's
LD_LIBRARY_PATH), whose control files this module writes, not the file
backend. va1: two MI210 (amd-2gpu); va2: two Ascend 910B (ascend-2npu); va3:
two vNPUs of NPU 0 and NPU 1 whole (ascend-vnpu). The SPANK plugin runs with
limits.amd=cu_mask (compute-unit counts from a fake KFD sysfs tree written
here) and limits.ascend=vnpu: the in-device limits of the vendors' own."""

import os
import subprocess
import time
from pathlib import Path

from helpers import contains, env_of, eq, open_probe, opened, wait_until
from lending_scene import BOUND, lending_yaml
from lending_scene import holders as _holders

HERE = Path(__file__).resolve().parent
UNIT = HERE.parent / "unit"

# Each class reserves 20 % of its device's memory per slice: the rest is lent (as in test_lending).
YAML = (lending_yaml().replace("  telemetry: file\n  telemetry_dir: {dir}/telemetry/%n\n", "  telemetry: auto\n")
        .replace("      device_memory: 64GiB\n", "      device_memory: 64GiB\n      memory_percent: 20\n")
        .replace("lending:\n", "    - vendor: ascend\n      model: vir04\n      slices: 1\n      device_memory: 16GiB\nlending:\n"))

# The fake KFD topology of va1 (sysfs: nodes/<n>/properties): a CPU node, amd0 (renderD128) with
# 104 CUs matched by its render minor, amd1 (PCI 43:00.0) with 110 CUs matched by its PCI bus id.
CUS = {0: 104, 1: 110}
KFD = {"0": "cpu_cores_count 8\nsimd_count 0\nsimd_per_cu 0\n",
       "1": "simd_count 416\nsimd_per_cu 4\ndomain 0\nlocation_id 768\ndrm_render_minor 128\n",
       "2": "simd_count 440\nsimd_per_cu 4\ndomain 0\nlocation_id 17152\n"}

# The topologies' PCI bus ids (tests/topologies/cluster-amd-2gpu.xml, cluster-ascend-2npu.xml).
BUSES = {"amd": ["0000:03:00.0", "0000:43:00.0"], "ascend": ["0000:01:00.0", "0000:81:00.0"]}
CONTROL = {"amd": "FLEXSLURM_STUB_AMDSMI", "ascend": "FLEXSLURM_STUB_DCMI"}
VERSION = {"amd": "version 24 7 0 0\n", "ascend": "version 24 1 0\n"}


def _control(c, vendor):
    return c.dir / "stub" / f"{vendor}.control"


def _report(c, vendor, busy=0, pid=None):
    """What the vendor's stub library reports from now on: both devices `busy` %, and `pid` (if any)
    using them."""
    text = VERSION[vendor]
    for bus in BUSES[vendor]:
        text += f"device {bus} busy {busy} used_mib {4000 if pid else 0}\n"
        if pid:
            text += f"process {bus} pid {pid} mib 4000 busy {busy}\n"
    path = _control(c, vendor)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _prepare(c):
    lib = c.dir / "stub"
    lib.mkdir()
    for source, name in (("stub_amdsmi.c", "libamd_smi.so"), ("stub_dcmi.c", "libdcmi.so")):
        subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(lib / name), str(UNIT / source)], check=True)
    for vendor in CONTROL:
        _report(c, vendor)
        c.env[CONTROL[vendor]] = str(_control(c, vendor))
    c.env["LD_LIBRARY_PATH"] = ":".join(p for p in (str(lib), c.env.get("LD_LIBRARY_PATH", "")) if p)
    for name, text in KFD.items():
        (c.dir / "kfd" / c.nodes[0] / name).mkdir(parents=True)
        (c.dir / "kfd" / c.nodes[0] / name / "properties").write_text(text)


CLUSTER = dict(nodes=3, prefix="va", node_shapes={"va1": "amd-2gpu", "va2": "ascend-2npu", "va3": "ascend-vnpu"},
               cpus=8, select="select/flex", flexslurm_yaml=YAML, lending=True, node_addrs=True, prepare=_prepare,
               gres_per_node={"va3": "gpu:vir04:2,gpu:ascend910b:1,vslice:vir04:2,vslice:ascend910b:4,"
                                     "vborrow:vir04:2,vborrow:ascend910b:4"},
               spank_args=["isolation=required", "limits.amd=cu_mask", "limits.ascend=vnpu",
                           "kfd_topology={dir}/kfd/%n"])

LENDER = "#!/bin/bash\necho $$ >{out}/lender.$SLURM_JOB_ID\nsleep 100000\n"

BORROWER = """#!/bin/bash
out={out}/borrower.$SLURM_JOB_ID
if [ "${{SLURM_RESTART_COUNT:-0}}" -gt 0 ]; then echo resumed >>$out; exit 0; fi
trap 'echo checkpoint >>$out' USR1
exec 3<{dev}
echo started >>$out
for i in $(seq 100000); do sleep 0.2; done
"""

NODES = {"amd": (0, "dri/renderD128"), "ascend": (1, "davinci0")}  # c.nodes[i], the device a borrower opens


def _cancel(c, *jobs):
    c.run(["scancel", *map(str, jobs)], check=False)
    for j in jobs:
        wait_until(lambda j=j: c.job_state(j) in ("CANCELLED", "COMPLETED", "FAILED", None), 30, f"job {j} gone")


def _lend_and_reclaim(c, vendor):
    index, device = NODES[vendor]
    node = c.nodes[index]
    out = c.dir / "out"
    out.mkdir(exist_ok=True)
    _report(c, vendor)
    # Idle devices: the lender's other slices are lent.
    lender = c.sbatch("--gres=vslice:1", "-w", node, script=LENDER.format(out=out))
    wait_until(lambda: c.job_state(lender) == "RUNNING", 30, f"{vendor} lender running")
    pid_file = out / f"lender.{lender}"
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 20, f"{vendor} lender's pid")
    pid = int(pid_file.read_text())
    dev = c.dir / "dev" / node / device
    borrower = c.sbatch("--gres=vborrow:1", "-w", node, "--signal=B:USR1@60",
                        script=BORROWER.format(out=out, dev=dev))
    wait_until(lambda: c.job_state(borrower) == "RUNNING", 40, f"{vendor} borrower placed on the idle slice")
    status = c.dir / "state" / "flexslurm_lending.status"
    wait_until(lambda: f"lent JobId={lender} JobId={borrower}" in status.read_text(), 10,
               f"the status file shows the {vendor} loan")
    b_out = out / f"borrower.{borrower}"
    wait_until(lambda: b_out.exists() and "started" in b_out.read_text() and _holders(dev), 20,
               f"{vendor} borrower holds the device")
    # Use by a process outside any job (init) is not the lender's: the loan stands.
    _report(c, vendor, busy=80, pid=1)
    time.sleep(4)
    eq(c.job_state(borrower), "RUNNING", f"{vendor} borrower while only a process outside any job is busy")
    # The stub library now reports the lender's process busy on its device: the slice is taken back.
    _report(c, vendor, busy=80, pid=pid)
    wait_until(lambda: c.job_state(borrower) != "RUNNING" and not _holders(dev), BOUND + 10,
               f"{vendor} borrower reclaimed, off the device")
    wait_until(lambda: c.job_state(borrower) == "PENDING", 20, f"{vendor} borrower requeued")
    eq(c.job_state(lender), "RUNNING", f"{vendor} lender untouched")
    _cancel(c, borrower, lender)
    _report(c, vendor)
    return node


def test_amd_slice_is_lent_and_reclaimed_through_amd_smi(c):
    node = _lend_and_reclaim(c, "amd")
    log = (c.dir / "log" / f"slurmd.{node}.log").read_text(errors="replace")
    contains(log, "telemetry: AMD GPUs through libamd_smi.so (AMD SMI 24.7.0.0)", "the agent used AMD SMI")


def test_ascend_slice_is_lent_and_reclaimed_through_dcmi(c):
    node = _lend_and_reclaim(c, "ascend")
    log = (c.dir / "log" / f"slurmd.{node}.log").read_text(errors="replace")
    contains(log, "telemetry: Ascend NPUs through libdcmi.so (DCMI version 24.1.0)", "the agent used DCMI")


def _cu_ranges(cus, positions, slices=4):
    """HSA_CU_MASK's list for slices `positions` of a device with `cus` CUs: slice k owns CUs
    k*cus/slices .. (k+1)*cus/slices - 1, adjacent runs merged."""
    owned = sorted(cu for k in positions for cu in range(k * cus // slices, (k + 1) * cus // slices))
    runs = []
    for cu in owned:
        if runs and cu == runs[-1][1] + 1:
            runs[-1][1] = cu
        else:
            runs.append([cu, cu])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs)


def test_amd_jobs_get_disjoint_cu_masks_from_kfd(c):
    node = c.nodes[0]
    script = ("#!/bin/bash\nenv | grep -E '^(HSA_CU_MASK|ROCR_VISIBLE_DEVICES|SLURM_VSLICE_(DEVICES|POSITIONS))=' "
              "| sort\nsleep 4\n")
    jobs = [c.sbatch("-w", node, f"--gres=vslice:{n}", script=script) for n in (1, 2)]
    masks = {}
    for job in jobs:
        eq(c.wait_job(job), "COMPLETED", f"cu_mask job {job}")
        env = env_of(c.job_output(job))
        device = int(env.get("SLURM_VSLICE_DEVICES", "-1"))
        positions = [int(p) for p in env.get("SLURM_VSLICE_POSITIONS", "").split("+") if p]
        eq(len(positions), 1 if job == jobs[0] else 2, f"job {job}'s slice positions ({env})")
        eq(env.get("ROCR_VISIBLE_DEVICES"), "0", f"job {job} sees one GPU")
        eq(env.get("HSA_CU_MASK"), "0:" + _cu_ranges(CUS[device], positions), f"job {job}'s HSA_CU_MASK")
        masks[job] = (device, set(positions))
    (d1, p1), (d2, p2) = masks.values()
    eq(d1 != d2 or not (p1 & p2), True, f"two jobs on one node hold different slices ({masks})")


def test_ascend_vnpu_job_sees_its_vnpu_only(c):
    node = c.nodes[2]
    dev = c.dir / "dev" / node
    paths = [dev / "vdavinci100", dev / "vdavinci101", dev / "davinci1"]
    job = c.sbatch("-w", node, "--gres=vslice:vir04:1", script="#!/bin/bash\n"
                   "env | grep -E '^(ASCEND_|SLURM_VSLICE_DEVICES=)' | sort\n" + open_probe(paths) + "\n")
    eq(c.wait_job(job), "COMPLETED", "vNPU job")
    out = c.job_output(job)
    env = env_of(out)
    vnpu = env.get("SLURM_VSLICE_DEVICES")
    eq(vnpu in ("100", "101"), True, f"the job holds a vNPU ({out})")
    eq(env.get("ASCEND_VISIBLE_DEVICES"), vnpu, "ASCEND_VISIBLE_DEVICES names the vNPU by its id")
    eq(env.get("ASCEND_RUNTIME_OPTIONS"), "VIRTUAL", "ASCEND_RUNTIME_OPTIONS")
    eq(env.get("ASCEND_RT_VISIBLE_DEVICES"), "0", "ASCEND_RT_VISIBLE_DEVICES: the job's one NPU")
    other = "101" if vnpu == "100" else "100"
    got = opened(out)
    eq(got.get(str(dev / f"vdavinci{vnpu}")), "ok", f"the job opens its vNPU ({out})")
    eq(got.get(str(dev / f"vdavinci{other}")) not in (None, "ok"), True, f"the other vNPU stays shut ({out})")
    eq(got.get(str(dev / "davinci1")) not in (None, "ok"), True, f"the whole NPU stays shut ({out})")
    # A slice of a whole NPU under limits.ascend=vnpu: scheduled and fenced, not limited, said once.
    whole = c.sbatch("-w", node, "--gres=vslice:ascend910b:1", script="#!/bin/bash\ntrue\n")
    eq(c.wait_job(whole), "COMPLETED", "whole-NPU slice job")
    log = c.dir / "log" / f"slurmd.{node}.log"
    wait_until(lambda: "is a whole NPU, not a vNPU: its slices are scheduled and fenced, not limited"
               in log.read_text(errors="replace"), 20, "the prolog says the whole NPU is not limited")
