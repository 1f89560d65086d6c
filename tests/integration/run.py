#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Integration tests on a real local Slurm cluster (munged, slurmctld, slurmd).

Each tests/integration/test_*.py module may define CLUSTER (keyword
arguments for LocalCluster); its tests then share one cluster, started
before the first and stopped after the last, by PID, whatever happens.
A test is a function test_*(cluster) (or test_*(env) without CLUSTER) that
raises on failure. The last line printed is `N passed, N failed`.

Usage: run.py --plugin-dir DIR [--workdir DIR] [-k SUBSTRING] [--jobs N] [--cgroup v2]

--jobs N runs up to N modules at once, each in a run.py of its own (their
clusters never share a node name: modules whose node-name prefixes overlap
wait for each other), longest first by the durations of the last run in
the workdir (durations.json) or, where there is none (a clean clone), by
tests/integration/durations.json, a full run's, and prints each module's
output whole when it ends. Run alphabetically, the longest module
(test_lending) started last and ran alone for minutes.

--cgroup v2 runs the clusters under Slurm's cgroup/v2 (tools/localcluster.py)
with every node name prefixed by "v" (vs1, vm1, vl1, ...; --node-prefix), so
that a v2 run and a v1 run of the same module never share node names.
"""

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tools"))
sys.path.insert(0, str(HERE))

from localcluster import LocalCluster, stop_clusters_on_sigterm  # noqa: E402


class Env:
    """What a test module without a shared cluster gets: where to make its own."""

    def __init__(self, workdir, plugin_dir, slurm_prefix, cluster_args=None):
        self.workdir = workdir
        self.plugin_dir = plugin_dir
        self.slurm_prefix = slurm_prefix
        self.cluster_args = cluster_args or {}  # cgroup, node_prefix: the same for every cluster of the run

    def cluster(self, name, **kwargs):
        return LocalCluster(self.workdir / name, self.plugin_dir, slurm_prefix=self.slurm_prefix,
                            **self.cluster_args, **kwargs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--workdir", default=str(HERE.parent.parent / "build" / "test-clusters"))
    ap.add_argument("-k", default="", help="run only tests whose name contains this")
    ap.add_argument("--slurm-prefix", help="a source-built Slurm (scripts/build-slurm.sh) instead of Debian's")
    ap.add_argument("--skip", default="", help="comma-separated test modules not to run (not built for this release)")
    ap.add_argument("--jobs", type=int, default=1, help="modules run at once (each its own clusters)")
    ap.add_argument("--module", help=argparse.SUPPRESS)  # --jobs: the one module a child runs
    ap.add_argument("--cgroup", choices=["v1", "v2"], default="v1", help="Slurm's cgroup plugin on the nodes")
    ap.add_argument("--node-prefix", help="before every node name (default: 'v' with --cgroup v2, else none)")
    args = ap.parse_args()
    if args.node_prefix is None:
        args.node_prefix = "v" if args.cgroup == "v2" else ""
    cluster_args = {"cgroup": args.cgroup, "node_prefix": args.node_prefix}
    stop_clusters_on_sigterm()

    workdir = Path(args.workdir).resolve()
    paths = sorted(HERE.glob("test_*.py"))
    if args.module:
        paths = [p for p in paths if p.stem == args.module]
    elif args.jobs > 1:
        return run_parallel(args, workdir, paths)
    passed, failed = 0, 0
    for path in paths:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception:  # noqa: BLE001 - a broken module is one failure, not the end of the run
            failed += 1
            print(f"FAIL {path.stem}: cannot load", flush=True)
            traceback.print_exc(file=sys.stdout)
            continue
        tests = [(n, f) for n, f in vars(module).items() if n.startswith("test_") and callable(f)
                 and any(k in f"{path.stem}.{n}" for k in args.k.split(","))]
        if not tests:
            continue
        if path.stem in args.skip.split(","):
            print(f"# {path.stem}: skipped for this release", flush=True)
            continue
        env = Env(workdir, args.plugin_dir, args.slurm_prefix, cluster_args)
        cluster = None
        ran = 0
        try:
            if hasattr(module, "CLUSTER"):
                cluster = LocalCluster(workdir / path.stem, args.plugin_dir, slurm_prefix=args.slurm_prefix,
                                       **cluster_args, **module.CLUSTER)
                t0 = time.monotonic()
                cluster.start()
                print(f"# {path.stem}: cluster up in {time.monotonic() - t0:.1f}s ({cluster.dir})", flush=True)
            for name, fn in tests:
                ran += 1
                t0 = time.monotonic()
                try:
                    fn(cluster if cluster else env)
                    passed += 1
                    print(f"PASS {path.stem}.{name} ({time.monotonic() - t0:.1f}s)", flush=True)
                except Exception:  # noqa: BLE001 - a failing test must not stop the others
                    failed += 1
                    print(f"FAIL {path.stem}.{name} ({time.monotonic() - t0:.1f}s)", flush=True)
                    traceback.print_exc(file=sys.stdout)
        except Exception:  # noqa: BLE001 - the cluster did not start: every test of the module fails
            failed += len(tests) - ran
            print(f"FAIL {path.stem}: cluster did not start", flush=True)
            traceback.print_exc(file=sys.stdout)
        finally:
            if cluster:
                cluster.stop()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def node_prefixes(path):
    """The node-name prefixes a module's clusters use (prefix="x" in its source; LocalCluster's "n" if none)."""
    return set(re.findall(r"\bprefix=[\"'](\w+)[\"']", path.read_text())) or {"n"}


def run_parallel(args, workdir, paths):
    workdir.mkdir(parents=True, exist_ok=True)
    times_file = workdir / "durations.json"
    last = {}
    for known in (HERE / "durations.json", times_file):  # the workdir's last run over the committed one
        try:
            last.update(json.loads(known.read_text()))
        except (OSError, ValueError):
            pass
    todo = sorted(paths, key=lambda p: -last.get(p.stem, 1e6))  # unknown: first
    base = [sys.executable, str(Path(__file__).resolve()), "--plugin-dir", args.plugin_dir,
            "--workdir", str(workdir), "-k", args.k, "--skip", args.skip]
    if args.slurm_prefix:
        base += ["--slurm-prefix", args.slurm_prefix]
    running = {}  # Popen -> (path, output file, start)
    passed = failed = 0
    durations = dict(last)
    try:
        while todo or running:
            busy = set().union(*(node_prefixes(p) for p, _, _ in running.values())) if running else set()
            for path in list(todo):
                if len(running) >= args.jobs:
                    break
                if node_prefixes(path) & busy:
                    continue
                out = tempfile.TemporaryFile(mode="w+")
                proc = subprocess.Popen(base + ["--module", path.stem], stdout=out, stderr=subprocess.STDOUT,
                                        env=dict(os.environ, PYTHONUNBUFFERED="1"))
                running[proc] = (path, out, time.monotonic())
                busy |= node_prefixes(path)
                todo.remove(path)
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                path, out, t0 = running.pop(proc)
                out.seek(0)
                text = out.read()
                out.close()
                lines = [line for line in text.splitlines() if line.strip()]
                m = re.fullmatch(r"(\d+) passed, (\d+) failed", lines[-1]) if lines else None
                print("\n".join(lines[:-1] if m else lines), flush=True)
                if m:
                    passed += int(m.group(1))
                    failed += int(m.group(2))
                else:
                    failed += 1
                    print(f"FAIL {path.stem}: its run.py ended with {proc.returncode} and no summary", flush=True)
                durations[path.stem] = round(time.monotonic() - t0, 1)
    finally:
        for proc in running:  # SIGTERM, Ctrl-C: each child stops its own clusters
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    times_file.write_text(json.dumps(durations, indent=1, sort_keys=True) + "\n")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
