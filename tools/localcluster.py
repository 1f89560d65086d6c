#!/usr/bin/env python3
"""A real Slurm cluster on one machine, with the flexslurm plugins.

In a directory of its own it writes a munge key, slurm.conf, gres.conf,
cgroup.conf, flexslurm.yaml, one hwloc XML topology per node and fake
accelerator device nodes (mknod on real majors, so an allowed open succeeds
and a denied one fails), then starts munged, slurmctld and one slurmd per
node (multiple-slurmd), and waits until the nodes are idle. Every daemon is
started in the foreground as a child, so it is stopped by its PID, and the
job steps left behind are found through their cgroups.

Used by the demo (`tools/demo.sh`) and by the integration tests:

    with LocalCluster(workdir, plugin_dir, nodes=3, shape="nvidia-2gpu") as c:
        job = c.sbatch("--gres=vslice:2", script)

Command line: localcluster.py up|down --dir DIR [--plugin-dir DIR] ...
"""

import argparse
import os
import random
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOPOLOGIES = REPO / "tests" / "topologies"
SYSTEM_PLUGIN_DIR = "/usr/lib/x86_64-linux-gnu/slurm-wlm"

# Real character devices that every process may open: a job can open the
# ones its cgroup allows, and gets EPERM on the others.
FAKE_DEVICE_NUMBERS = [(1, 7), (1, 8), (1, 9), (1, 5),  # full, random, urandom, zero
                       # kmsg, autofs, fuse, loop-control: for 8-device shapes only. Never null (1:3):
                       # a job denied it could not redirect to /dev/null.
                       (1, 11), (10, 235), (10, 229), (10, 237)]

# name -> (topology file, vendor, GRES type, device node names, slices)
SHAPES = {
    "nvidia-1gpu": ("cluster-nvidia-1gpu.xml", "nvidia", "t4", ["nvidia0"]),
    "nvidia-2gpu": ("cluster-nvidia-2gpu.xml", "nvidia", "t4", ["nvidia0", "nvidia1"]),
    "nvidia-4gpu": ("cluster-nvidia-4gpu.xml", "nvidia", "t4", ["nvidia0", "nvidia1", "nvidia2", "nvidia3"]),
    "nvidia-8gpu": ("cluster-nvidia-8gpu.xml", "nvidia", "t4", [f"nvidia{i}" for i in range(8)]),
    "amd-2gpu": ("cluster-amd-2gpu.xml", "amd", "mi210", ["dri/renderD128", "dri/renderD129"]),
    "ascend-2npu": ("cluster-ascend-2npu.xml", "ascend", "ascend910b", ["davinci0", "davinci1"]),
}

DEFAULT_YAML = """\
version: 1
inventory:
  topology_xml: {dir}/topology/%n.xml
  device_dir: {dir}/dev/%n
  layout_file: {dir}/state/layout.%n
slicing:
  default:
    slices: 4
  classes:
    - vendor: amd
      device_memory: 64GiB
    - vendor: ascend
      device_memory: 64GiB
"""


def free_ports(count):
    """Ports free now, below the kernel's ephemeral range: a port from that range may be taken, before the
    daemon binds it, as the source port of an outgoing connection (a node agent binds its node's address
    with port 0 and would get the very port just released here)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    socks, ports = [], []
    rng = random.Random()
    try:
        while len(ports) < count:
            port = rng.randrange(10000, max(low, 10001))
            if port in ports:
                continue
            s = socket.socket()
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


class ClusterError(RuntimeError):
    pass


class Daemon:
    """A daemon this cluster started that is not its child (slurmd without -D), by PID, with the
    part of Popen's interface the cluster uses. Once it exits it is init's: a zombie counts as gone."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                state = "gone"
            if state in ("Z", "X", "gone"):
                self.returncode = 0  # unknown: not our child
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.1)
        return self.returncode


