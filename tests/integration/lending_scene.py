# SPDX-License-Identifier: GPL-2.0-or-later
"""A lending cluster's pieces shared by the controller restart and failover
tests: flexslurm.yaml with short windows, telemetry files the tests write,
a lender and a borrower that checkpoints on USR1 and completes after its
requeue (as in test_lending)."""

import os
import re
import time
from pathlib import Path

from helpers import wait_until
from localcluster import DEFAULT_YAML

GRACE = 4          # lending.grace
HARD_STOP = 2      # lending.hard_stop_after: before slurmd's own KillWait (5 s) would
                   # SIGKILL a borrower that ignores SIGTERM, so the agent's stop shows
BOUND = GRACE + 10  # off the device within G + 10 s


def lending_section(grace=GRACE, extra=""):
    """flexslurm.yaml's lending: block with short windows; `extra` lines end it."""
    return f"""\
lending:
  enabled: true
  port: {{lending_port}}
  idle_window: 2s
  busy_samples: 1
  min_loan: 5s
  cooldown: 1s
  grace: {grace}s
  report_interval: 1s
  telemetry_timeout: 4s
  hard_stop_after: {HARD_STOP}s
  telemetry: file
  telemetry_dir: {{dir}}/telemetry/%n
{extra}"""


def lending_yaml(grace=GRACE, extra=""):
    """The default nvidia class with a fifth of the memory per slice (idle slices have memory to
    lend), then lending_section()."""
    return DEFAULT_YAML.replace("    slices: 4\n", "    slices: 4\n    memory_percent: 20\n") + \
        lending_section(grace, extra)


def prepare(c):
    for node in c.nodes:
        (c.dir / "telemetry" / node).mkdir(parents=True)
        (c.dir / "telemetry" / node / "nvidia0").write_text("busy 0\n")


LENDER = "#!/bin/bash\nsleep 100000\n"

BORROWER = """#!/bin/bash
out={out}/borrower.$SLURM_JOB_ID
if [ "${{SLURM_RESTART_COUNT:-0}}" -gt 0 ]; then echo "resumed after $SLURM_RESTART_COUNT requeue(s)" >>$out; exit 0; fi
trap 'echo "checkpoint $(date +%s)" >>$out' USR1
exec 3<{dev}
echo started >>$out
for i in $(seq 100000); do sleep 0.2; done
"""


def telemetry(c, node, text):
    path = c.dir / "telemetry" / node / "nvidia0"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def idle(c, node):
    telemetry(c, node, "busy 0\n")


def busy(c, lender, node):
    telemetry(c, node, f"busy 80\njob {lender} busy 80\n")


def holders(path):
    """Pids of processes that hold `path` open."""
    pids = []
    target = os.path.realpath(path)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        pids.append(int(pid))
                        break
                except OSError:
                    pass
        except OSError:
            pass
    return pids


def field(detail, name):
    m = re.search(rf"\b{name}=(\S*)", detail)
    return m.group(1) if m else None


def job_units(c, job, name):
    """The unit indices of GRES `name` a job holds, from scontrol show job -d."""
    m = re.search(rf"GRES=\S*?\b{name}(?::\w+)?:\d+\(IDX:([^)]*)\)", c.show_job(job))
    units = set()
    for part in filter(None, (m.group(1) if m else "").split(",")):
        lo, _, hi = part.partition("-")
        units |= set(range(int(lo), int(hi or lo) + 1))
    return units


def device(c, node):
    return c.dir / "dev" / node / "nvidia0"


def borrower(c, node):
    return c.sbatch("--gres=vborrow:1", "--signal=B:USR1@60",
                    script=BORROWER.format(out=c.dir / "out", dev=device(c, node)))


def borrower_out(c, job):
    p = c.dir / "out" / f"borrower.{job}"
    return p.read_text() if p.exists() else ""


def lender_and_borrower(c, node):
    """A lender on `node` (idle), then a borrower running on its slice, holding the device."""
    idle(c, node)
    lender = c.sbatch("--gres=vslice:1", "-w", node, script=LENDER)
    wait_until(lambda: c.job_state(lender) == "RUNNING", 20, "lender running")
    b = borrower(c, node)
    try:
        wait_until(lambda: c.job_state(b) == "RUNNING", 40, "borrower running")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{why_pending(c, b, node)}") from None
    wait_until(lambda: "started" in borrower_out(c, b) and holders(device(c, node)), 20,
               "borrower holds the device")
    return lender, b


def why_pending(c, job, node):
    """What a borrower that does not start waits for: its reason, the node's GRES, the lending state and
    the controller's last lending lines (a test that times out says why)."""
    lines = [f"JobId={job} " + " ".join(f"{k}={field(c.show_job(job), k)}" for k in ("JobState", "Reason")),
             " ".join(re.findall(r"\b(?:Gres|GresUsed)=\S+", c.run(["scontrol", "-d", "show", "node", node]).stdout))]
    status = next((str(p) for d in Path(c.plugin_dir).parents if d.name.startswith("stage")
                   for p in sorted(d.rglob("bin/flexslurm-lending"))), None)
    if status:
        r = c.run([status, "status"], check=False)
        lines += ["flexslurm-lending status:", r.stdout.strip(), r.stderr.strip()]
    lines += ["slurmctld.log, its last lending lines:",
              *[x for x in c.log("slurmctld").splitlines() if "lending" in x][-15:]]
    return "\n".join(lines)


def clean(c):
    """No jobs left from an earlier test (which may have failed half way)."""
    c.run(["scancel", "--user=root"], check=False)
    wait_until(lambda: not c.run(["squeue", "-h", "-o", "%i"], check=False).stdout.strip(), 40,
               "the queue empty")
    wait_until(lambda: not any(holders(device(c, n)) for n in c.nodes), 30, "nothing holds the devices")
    for node in c.nodes:
        idle(c, node)


def restarts(c, job):
    return int(field(c.show_job(job), "Restarts") or 0)


def wait_log(read, text, timeout, what, since=0):
    """Waits until `text` appears in read()[since:]; polls fast (a moment of a reclaim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in read()[since:]:
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} ({text!r})")
