#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The main job: builds flexslurm, starts a local Slurm cluster with the
# plugins, runs slice jobs and shows which slices of which device each got.
# Run as root on Debian 12: sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (daemons, mknod, cgroups)" >&2; exit 1; }
plugin_dir=$(scripts/build.sh | tail -n1)
exec python3 tools/demo.py --plugin-dir "$plugin_dir"
