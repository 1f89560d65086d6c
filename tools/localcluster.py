#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
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
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PLUGIN_DIR = "/usr/lib/x86_64-linux-gnu/slurm-wlm"

from localcluster_accounting import Accounting  # noqa: E402
from localcluster_cgroups import CgroupSteps  # noqa: E402
from localcluster_files import DEFAULT_YAML, SHAPES, ClusterFiles, release_ports  # noqa: E402,F401 (DEFAULT_YAML: for importers)


class ClusterError(RuntimeError):
    pass


def _sigterm_interrupts(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def stop_clusters_on_sigterm():
    """SIGTERM (a CI timeout, `kill`) raises KeyboardInterrupt in the main thread, so that every
    `with LocalCluster(...)` and `finally` stops its daemons, as Ctrl-C does. Python's default
    would end the process at once and leave them running. A handler set already is kept."""
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _sigterm_interrupts)


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


class LocalCluster(ClusterFiles, CgroupSteps, Accounting):
    """One slurmctld, `nodes` slurmd, one munged, all children of this process."""

    def __init__(self, workdir, plugin_dir, nodes=3, shape="nvidia-2gpu", prefix="n",
                 slices=None, flexslurm_yaml=None, gres_per_node=None, extra_conf="",
                 node_shapes=None, wait_idle=True, prepare=None, cpus=2, select="select/cons_tres",
                 partitions=None, spank_args=None, task_plugin="task/cgroup", slurm_prefix=None,
                 lending=False, node_addrs=False, gres_conf=None, configless=False, slurmd_binds=None,
                 proctrack="proctrack/cgroup", daemonize=False, cgroup="v1", node_prefix="",
                 backup_ctld=False, slurmctld_timeout=None, accounting=False):
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
        self.gres_per_node = {node_prefix + n: g for n, g in (gres_per_node or {}).items()}
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
        # MariaDB and slurmdbd of its own, AccountingStorageType=accounting_storage/slurmdbd
        # (tools/localcluster_accounting.py).
        self.accounting = accounting
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
        self.start_accounting()
        self.start_slurmctld()
        if self.backup_ctld:
            self.start_backup_slurmctld()
        for node in self.nodes:
            self.start_slurmd(node)
        if self.wait_idle:
            # Hundreds of slurmd (bench/scale_bench.py) register over more than 30 s on 2 cores.
            self.wait_nodes_idle(timeout=max(30, len(self.nodes) // 4))
        self._check_cgroup2()
        return self

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
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                # SIGKILLed, not reaped yet (a 512-node cluster on 2 cores): the
                # kernel ends it; the other daemons are stopped all the same.
                pass
            return False

    def daemon_exit_code(self, name, timeout=10):
        p = self.procs[name]
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

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
            try:  # thousands of jobs on hundreds of nodes (bench/scale_bench.py) take longer
                self.run(["scancel", "--full", "-u", "root"], check=False, timeout=max(10, len(self.nodes) // 8))
            except subprocess.TimeoutExpired:
                pass  # the daemons are stopped below all the same
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
        self.stop_accounting()
        self.kill_job_steps()
        self.stop_daemon("munged")
        release_ports(getattr(self, "_ports", []))
        self._ports = []
        for target in self._made_targets:
            if target.exists() and target.stat().st_size == 0:
                target.unlink()
        self._made_targets = []

    def __enter__(self):
        stop_clusters_on_sigterm()
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
    order = [p for p in state.glob("slurmd.*.pid")] + [state / "slurmctld.pid", state / "slurmctld-backup.pid",
                                                       state / "slurmdbd.pid", state / "mariadbd.pid"]
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
