# SPDX-License-Identifier: GPL-2.0-or-later
"""select/flex setup: 22.05-24.11 clients load every select plugin in PluginDir
(select_flex.so there, with SelectType=select/cons_tres, must not disturb
them), and a malformed placement stops slurmctld with one line."""

from pathlib import Path

from helpers import contains, eq


def test_clients_work_with_select_flex_in_plugindir(env):
    with env.cluster("select-flex-clients", nodes=1, prefix="q") as c:
        _clients_work(c)


def _clients_work(c):
    """22.05 clients load every select plugin in PluginDir: select_flex.so is
    there (SelectType=select/cons_tres here) and must not disturb them."""
    eq((c.dir / "etc" / "slurm.conf").read_text().count("SelectType=select/cons_tres"), 1, "SelectType")
    eq((Path(c.plugin_dir) / "select_flex.so").exists(), True, "select_flex.so in PluginDir")
    for argv in (["sinfo"], ["squeue"], ["scontrol", "show", "node", "q1"], ["scontrol", "show", "config"]):
        r = c.run(argv, check=False)
        eq(r.returncode, 0, f"{' '.join(argv)}: {r.stderr}")
        eq("error" in r.stderr.lower(), False, f"{' '.join(argv)} stderr: {r.stderr}")


BAD_PLACEMENT = """\
version: 1
placement:
  default: best_fit
  partitions:
    main: sideways
"""


def test_malformed_placement_refused_by_slurmctld(env):
    c = env.cluster("bad-placement", nodes=1, prefix="p", select="select/flex", flexslurm_yaml=BAD_PLACEMENT,
                    wait_idle=False)
    try:
        c.start()
        raise AssertionError("slurmctld started with a malformed placement")
    except Exception as e:  # noqa: BLE001 - ClusterError from the start, checked below
        if "slurmctld exited" not in str(e):
            raise
    finally:
        c.stop()
    path = c.dir / "etc" / "flexslurm.yaml"
    lines = [l for l in c.log("slurmctld").splitlines() if "flexslurm:" in l or "select/flex" in l]
    eq(len(lines), 1, "flexslurm lines in slurmctld log")
    contains(lines[0], f"select/flex: refusing to start: {path}:5: placement.partitions.main: unknown placement "
                       "\"sideways\" (allowed: best_fit, spread)", "slurmctld log line")
