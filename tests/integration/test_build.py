# SPDX-License-Identifier: GPL-2.0-or-later
"""The build: configure's Slurm release check, what make install puts where,
and what the plugin exports."""

import re
import shutil
import subprocess
from pathlib import Path

from helpers import contains, eq

REPO = Path(__file__).resolve().parent.parent.parent
COMMON = {"plugin_name", "plugin_type", "plugin_version", "init", "fini"}
GRES_COMMON = ["node_config_load", "job_set_env", "step_set_env", "task_set_env", "send_stepd", "recv_stepd",
               "get_devices", "step_hardware_init", "step_hardware_fini"]
EXPECTED_EXPORTS = {
    "gres_vslice.so": COMMON | {
        f"gres_p_{n}" for n in GRES_COMMON + ["get_job_info", "get_step_info", "epilog_build_env", "epilog_set_env"]},
    # plugin_id + the 36 entry points of slurm_select_ops_t in 22.05
    "select_flex.so": COMMON | {"plugin_id"} | {
        f"select_p_{n}" for n in [
            "state_save", "state_restore", "job_init", "node_init", "job_test", "job_begin", "job_ready",
            "job_expand", "job_resized", "job_signal", "job_fini", "job_suspend", "job_resume",
            "step_pick_nodes", "step_start", "step_finish", "select_nodeinfo_pack", "select_nodeinfo_unpack",
            "select_nodeinfo_alloc", "select_nodeinfo_free", "select_nodeinfo_set_all", "select_nodeinfo_set",
            "select_nodeinfo_get", "select_jobinfo_alloc", "select_jobinfo_free", "select_jobinfo_set",
            "select_jobinfo_get", "select_jobinfo_copy", "select_jobinfo_pack", "select_jobinfo_unpack",
            "select_jobinfo_sprint", "select_jobinfo_xstrdup", "get_info_from_plugin", "update_node_config",
            "reconfigure", "resv_test"]},
    "spank_flexslurm.so": {"plugin_name", "plugin_type", "plugin_version", "slurm_spank_init",
                           "slurm_spank_init_post_opt", "slurm_spank_task_init_privileged",
                           "slurm_spank_task_init", "slurm_spank_job_prolog",
                           "slurm_spank_job_epilog"},
}


def _fake_tree(env, name, version):
    """A 'configured Slurm tree' of another release: config.h and a gres.h."""
    tree = env.workdir / name
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "src" / "common").mkdir(parents=True)
    (tree / "src" / "common" / "gres.h").write_text("/* fake */\n")
    (tree / "config.h").write_text(f'#define SLURM_VERSION_STRING "{version}"\n')
    return tree


