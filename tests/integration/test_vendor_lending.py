"""Idle reclaim on AMD and Ascend nodes with the vendor telemetry backends
(`telemetry: auto`): the real node agent in slurmd loads the stub AMD SMI and
DCMI libraries (tests/unit/stub_amdsmi.c, stub_dcmi.c, built here under the
production names libamd_smi.so and libdcmi.so and found through slurmd's
LD_LIBRARY_PATH), whose control files this module writes, not the file
backend. va1: two MI210 (amd-2gpu); va2: two Ascend 910B (ascend-2npu)."""

import os
import subprocess
import time
from pathlib import Path

from helpers import contains, eq, wait_until
from lending_scene import BOUND, lending_yaml
from lending_scene import holders as _holders

HERE = Path(__file__).resolve().parent
UNIT = HERE.parent / "unit"

# Each class reserves 20 % of its device's memory per slice: the rest is lent (as in test_lending).
YAML = (lending_yaml().replace("  telemetry: file\n  telemetry_dir: {dir}/telemetry/%n\n", "  telemetry: auto\n")
        .replace("      device_memory: 64GiB\n", "      device_memory: 64GiB\n      memory_percent: 20\n"))

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


CLUSTER = dict(nodes=2, prefix="va", node_shapes={"va1": "amd-2gpu", "va2": "ascend-2npu"}, cpus=8,
               select="select/flex", flexslurm_yaml=YAML, lending=True, node_addrs=True, prepare=_prepare)

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