class LocalCluster:
    """One slurmctld, `nodes` slurmd, one munged, all children of this process."""

    def __init__(self, workdir, plugin_dir, nodes=3, shape="nvidia-2gpu", prefix="n",
                 slices=None, flexslurm_yaml=None, gres_per_node=None, extra_conf="",
                 node_shapes=None, wait_idle=True, prepare=None, cpus=2, select="select/cons_tres",
                 partitions=None, spank_args=None, task_plugin="task/cgroup", slurm_prefix=None,
                 lending=False, node_addrs=False, gres_conf=None, configless=False, slurmd_binds=None,
                 proctrack="proctrack/cgroup", daemonize=False, cgroup="v1", node_prefix="",
                 backup_ctld=False, slurmctld_timeout=None):
        self.dir = Path(workdir).resolve()
        self.plugin_dir = str(Path(plugin_dir).resolve())
        # node_prefix goes before every node name (and node_shapes' keys): the
        # same module run twice at once (cgroup v1 and v2) gets other names.
        self.nodes = [f"{node_prefix}{prefix}{i}" for i in range(1, nodes + 1)]
        self.node_shapes = ({node_prefix + n: s for n, s in node_shapes.items()} if node_shapes
                            else {n: shape for n in self.nodes})
        # "v1": Slurm's cgroup/v1 on the host's v1 hierarchies. "v2": Slurm's
        # cgroup/v2 (IgnoreSystemd=yes): each slurmd and its steps run in a
        # mount namespace of their own with the (one, global) cgroup2
        # hierarchy mounted at /sys/fs/cgroup; on a v1 host a preloaded shim
        # (tools/cgroup2_self_view.c) shows them only the unified line of
        # /proc/self/cgroup, as a v2 host would. Steps live in
        # <cgroup2>/system.slice/<node>_slurmstepd.scope/job_J/step_S/...
        if cgroup not in ("v1", "v2"):
            raise ValueError(f"cgroup must be v1 or v2, not {cgroup!r}")
        self.cgroup = cgroup
        self._cgroup2_mounted = None  # a cgroup2 mount this cluster made on the host, for cleanup
        self._made_system_slice = False  # system.slice made for Slurm (none on a v1 host): removed at stop
        self.slices = slices or 4
        self.flexslurm_yaml = flexslurm_yaml
        self.gres_per_node = gres_per_node or {}
        self.extra_conf = extra_conf
        self.wait_idle = wait_idle
        self.prepare = prepare  # called with the cluster after its files are written
        self.cpus = cpus  # per node; more than the machine has is fine (config_overrides)
        self.select = select
        self.partitions = partitions or ["main"]  # each over all nodes; the first is the default
        self.spank_args = spank_args  # None: no plugstack.conf; else spank_flexslurm.so's arguments
        self.task_plugin = task_plugin
        self.proctrack = proctrack  # proctrack/linuxproc where no cgroup v1 (tests/gpu/real_gpu.py)
        # Idle reclaim: gres/vborrow beside vslice, job_submit/flex, and a
        # short credential life so that a requeued borrower may start again
        # after 11 s instead of 121 s.
        self.lending = lending
        # Each node its own loopback address (127.0.0.2, ...), so that the
        # controller can tell nodes apart by the address a report comes from.
        self.node_addrs = node_addrs
        # gres.conf text instead of the generated one ({dir}: the cluster dir)
        self.gres_conf = gres_conf
        # Configless: SlurmctldParameters=enable_configless, and each slurmd
        # started with --conf-server instead of -f, fetching its files into
        # its own conf-cache (SlurmdSpoolDir/conf-cache, under this dir).
        self.configless = configless
        # [(source, target)]: files bind-mounted over host files for slurmd
        # and its job steps only, in a mount namespace of their own (e.g. an
        # /etc/ld.so.preload); {dir} in source is the cluster dir. A target
        # that does not exist is made empty for the mount and removed at stop.
        self.slurmd_binds = slurmd_binds or []
        # slurmd without -D, as init scripts start it: it forks into a daemon
        # and the one started exits; the daemon is tracked by its PidFile.
        # True for every node, or a collection of node names.
        self.daemonize = set(self.nodes) if daemonize is True else set(daemonize or ())
        # A backup controller (SlurmctldHost x2): a second slurmctld,
        # "slurmctld-backup", on this machine under another host name and
        # loopback address (its own UTS and mount namespace, /etc/hosts, pid
        # file and log directory; state shared, as backups need). Both bind
        # only their own address (CommunicationParameters=NoCtldInAddrAny).
        self.backup_ctld = backup_ctld
        self.backup_host = "flexctlb"
        self.backup_addr = "127.0.0.254"
        self.slurmctld_timeout = slurmctld_timeout or (6 if backup_ctld else None)
        self._made_targets = []
        self.procs = {}  # name -> Popen
        self.env = dict(os.environ, SLURM_CONF=str(self.dir / "etc" / "slurm.conf"))
        # A source-built Slurm (scripts/build-slurm.sh) instead of Debian's.
        self.system_plugin_dir = SYSTEM_PLUGIN_DIR
        if slurm_prefix:
            p = Path(slurm_prefix).resolve()
            self.system_plugin_dir = str(p / "lib" / "slurm")
            self.env["PATH"] = f"{p}/bin:{p}/sbin:" + self.env.get("PATH", "")
            self.env["LD_LIBRARY_PATH"] = f"{p}/lib:{p}/lib/slurm"
        for var in list(self.env):
            if var.startswith("SLURM_") and var != "SLURM_CONF":
                del self.env[var]

    # ---------------------------------------------------------------- files
    def write_files(self):
        if self.dir.exists():
            shutil.rmtree(self.dir)
        for sub in ["etc", "log", "state", "spool", "munge", "topology", "dev", "out", "run",
                    "backup/log", "backup/run"]:
            (self.dir / sub).mkdir(parents=True)
        os.chmod(self.dir / "munge", 0o700)
        key = self.dir / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)

        ctld_port, *node_ports = free_ports(1 + len(self.nodes))
        self.ctld_port = ctld_port
        node_lines, gres_lines = [], ["AutoDetect=off"]
        self.lending_port = free_ports(1)[0] if self.lending else None
        for k, (node, port) in enumerate(zip(self.nodes, node_ports)):
            (self.dir / "spool" / node).mkdir()
            topo, _vendor, gtype, devnodes = SHAPES[self.node_shapes[node]]
            shutil.copy(TOPOLOGIES / topo, self.dir / "topology" / f"{node}.xml")
            for dev, (major, minor) in zip(devnodes, FAKE_DEVICE_NUMBERS):
                path = self.dir / "dev" / node / dev
                path.parent.mkdir(parents=True, exist_ok=True)
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            ndev = len(devnodes)
            default_gres = f"gpu:{gtype}:{ndev},vslice:{gtype}:{ndev * self.slices}"
            if self.lending:
                default_gres += f",vborrow:{gtype}:{ndev * self.slices}"
            gres = self.gres_per_node.get(node, default_gres)
            addr = f"127.0.0.{k + 2}" if self.node_addrs else "127.0.0.1"
            node_lines.append(f"NodeName={node} NodeHostname=localhost NodeAddr={addr} Port={port} "
                              f"CPUs={self.cpus} RealMemory=1000 Gres={gres} State=UNKNOWN")
            stem = re.sub(r"\d+$", "", devnodes[0])
            numbers = [re.search(r"(\d+)$", n).group(1) for n in devnodes]
            files = str(self.dir / "dev" / node / stem) + (
                numbers[0] if ndev == 1 else f"[{numbers[0]}-{numbers[-1]}]")
            gres_lines.append(f"NodeName={node} Name=gpu Type={gtype} File={files}")
        d = self.dir
        ha = ""
        if self.backup_ctld:
            ha = (f"SlurmctldHost={self.backup_host}({self.backup_addr})\n"
                  "CommunicationParameters=NoCtldInAddrAny\n")
            hosts = Path("/etc/hosts").read_text()
            (d / "backup" / "hosts").write_text(f"{self.backup_addr} {self.backup_host}\n{hosts}")
        if self.slurmctld_timeout:
            ha += f"SlurmctldTimeout={self.slurmctld_timeout}\n"
        # Slurm reads "localhost" as this host's name, which the backup's namespace changes.
        primary = socket.gethostname().split(".")[0] if self.backup_ctld else "localhost"
        conf = f"""\
ClusterName=flexslurm
SlurmctldHost={primary}(127.0.0.1)
{ha}SlurmctldPort={ctld_port}
AuthType=auth/munge
AuthInfo=socket={d}/munge/munge.socket{",cred_expire=10" if self.lending else ""}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/state/slurmd.%n.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
PluginDir={self.plugin_dir}:{self.system_plugin_dir}
GresTypes=gpu,vslice{",vborrow" if self.lending else ""}
{"JobSubmitPlugins=flex" + chr(10) if self.lending else ""}SelectType={self.select}
SelectTypeParameters=CR_Core
TaskPlugin={self.task_plugin}
{self._plugstack_line()}ProctrackType={self.proctrack}
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1,bf_resolution=60
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
MinJobAge=600
InactiveLimit=0
KillWait=5
{"SlurmctldParameters=enable_configless" + chr(10) if self.configless else ""}{self.extra_conf.format(dir=d)}
{chr(10).join(node_lines)}
{chr(10).join(f"PartitionName={p} Nodes=ALL Default={'YES' if i == 0 else 'NO'} MaxTime=INFINITE State=UP"
             for i, p in enumerate(self.partitions))}
"""
        (d / "etc" / "slurm.conf").write_text(conf)
        gres_conf = self.gres_conf.format(dir=d) if self.gres_conf is not None else "\n".join(gres_lines) + "\n"
        (d / "etc" / "gres.conf").write_text(gres_conf)
        if self.cgroup == "v2":
            # 22.05: devices through eBPF programs (no devices controller in
            # v2, AllowedDevicesFile is v1 only); cpuset/memory not needed.
            cgroup_conf = ("CgroupPlugin=cgroup/v2\nCgroupMountpoint=/sys/fs/cgroup\nIgnoreSystemd=yes\n"
                           "ConstrainDevices=yes\nConstrainCores=no\nConstrainRAMSpace=no\nConstrainSwapSpace=no\n")
        else:
            cgroup_conf = ("CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\n"
                           "ConstrainDevices=yes\nConstrainCores=no\nConstrainRAMSpace=no\n")
        (d / "etc" / "cgroup.conf").write_text(cgroup_conf)
        yaml = self.flexslurm_yaml if self.flexslurm_yaml is not None else DEFAULT_YAML
        (d / "etc" / "flexslurm.yaml").write_text(yaml.format(dir=d, lending_port=self.lending_port))

    def _plugstack_line(self):
        if self.spank_args is None:
            return ""
        # Each node its own job_dir, in this cluster (the default /run/flexslurm/jobs is every
        # cluster's on this machine, and job ids repeat across clusters).
        job_dir = [] if any(a.startswith("job_dir=") for a in self.spank_args) else [f"job_dir={self.dir}/jobs/%n"]
        (self.dir / "jobs").mkdir(exist_ok=True)
        args = " ".join([f"layout={self.dir}/state/layout.%n", *job_dir,
                         *(a.format(dir=self.dir) for a in self.spank_args)])
        (self.dir / "etc" / "plugstack.conf").write_text(
            f"required {self.plugin_dir}/spank_flexslurm.so {args}\n")
        return f"PlugStackConfig={self.dir}/etc/plugstack.conf\n"

    # -------------------------------------------------------------- daemons
    def _spawn(self, name, argv):
        log = open(self.dir / "log" / f"{name}.stdout", "wb")
        # A session of its own: a Ctrl-C at the terminal reaches us, not them.
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.env,
                                            start_new_session=True)
        log.close()
        (self.dir / "state" / f"{name}.pid").write_text(f"{self.procs[name].pid}\n")

    def start(self):
        self.write_files()
        if self.prepare:
            self.prepare(self)
        d = self.dir
        self._spawn("munged", ["munged", "-F", "--force", f"--socket={d}/munge/munge.socket",
                               f"--key-file={d}/munge/munge.key", f"--pid-file={d}/munge/munged.pid",
                               f"--log-file={d}/log/munged.log", f"--seed-file={d}/munge/seed"])
        self._wait_for(lambda: self._alive("munged") and (d / "munge" / "munge.socket").exists(), 10,
                       "munged socket")
        self.start_slurmctld()
        if self.backup_ctld:
            self.start_backup_slurmctld()
        for node in self.nodes:
            self.start_slurmd(node)
        if self.wait_idle:
            self.wait_nodes_idle()
        self._check_cgroup2()
        return self

    def _check_cgroup2(self):
        """cgroup v2: each slurmd has moved itself into its scope (Slurm's
        cgroup/v2 did start), so the tests do run under v2."""
        for node, scope in self.stepd_scopes().items():
            name = f"slurmd.{node}"
            self._wait_for(lambda: str(self.procs[name].pid) in self._read(scope / "slurmd" / "cgroup.procs"), 10,
                           f"slurmd {node} in {scope}/slurmd (Slurm's cgroup/v2)")

    @staticmethod
    def _read(path):
        try:
            return path.read_text()
        except OSError:
            return ""

    def start_slurmctld(self, clear_state=True):
        argv = ["slurmctld", "-D", "-f", str(self.dir / "etc" / "slurm.conf")]
        if clear_state:
            argv.append("-c")
        self._spawn("slurmctld", argv)
        self._wait_for(lambda: self._alive("slurmctld") and
                       "UP" in self.run(["scontrol", "ping"], check=False).stdout,
                       20, "slurmctld to answer")

    def start_backup_slurmctld(self):
        """The backup controller: slurmctld as host flexctlb, in standby until the primary stops answering.
        Its log is log("slurmctld", backup=True)."""
        d = self.dir
        script = " && ".join([
            f"hostname {self.backup_host}",
            f"mount --bind {d}/backup/hosts /etc/hosts",
            f"mount --bind {d}/backup/run {d}/run",
            f"mount --bind {d}/backup/log {d}/log",
            f"exec slurmctld -D -f {d}/etc/slurm.conf"])
        self._spawn("slurmctld-backup", ["unshare", "--uts", "--mount", "--propagation", "private",
                                         "sh", "-c", script])
        self._wait_for(lambda: self._alive("slurmctld-backup") and
                       "slurmctld running in background mode" in self.log("slurmctld", backup=True),
                       20, "the backup slurmctld in standby")

    def _alive(self, name):
        p = self.procs[name]
        if p.poll() is not None:
            tail = self.log(name.split(".")[0] if name == "slurmctld" else name)[-2000:]
            raise ClusterError(f"{name} exited with {p.returncode}:\n{tail}")
        return True

    def conf_cache(self, node):
        """Where a configless slurmd keeps the files slurmctld sent it."""
        return self.dir / "spool" / node / "conf-cache"

    def _start_daemonized_slurmd(self, node):
        name = f"slurmd.{node}"
        pidfile = self.dir / "state" / f"{name}.pid"
        pidfile.unlink(missing_ok=True)
        with open(self.dir / "log" / f"{name}.stdout", "wb") as log:
            r = subprocess.run(["slurmd", "-N", node, "-f", str(self.dir / "etc" / "slurm.conf")], stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                               start_new_session=True, timeout=30)
        if r.returncode != 0:
            raise ClusterError(f"slurmd -N {node} (daemonizing) exited with {r.returncode}: "
                               f"{self.log(name)[-2000:]}")

        def daemon_pid():
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return None
            return pid if Daemon(pid).poll() is None else None
        self._wait_for(daemon_pid, 20, f"{pidfile} naming a live slurmd")
        self.procs[name] = Daemon(daemon_pid())

    def follow_daemonized_slurmd(self, node, timeout=20):
        """A daemonized slurmd that re-executed itself (reconfigure on >= 23.11: a new process, a new PID
        in its PidFile): track the new one. Returns its PID."""
        name = f"slurmd.{node}"
        pidfile = self.dir / "state" / f"{name}.pid"

        def live():
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return None
            return pid if Daemon(pid).poll() is None else None
        self._wait_for(live, timeout, f"{pidfile} naming a live slurmd")
        pid = live()
        if pid != self.procs[name].pid:
            self.procs[name] = Daemon(pid)
        return pid

    def slurmd_prints(self, node, option, timeout=30):
        """slurmd -G or -C for `node` (prints and exits); the CompletedProcess."""
        return self.run(["slurmd", option, "-N", node, "-f", str(self.dir / "etc" / "slurm.conf")], check=False,
                        timeout=timeout)

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

    def start_slurmd(self, node):
        cg_cmds, cg_env = self._cgroup2_setup()
        env = self.env
        self.env = {k: v for k, v in env.items() if k not in cg_env}
        self.env.update({k: v for k, v in cg_env.items() if v is not None})
        try:
            self._start_slurmd(node, cg_cmds)
        finally:
            self.env = env

    def _start_slurmd(self, node, setup):
        if node in self.daemonize:
            if self.slurmd_binds or self.configless or setup:
                raise ClusterError("daemonize: not with slurmd_binds, configless or cgroup v2")
            self._start_daemonized_slurmd(node)
            return
        if not self.configless:
            argv = ["slurmd", "-D", "-N", node, "-f", str(self.dir / "etc" / "slurm.conf")]
            if self.slurmd_binds or setup:
                mounts = list(setup)
                for source, target in self.slurmd_binds:
                    if not Path(target).exists():
                        Path(target).touch()
                        self._made_targets.append(Path(target))
                    mounts.append(f"mount --bind {shlex.quote(source.format(dir=self.dir))} {shlex.quote(target)}")
                argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        " && ".join(mounts + ["exec " + " ".join(shlex.quote(a) for a in argv)])]
            self._spawn(f"slurmd.{node}", argv)
            return
        # Before it has fetched slurm.conf, slurmd knows no AuthInfo and asks
        # munged at the default socket: it runs in a mount namespace of its
        # own whose /run (a tmpfs) has /run/munge/munge.socket.2 leading to
        # this cluster's munged, and where its /run/slurm/conf link to the
        # conf-cache stays. Its job steps inherit that namespace.
        d = self.dir
        script = "".join(f"{cmd} && " for cmd in setup) + (
                  f"mount -t tmpfs flexslurm-run /run && mkdir /run/munge && "
                  f"ln -s {d}/munge/munge.socket /run/munge/munge.socket.2 && "
                  f"exec slurmd -D -N {node} --conf-server localhost:{self.ctld_port}")
        env = self.env
        self.env = {k: v for k, v in env.items() if k != "SLURM_CONF"}  # no -f, no SLURM_CONF
        try:
            self._spawn(f"slurmd.{node}", ["unshare", "--mount", "--propagation", "private", "sh", "-c", script])
        finally:
            self.env = env

    def stop_daemon(self, name, sig=signal.SIGTERM, timeout=15):
        """True if it exited within `timeout` of the signal (else it is SIGKILLed)."""
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return True
        p.send_signal(sig)
        try:
            p.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            return False

    def daemon_exit_code(self, name, timeout=10):
        p = self.procs[name]
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

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

    def stop(self):
        """Stops everything this cluster started, by PID, even if half started. A second
        Ctrl-C or SIGTERM (run.py --jobs sends one to each child on the first) waits until
        this is done: interrupted, it would leave daemons running."""
        if threading.current_thread() is not threading.main_thread():
            return self._stop()
        held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._stop()
        finally:
            for sig, handler in held.items():
                signal.signal(sig, handler)

    def _stop(self):
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self.run(["scancel", "--full", "-u", "root"], check=False, timeout=10)
        for name in [n for n in self.procs if n.startswith("slurmd.")]:
            self.stop_daemon(name)
            node = name[len("slurmd."):]
            if node in self.daemonize:  # re-executed since it was started: stop that one too
                try:
                    self.procs[name] = Daemon(int((self.dir / "state" / f"{name}.pid").read_text().split()[0]))
                    self.stop_daemon(name)
                except (OSError, ValueError, IndexError):
                    self.procs.pop(name, None)
        self.stop_daemon("slurmctld")
        self.stop_daemon("slurmctld-backup")
        self.kill_job_steps()
        self.stop_daemon("munged")
        for target in self._made_targets:
            if target.exists() and target.stat().st_size == 0:
                target.unlink()
        self._made_targets = []

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False

    # -------------------------------------------------------------- helpers
    @staticmethod
    def _wait_for(pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.2)
        raise ClusterError(f"timed out after {timeout}s waiting for {what}")

    def run(self, argv, check=True, timeout=30, input=None, env=None):
        r = subprocess.run(argv, env=dict(self.env, **(env or {})), capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def node_states(self):
        out = self.run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False).stdout
        return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)

    def wait_nodes_idle(self, timeout=30, nodes=None):
        nodes = nodes or self.nodes
        self._wait_for(lambda: all(self.node_states().get(n) == "idle" for n in nodes), timeout,
                       f"nodes {','.join(nodes)} to be idle (now {self.node_states()}); see {self.dir}/log")

    def sbatch(self, *args, script, check=True, env=None):
        """Submits a batch script; returns the job id, or the failed CompletedProcess. `env`: variables the
        job gets from sbatch's environment (as a user's shell would set them; `--export=ALL,VAR=value` makes
        Slurm >= 23.x load the user's login environment instead, which fails for nologin users)."""
        path = self.dir / "out" / f"script-{time.monotonic_ns()}.sh"
        path.write_text(script)
        r = self.run(["sbatch", "--parsable", f"--output={self.dir}/out/%j.out", *args, str(path)], check=check,
                     env=env)
        if r.returncode != 0:
            return r
        return int(r.stdout.strip().split(";")[0])

    def job_state(self, job):
        r = self.run(["scontrol", "-o", "show", "job", str(job)], check=False)
        m = re.search(r"JobState=(\S+)", r.stdout)
        return m.group(1) if m else None

    def wait_job(self, job, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"),
                 timeout=60):
        self._wait_for(lambda: self.job_state(job) in states, timeout, f"job {job} to reach {states}")
        return self.job_state(job)

    def job_output(self, job):
        return (self.dir / "out" / f"{job}.out").read_text()

    def show_job(self, job):
        return self.run(["scontrol", "show", "job", "-d", str(job)]).stdout

    def show_node(self, node):
        return self.run(["scontrol", "show", "node", node]).stdout

    def log(self, name, backup=False):
        p = self.dir / ("backup/log" if backup else "log") / f"{name}.log"
        return p.read_text(errors="replace") if p.exists() else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("--dir", required=True, help="cluster directory (wiped on up)")
    ap.add_argument("--plugin-dir", help="directory holding gres_vslice.so")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="nvidia-2gpu")
    ap.add_argument("--cgroup", choices=["v1", "v2"], default="v1",
                    help="Slurm's cgroup plugin (v2: cgroup2 mounted in slurmd's mount namespace)")
    ap.add_argument("--configless", action="store_true",
                    help="slurmd --conf-server (flexslurm.yaml copied into each conf-cache)")
    args = ap.parse_args()
    if args.action == "up":
        c = LocalCluster(args.dir, args.plugin_dir, nodes=args.nodes, shape=args.shape, configless=args.configless,
                         cgroup=args.cgroup,
                         prepare=install_flexslurm_yaml if args.configless else None)
        try:
            c.start()
        except BaseException:
            c.stop()
            raise
        # Leave the daemons running for the caller; `down` stops them by PID.
        print(f"export SLURM_CONF={c.dir}/etc/slurm.conf")
        for p in c.procs.values():
            p.returncode = 0  # detach: do not reap on exit
        os._exit(0)
    else:
        stop_by_pidfiles(Path(args.dir))


