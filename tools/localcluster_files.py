# SPDX-License-Identifier: GPL-2.0-or-later
"""The files of a local cluster (tools/localcluster.py): the shapes of its
nodes, slurm.conf, gres.conf, cgroup.conf, flexslurm.yaml, plugstack.conf,
topologies and fake device nodes, written by LocalCluster.write_files()."""

import os
import random
import re
import shutil
import socket
import stat
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOPOLOGIES = REPO / "tests" / "topologies"

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
    # A mixed node: a GRES type per device (one gres.conf gpu line per type).
    "mixed-nvidia-ascend": ("cluster-mixed-nvidia-ascend.xml", "mixed", ["t4", "ascend910b"],
                            ["nvidia0", "davinci0"]),
    # Two vNPUs cut from NPU 0 (npu-smi numbers chip 0's from 100) and NPU 1 whole; davinci0 itself
    # has no file (a missing node cannot be opened either). Give the vNPUs one slice each (gres_per_node).
    "ascend-vnpu": ("cluster-ascend-2npu.xml", "ascend", ["vir04", "vir04", "ascend910b"],
                    ["vdavinci100", "vdavinci101", "davinci1"]),
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


PORT_RESERVATIONS = Path(os.environ.get("FLEXSLURM_TEST_PORTS", "/tmp/flexslurm-test-ports"))


def _reserve(port):
    """True if `port` is now this process's: a file named after it, made exclusively, holds our pid. A file
    whose pid is gone is a reservation of a process that ended: taken over."""
    path = PORT_RESERVATIONS / str(port)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                pid = int(path.read_text() or "0")
            except (OSError, ValueError):
                return False  # being written by its maker, or unreadable: not ours
            if pid == os.getpid() or (pid and Path(f"/proc/{pid}").exists()):
                return False
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def release_ports(ports):
    """Hands back ports free_ports() reserved for this process (a stopped cluster's)."""
    for port in ports:
        path = PORT_RESERVATIONS / str(port)
        try:
            if int(path.read_text() or "0") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def free_ports(count):
    """Ports free now, below the kernel's ephemeral range: a port from that range may be taken, before the
    daemon binds it, as the source port of an outgoing connection (a node agent binds its node's address
    with port 0 and would get the very port just released here). Each is reserved (PORT_RESERVATIONS) until
    release_ports() or the end of this process: a port is picked some seconds before its daemon binds it,
    and neither a later pick of this cluster (its lending or slurmdbd port) nor a cluster that another
    process starts meanwhile (run.py --jobs) may pick it again: a controller whose lending port a slurmd
    holds cannot listen for node reports, and nothing is ever lent on that cluster."""
    PORT_RESERVATIONS.mkdir(mode=0o755, exist_ok=True)
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
            if not _reserve(port):
                s.close()
                continue
            socks.append(s)
            ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


class ClusterFiles:
    """LocalCluster's file writer (a mixin: it reads the cluster's settings)."""

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

        self._ports = free_ports(1 + len(self.nodes) + (1 if self.lending else 0))
        ctld_port, *node_ports = self._ports[:1 + len(self.nodes)]
        self.ctld_port = ctld_port
        node_lines, gres_lines = [], ["AutoDetect=off"]
        self.lending_port = self._ports[-1] if self.lending else None
        for k, (node, port) in enumerate(zip(self.nodes, node_ports)):
            (self.dir / "spool" / node).mkdir()
            topo, _vendor, gtype, devnodes = SHAPES[self.node_shapes[node]]
            shutil.copy(TOPOLOGIES / topo, self.dir / "topology" / f"{node}.xml")
            for dev, (major, minor) in zip(devnodes, FAKE_DEVICE_NUMBERS):
                path = self.dir / "dev" / node / dev
                path.parent.mkdir(parents=True, exist_ok=True)
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            # (GRES type, its device nodes) in device order: one type, or one per device (mixed node).
            types = gtype if isinstance(gtype, list) else [gtype] * len(devnodes)
            groups = {}
            for t, dev in zip(types, devnodes):
                groups.setdefault(t, []).append(dev)
            default_gres = ",".join(f"gpu:{t}:{len(devs)}" for t, devs in groups.items())
            default_gres += "".join(f",vslice:{t}:{len(devs) * self.slices}" for t, devs in groups.items())
            if self.lending:
                default_gres += "".join(f",vborrow:{t}:{len(devs) * self.slices}" for t, devs in groups.items())
            gres = self.gres_per_node.get(node, default_gres)
            addr = f"127.0.0.{k + 2}" if self.node_addrs else "127.0.0.1"
            node_lines.append(f"NodeName={node} NodeHostname=localhost NodeAddr={addr} Port={port} "
                              f"CPUs={self.cpus} RealMemory=1000 Gres={gres} State=UNKNOWN")
            for t, devs in groups.items():
                stem = re.sub(r"\d+$", "", devs[0])
                numbers = [re.search(r"(\d+)$", n).group(1) for n in devs]
                files = str(self.dir / "dev" / node / stem) + (
                    numbers[0] if len(devs) == 1 else f"[{numbers[0]}-{numbers[-1]}]")
                gres_lines.append(f"NodeName={node} Name=gpu Type={t} File={files}")
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
{self.accounting_conf()}MailProg=/bin/true
MinJobAge=600
InactiveLimit=0
KillWait=5
{"SlurmctldParameters=enable_configless" + chr(10) if self.configless else ""}{self.extra_conf.format(dir=d)}
{chr(10).join(node_lines)}
{chr(10).join(f"PartitionName={p} Nodes=ALL Default={'YES' if i == 0 else 'NO'} MaxTime=INFINITE State=UP"
             for i, p in enumerate(self.partitions))}
"""
        (d / "etc" / "slurm.conf").write_text(conf)
        self.write_accounting_files()
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
