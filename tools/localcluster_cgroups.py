# SPDX-License-Identifier: GPL-2.0-or-later
"""The cgroups of a local cluster (tools/localcluster.py): Slurm's cgroup/v2
set-up in slurmd's mount namespace, and the job steps left behind, found and
killed through the nodes' cgroups (v1 and v2) when the cluster stops."""

import os
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class CgroupSteps:
    """LocalCluster's cgroup handling (a mixin: it reads the cluster's settings)."""

    def _check_cgroup2(self):
        """cgroup v2: each slurmd has moved itself into its scope (Slurm's
        cgroup/v2 did start), so the tests do run under v2."""
        for node, scope in self.stepd_scopes().items():
            name = f"slurmd.{node}"
            self._wait_for(lambda: str(self.procs[name].pid) in self._read(scope / "slurmd" / "cgroup.procs"), 10,
                           f"slurmd {node} in {scope}/slurmd (Slurm's cgroup/v2)")

    def _cgroup2_setup(self):
        """Commands, run in slurmd's mount namespace, that put the cgroup2
        hierarchy at /sys/fs/cgroup with the system.slice Slurm's
        IgnoreSystemd=yes expects; and the environment that goes with them."""
        if self.cgroup != "v2":
            return [], {}
        shim = self.dir / "bin" / "cgroup2_self_view.so"
        if not shim.exists():
            shim.parent.mkdir(exist_ok=True)
            subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(REPO / "tools" / "cgroup2_self_view.c"),
                            "-ldl"], check=True)
        if not (self._cgroup2_root() / "system.slice").exists():
            self._made_system_slice = True
        cmds = ["mount -t cgroup2 flexslurm-cgroup2 /sys/fs/cgroup", "mkdir -p /sys/fs/cgroup/system.slice"]
        return cmds, {"LD_PRELOAD": str(shim), "INVOCATION_ID": None}

    def _cgroup2_root(self):
        """Where the host sees the cgroup2 hierarchy (on a v1 host often
        /sys/fs/cgroup/unified); mounted under this cluster's dir if nowhere."""
        if self._cgroup2_mounted:
            return self._cgroup2_mounted
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return Path(fields[1].replace("\\040", " "))
        target = self.dir / "cgroup2"
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup2", "flexslurm-cgroup2", str(target)], check=True)
        self._cgroup2_mounted = target
        return target

    def stepd_scopes(self):
        """cgroup v2: each node's <node>_slurmstepd.scope, as the host sees it."""
        if self.cgroup != "v2":
            return {}
        root = self._cgroup2_root()
        return {node: root / "system.slice" / f"{node}_slurmstepd.scope" for node in self.nodes}

    def _job_cgroup_pids(self):
        pids = set()
        for scope in self.stepd_scopes().values():
            # slurmd itself lives in <scope>/slurmd: stopped by its PID already.
            for procs in scope.rglob("cgroup.procs"):
                if procs.parent == scope / "slurmd":
                    continue
                try:
                    pids.update(int(x) for x in procs.read_text().split())
                except (OSError, ValueError):
                    pass
        for node in self.nodes:
            for ctrl in ["freezer", "devices", "cpuset", "memory"]:
                root = Path("/sys/fs/cgroup") / ctrl / f"slurm_{node}"
                if not root.exists():
                    continue
                for procs in root.rglob("cgroup.procs"):
                    try:
                        pids.update(int(x) for x in procs.read_text().split())
                    except (OSError, ValueError):
                        pass
        return pids

    def _remove_job_cgroups(self):
        for scope in self.stepd_scopes().values():
            if not scope.exists():
                continue
            for sub in sorted((p for p in scope.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                try:
                    sub.rmdir()
                except OSError:
                    pass
            try:
                scope.rmdir()
            except OSError:
                pass
        if self._made_system_slice:
            try:  # left while another cluster's scopes are in it
                (self._cgroup2_root() / "system.slice").rmdir()
            except OSError:
                pass
        if self._cgroup2_mounted:
            subprocess.run(["umount", str(self._cgroup2_mounted)], check=False)
            self._cgroup2_mounted = None
        for node in self.nodes:
            for ctrl in ["freezer", "devices", "cpuset", "memory", "cpu", "cpuacct", "pids"]:
                root = Path("/sys/fs/cgroup") / ctrl / f"slurm_{node}"
                if not root.exists():
                    continue
                for sub in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
                try:
                    root.rmdir()
                except OSError:
                    pass

    def kill_job_steps(self):
        """Job steps outlive slurmd: their PIDs are in the nodes' cgroups."""
        for _ in range(3):
            pids = self._job_cgroup_pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        self._remove_job_cgroups()