def ensure_user(name):
    """A nologin system user for jobs of a second user; two test modules running at once (run.py --jobs) may
    both make it."""
    if subprocess.run(["getent", "passwd", name], capture_output=True).returncode == 0:
        return
    made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                          capture_output=True, text=True)
    if made.returncode != 0 and subprocess.run(["getent", "passwd", name], capture_output=True).returncode != 0:
        raise ClusterError(f"useradd {name}: {made.stderr.strip()}")


def install_flexslurm_yaml(c):
    """Configless: Slurm does not send flexslurm.yaml; put the cluster's copy
    into each node's conf-cache, as an admin would on every node."""
    for node in c.nodes:
        c.conf_cache(node).mkdir(parents=True, exist_ok=True)
        shutil.copy(c.dir / "etc" / "flexslurm.yaml", c.conf_cache(node) / "flexslurm.yaml")


def stop_by_pidfiles(d):
    """`down`: the daemons were started by an earlier `up`; their PIDs are on disk."""
    state = d / "state"
    conf = d / "etc" / "cgroup.conf"
    v2 = conf.exists() and "CgroupPlugin=cgroup/v2" in conf.read_text()
    c = LocalCluster(d, "/nonexistent", nodes=0, cgroup="v2" if v2 else "v1")
    c.nodes = sorted(p.name[len("slurmd."):-len(".pid")] for p in state.glob("slurmd.*.pid") if p.name.count(".") == 2)
    if (state / "slurmctld.pid").exists():
        subprocess.run(["scancel", "--full", "-u", "root"], env=c.env, capture_output=True, timeout=10)
    order = [p for p in state.glob("slurmd.*.pid")] + [state / "slurmctld.pid", state / "slurmctld-backup.pid"]
    for pidfile in order:
        _kill_pidfile(pidfile)
    c.kill_job_steps()
    _kill_pidfile(state / "munged.pid")


def _kill_pidfile(pidfile):
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    main()
