"""What test_host_roles and test_select_switch share: the Slurm release the
cluster runs, and a PluginDir (or a whole client host's configuration)
without some of flexslurm's files, as a host that lacks them would have."""

import re
import shutil
from pathlib import Path


def slurm_release(c):
    """(major, minor) of the cluster's Slurm, from `sinfo --version` ("slurm 22.05.8", "slurm-wlm 22.05.8")."""
    m = re.search(r"(\d+)\.(\d+)\.\d+", c.run(["sinfo", "--version"]).stdout)
    return int(m.group(1)), int(m.group(2))


def plugin_dirs(c):
    return re.search(r"^PluginDir=(.*)$", (c.dir / "etc" / "slurm.conf").read_text(), re.M).group(1).split(":")


def plugin_dir_without(c, *omit, name=None):
    """A directory of links to every file of the cluster's PluginDir (flexslurm's and Slurm's) except
    `omit`; made once per name."""
    d = c.dir / (name or ("plugins-without-" + "-".join(sorted(omit))))
    if d.exists():
        return str(d)
    d.mkdir(parents=True)
    for src in [Path(p) for p in (c.plugin_dir, c.system_plugin_dir)]:
        for f in src.iterdir():
            if f.name not in omit and not (d / f.name).exists():
                (d / f.name).symlink_to(f)
    return str(d)


def client_host(c, name, omit=(), plugstack=None):
    """A login host's view: a copy of the cluster's etc/ whose slurm.conf has PluginDir without `omit`
    (and plugstack.conf replaced by `plugstack` if given). Returns the environment (SLURM_CONF) to
    run client commands with."""
    etc = c.dir / name / "etc"
    if etc.exists():
        shutil.rmtree(etc.parent)
    shutil.copytree(c.dir / "etc", etc)
    conf = (etc / "slurm.conf").read_text()
    conf = re.sub(r"^PluginDir=.*$", f"PluginDir={plugin_dir_without(c, *omit, name=f'{name}/plugins')}",
                  conf, flags=re.M)
    conf = conf.replace(f"PlugStackConfig={c.dir}/etc/plugstack.conf", f"PlugStackConfig={etc}/plugstack.conf")
    (etc / "slurm.conf").write_text(conf)
    if plugstack is not None:
        (etc / "plugstack.conf").write_text(plugstack.format(plugins=c.dir / name / "plugins"))
    return {"SLURM_CONF": str(etc / "slurm.conf")}
