# SPDX-License-Identifier: GPL-2.0-or-later
"""The tools every benchmark, the demo and this runner share (tools/localcluster.py):
a process killed with SIGTERM (a CI timeout, `kill`) while its cluster runs stops
that cluster's daemons before it exits, as on Ctrl-C."""

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import eq
from localcluster import Daemon

TOOLS = Path(__file__).resolve().parent.parent.parent / "tools"

# What a benchmark does: a cluster in a `with`, then work; it prints its daemons' PIDs.
CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from localcluster import LocalCluster
a = json.loads(sys.argv[2])
with LocalCluster(a.pop("workdir"), a.pop("plugin_dir"), **a) as c:
    print(json.dumps({n: p.pid for n, p in c.procs.items()}), flush=True)
    time.sleep(600)
"""


def _alive(pid):
    return Daemon(pid).poll() is None  # a zombie counts as gone


def test_sigterm_stops_the_cluster(env):
    args = dict(workdir=str(env.workdir / "tooling-sigterm"), plugin_dir=str(env.plugin_dir), nodes=1,
                prefix="tt", slurm_prefix=env.slurm_prefix, **env.cluster_args)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(TOOLS), json.dumps(args)], stdout=subprocess.PIPE,
                             text=True)
    pids = {}
    try:
        ready, _, _ = select.select([child.stdout], [], [], 120)
        line = child.stdout.readline() if ready else ""
        assert line, f"the cluster did not come up in 120 s (exit code {child.poll()})"
        pids = json.loads(line)
        assert "slurmctld" in pids and any(n.startswith("slurmd.") for n in pids), f"daemons started: {sorted(pids)}"
        eq({n: _alive(p) for n, p in pids.items()}, {n: True for n in pids}, "every daemon runs before SIGTERM")
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError("the process did not exit within 120 s of SIGTERM") from None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in pids.values()):
            time.sleep(0.2)
        eq({n: _alive(p) for n, p in pids.items()}, {n: False for n in pids},
           "daemons left running after the process that started them got SIGTERM")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pid in pids.values():
            Daemon(pid).kill()
