# SPDX-License-Identifier: GPL-2.0-or-later
"""The packages (Debian leg only: the .deb is Debian's). `make deb` in the
configured tree (build/obj, scripts/build.sh) builds a .deb whose version
names the Slurm release; dpkg installs it into an empty root with a dpkg
database of its own (the host's Slurm and packages stay untouched); a local
cluster (node pk1, select/flex, the SPANK plugin from the installed drop-in)
whose PluginDir has flexslurm only from that root runs a slice job, which
sees its slice's environment and only its device. `make srpm` builds the
source RPM with rpmbuild -bs."""

import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import contains, env_of, eq

REPO = Path(__file__).resolve().parent.parent.parent
OBJ = REPO / "build" / "obj"
sys.path.insert(0, str(REPO / "tools"))
from localcluster import SYSTEM_PLUGIN_DIR, LocalCluster  # noqa: E402

PLUGINS = ["gres_vslice.so", "gres_vborrow.so", "select_flex.so", "job_submit_flex.so", "spank_flexslurm.so"]
PLUGIN_DIR = "/usr/lib/x86_64-linux-gnu/slurm-wlm"  # Debian's slurm-wlm PluginDir


def _run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({r.returncode}):\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


def _make_var(name):
    """A variable configure wrote into build/obj/Makefile."""
    return re.search(rf"^{name} = (.*)$", (OBJ / "Makefile").read_text(), re.M).group(1).strip()


def _versions():
    slurm = _run(["slurmctld", "-V"]).split()[-1]
    return slurm, f"{_make_var('PACKAGE_VERSION')}+slurm{slurm}"


def _build_deb(env):
    if env.slurm_prefix:
        raise AssertionError("test_packages builds Debian's package: run it on the Debian leg (--skip elsewhere)")
    if not (OBJ / "Makefile").exists():
        raise AssertionError(f"{OBJ} is not configured: run scripts/build.sh first")
    # noautodbgsym: the same package, without the -dbgsym one (half the time).
    _run(["nice", "-n", "19", "make", "-C", str(OBJ), "deb"], env=dict(os.environ, DEB_BUILD_OPTIONS="noautodbgsym"))
    slurm, version = _versions()
    debs = sorted((OBJ / "deb").glob("flexslurm_*_amd64.deb"))
    eq([d.name for d in debs], [f"flexslurm_{version}_amd64.deb"], "the .deb make deb built")
    return debs[0], slurm, version


def _install(env, deb):
    """dpkg --root into an empty root with its own database; returns the root."""
    root = env.workdir / "test_packages" / "root"
    _run(["rm", "-rf", str(root)])
    (root / "var" / "lib" / "dpkg" / "info").mkdir(parents=True)
    (root / "var" / "lib" / "dpkg" / "updates").mkdir()
    (root / "var" / "lib" / "dpkg" / "status").write_text("")
    (root / "var" / "log").mkdir(parents=True)
    # --force-depends: this root has no Slurm; the host's is checked against Depends below.
    _run(["dpkg", f"--root={root}", "--force-depends", "-i", str(deb)])
    return root


