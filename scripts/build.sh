#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds flexslurm against the installed Slurm and stages the plugins:
# installs what is missing (scripts/setup-debian12.sh), configures with the
# matching Slurm source tree, builds with warnings as errors, and runs
# `make install` into build/stage. Prints the staged PluginDir last.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

slurm_src=$(scripts/setup-debian12.sh | tail -n1)
./autogen.sh
mkdir -p build/obj
(cd build/obj && "$top/configure" --quiet --with-slurm-source="$slurm_src" CXXFLAGS="-O2 -g -Werror")
if ! make -C build/obj -j"$(nproc)" >build/make.log 2>&1; then
	tail -40 build/make.log >&2
	echo "build: failed (build/make.log)" >&2
	exit 1
fi
rm -rf build/stage
make -C build/obj install DESTDIR="$top/build/stage" >>build/make.log 2>&1
dirname "$(find "$top/build/stage" -name gres_vslice.so | head -n1)"