def supported_series():
    """The series (x.y) of the releases in RELEASES, the one list, in order."""
    releases = [line.split()[0] for line in (REPO / "RELEASES").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    series = {tuple(int(n) for n in r.split(".")[:2]) for r in releases}
    return " ".join(f"{major}.{minor:02d}" for major, minor in sorted(series))


def test_releases_list_the_series_slurm_compat_knows(env):
    """RELEASES and the series src/compat/slurm_compat.h has code for agree."""
    compat = (REPO / "src" / "compat" / "slurm_compat.h").read_text()
    eq(f"(supported: {supported_series()})" in compat, True, "slurm_compat.h's supported series")


def _configure(env, tree):
    build = env.workdir / "configure-check"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    return subprocess.run([str(REPO / "configure"), f"--with-slurm-source={tree}"], cwd=build,
                          capture_output=True, text=True)


def test_configure_refuses_unsupported_release(env):
    for version in ["21.08.8", "23.02.7", "bogus"]:
        r = _configure(env, _fake_tree(env, f"slurm-{version}", version))
        eq(r.returncode != 0, True, f"configure accepted a {version} tree")
        contains(r.stderr, f"Slurm {version} in ", f"{version} message")
        contains(r.stderr, f"is not supported (supported release series: {supported_series()})",
                 f"{version} message")


def test_configure_refuses_other_release_than_installed(env):
    installed = subprocess.run(["slurmctld", "-V"], capture_output=True, text=True).stdout.split()[-1]
    version = "22.05.7" if installed != "22.05.7" else "22.05.6"
    r = _configure(env, _fake_tree(env, f"slurm-{version}", version))
    eq(r.returncode != 0, True, f"configure accepted a {version} tree")
    contains(r.stderr, f"is release {version} but the installed slurmctld (", "message")
    contains(r.stderr, f") is {installed}; plugins load only into the exact release they were built for",
             "message")


def test_configure_refuses_unconfigured_tree(env):
    tree = env.workdir / "not-configured"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    r = _configure(env, tree)
    eq(r.returncode != 0, True, "configure accepted an empty tree")
    contains(r.stderr, "is not a configured Slurm source tree", "message")


def _release(env):
    slurmctld = str(Path(env.slurm_prefix) / "sbin" / "slurmctld") if env.slurm_prefix else "slurmctld"
    return subprocess.run([slurmctld, "-V"], capture_output=True, text=True).stdout.split()[-1]


def _expected_exports(release):
    exports = _release_exports(release)
    # gres/vborrow and gres/vslice are two thin files over src/plugins/gres_common
    # with the same entry points; job_submit/flex has the same two in every release.
    exports["gres_vborrow.so"] = exports["gres_vslice.so"]
    exports["job_submit_flex.so"] = COMMON | {"job_submit", "job_modify"}
    return exports


def _release_exports(release):
    if release.startswith("22.05"):
        return dict(EXPECTED_EXPORTS)
    # 24.11 on: prep_* instead of epilog_*, no info getters; 25.05 on: the
    # short select interface (26.05: 13 entry points and job_mem_reduce).
    short_select = ["node_init", "job_test", "job_begin", "job_ready", "job_expand", "job_resized", "job_fini",
                    "job_suspend", "job_resume", "select_nodeinfo_set_all", "select_nodeinfo_set", "reconfigure"]
    if release.startswith("26.05"):
        short_select.append("job_mem_reduce")
    select = COMMON | {"plugin_id"} | {f"select_p_{n}" for n in short_select}
    if release.startswith("24.11"):  # the last full select interface, without five of 22.05's entry points
        select = EXPECTED_EXPORTS["select_flex.so"] - {
            f"select_p_{n}" for n in ["job_signal", "resv_test", "select_jobinfo_sprint", "select_jobinfo_xstrdup",
                                      "update_node_config"]}
    return {"gres_vslice.so": COMMON | {f"gres_p_{n}" for n in GRES_COMMON + ["prep_build_env", "prep_set_env"]},
            "select_flex.so": select,
            "spank_flexslurm.so": EXPECTED_EXPORTS["spank_flexslurm.so"]}


def test_make_install_and_exports(env):
    plugin_dir = Path(env.plugin_dir)
    expected_exports = _expected_exports(_release(env))
    eq(sorted(p.name for p in plugin_dir.iterdir()), sorted(expected_exports), "files installed in PluginDir")
    for so, expected in expected_exports.items():
        nm = subprocess.run(["nm", "-D", "--defined-only", str(plugin_dir / so)],
                            capture_output=True, text=True, check=True).stdout
        exports = {line.split()[-1] for line in nm.splitlines() if re.match(r"^[0-9a-f]+ [A-Za-z] ", line)}
        eq(exports, expected, f"{so} exported symbols")
    # srun and sbatch load the SPANK plugin: it must not drag hwloc or libyaml in.
    ldd = subprocess.run(["ldd", str(plugin_dir / "spank_flexslurm.so")], capture_output=True, text=True).stdout
    eq([lib for lib in ("hwloc", "yaml") if lib in ldd], [], "spank_flexslurm.so dependencies")