def test_deb_installs_and_runs_a_slice_job(env):
    deb, slurm, version = _build_deb(env)

    # Depends: exactly this Slurm release, which this Debian 12 has installed.
    fields = _run(["dpkg-deb", "-f", str(deb), "Version", "Depends"])
    contains(fields, f"Version: {version}", "package version")
    major, minor, micro = slurm.split(".")
    contains(fields, f"slurm-wlm-basic-plugins (>= {slurm}), slurm-wlm-basic-plugins (<< {major}.{minor}."
                     f"{int(micro) + 1}~)", "Depends")
    host = _run(["dpkg-query", "-W", "-f", "${Version}", "slurm-wlm-basic-plugins"])
    _run(["dpkg", "--compare-versions", host, "ge", slurm])
    _run(["dpkg", "--compare-versions", host, "lt", f"{major}.{minor}.{int(micro) + 1}~"])

    root = _install(env, deb)
    admin = ["--admindir", str(root / "var" / "lib" / "dpkg")]
    files = set(_run(["dpkg-query", *admin, "-L", "flexslurm"]).split())
    expected = {f"{PLUGIN_DIR}/{p}" for p in PLUGINS} | {
        "/usr/bin/flexslurm-lending", "/usr/share/man/man5/flexslurm.yaml.5.gz",
        "/usr/share/man/man8/spank_flexslurm.8.gz", "/etc/slurm/flexslurm.yaml",
        "/etc/slurm/plugstack.conf.d/flexslurm.conf", "/usr/share/doc/flexslurm/flexslurm.yaml",
        "/usr/share/doc/flexslurm/copyright"}
    eq(sorted(expected - files), [], "files the package lacks")
    eq([f for f in files if f.endswith(".la")], [], "libtool archives in the package")
    conffiles = _run(["dpkg-query", *admin, "-W", "-f", "${Conffiles}", "flexslurm"])
    for conf in ["/etc/slurm/flexslurm.yaml", "/etc/slurm/plugstack.conf.d/flexslurm.conf"]:
        contains(conffiles, conf, "conffiles")

    # The YAML means the built-in defaults: nothing but comments and `version: 1`.
    yaml = (root / "etc/slurm/flexslurm.yaml").read_text()
    eq([line for line in yaml.splitlines() if line.strip() and not line.lstrip().startswith("#")],
       ["version: 1"], "settings in the packaged flexslurm.yaml")
    # An edited conffile survives reinstalling the package.
    with open(root / "etc/slurm/flexslurm.yaml", "a") as f:
        f.write("# edited by the admin\n")
    _run(["dpkg", f"--root={root}", "--force-depends", "-i", str(deb)])
    contains((root / "etc/slurm/flexslurm.yaml").read_text(), "# edited by the admin", "conffile after reinstall")

    # The drop-in: one commented `required` line naming the plugin in Debian's PluginDir.
    lines = [line for line in (root / "etc/slurm/plugstack.conf.d/flexslurm.conf").read_text().splitlines()
             if re.match(r"#\s*required\s", line)]
    eq(len(lines), 1, "commented required lines in the drop-in")
    words = lines[0].lstrip("#").split()
    eq(words[1], f"{PLUGIN_DIR}/spank_flexslurm.so", "plugin path in the drop-in")
    contains(_run(["grep", "-x", "include /etc/slurm/plugstack.conf.d/\\*.conf", "/etc/slurm/plugstack.conf"]),
             "plugstack.conf.d", "Debian's plugstack.conf includes the drop-ins")

    # The man pages and the command, as installed.
    man = _run(["man", "-l", str(root / "usr/share/man/man5/flexslurm.yaml.5.gz")], env={"MANWIDTH": "100",
                                                                                         "PATH": "/usr/bin:/bin"})
    contains(man, "lending.telemetry_timeout", "flexslurm.yaml(5)")
    r = subprocess.run([str(root / "usr/bin/flexslurm-lending")], capture_output=True, text=True)
    contains(r.stderr, "usage: flexslurm-lending", "flexslurm-lending without arguments")

    # Nothing of flexslurm in Debian's own PluginDir: the cluster can only load the package's.
    eq([p for p in PLUGINS if (Path(SYSTEM_PLUGIN_DIR) / p).exists()], [], "flexslurm plugins in the host's PluginDir")
    plugin_dir = root / PLUGIN_DIR.lstrip("/")
    packaged_yaml = yaml.replace("{", "{{").replace("}", "}}") + (
        "inventory:\n  topology_xml: {dir}/topology/%n.xml\n  device_dir: {dir}/dev/%n\n"
        "  layout_file: {dir}/state/layout.%n\n")
    with LocalCluster(env.workdir / "test_packages" / "cluster", plugin_dir, nodes=1, prefix="pk",
                      select="select/flex", flexslurm_yaml=packaged_yaml, spank_args=words[2:],
                      **env.cluster_args) as c:
        node = c.nodes[0]
        for daemon, plugin in [("slurmctld", "select_flex.so"), (f"slurmd.{node}", "gres_vslice.so")]:
            maps = Path(f"/proc/{c.procs[daemon].pid}/maps").read_text()
            contains(maps, f"{plugin_dir}/{plugin}", f"{daemon} loaded the package's {plugin}")
        dev = c.dir / "dev" / node
        job = c.sbatch("--gres=vslice:1", script=f"#!/bin/bash\nenv\necho \"LS $(ls {dev} | tr '\\n' ' ')\"\n")
        eq(c.wait_job(job, timeout=120), "COMPLETED", f"slice job {job}: {c.job_output(job)}")
        out = c.job_output(job)
        e = env_of(out)
        # One slice of the packaged YAML's built-in defaults: 4 per device, 25 % each.
        eq((e.get("SLURM_VSLICES_ON_NODE"), e.get("SLURM_VSLICE_COUNTS"), e.get("SLURM_VSLICE_COMPUTE_PERCENT"),
            e.get("CUDA_VISIBLE_DEVICES")), ("1", "1", "25", "0"), f"slice environment:\n{out}")
        device = e.get("SLURM_VSLICE_DEVICES")
        eq(device in ("0", "1"), True, f"SLURM_VSLICE_DEVICES={device}")
        # The SPANK plugin's private device directory: only the slice's device.
        ls = re.search(r"^LS (.*)$", out, re.M).group(1).split()
        eq([n for n in ls if re.fullmatch(r"nvidia\d+", n)], [f"nvidia{device}"], f"device nodes the job sees: {ls}")


def test_source_rpm(env):
    if not (OBJ / "Makefile").exists():
        raise AssertionError(f"{OBJ} is not configured: run scripts/build.sh first")
    _, version = _versions()
    _run(["rm", "-rf", str(OBJ / "rpmbuild")])
    _run(["nice", "-n", "19", "make", "-C", str(OBJ), "srpm"])
    srpms = sorted((OBJ / "rpmbuild" / "SRPMS").glob("*.src.rpm"))
    eq([s.name for s in srpms], [f"flexslurm-{version}-1.src.rpm"], "source RPM")
    eq(_run(["rpm", "-qp", "--qf", "%{VERSION} %{LICENSE}", str(srpms[0])]), f"{version} GPL-2.0-or-later",
       "source RPM version and licence")
    contents = _run(["rpm", "-qpl", str(srpms[0])]).split()
    eq(sorted(contents), sorted(["flexslurm.spec", f"flexslurm-{_make_var('PACKAGE_VERSION')}.tar.gz"]),
       "source RPM contents")
