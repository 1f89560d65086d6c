#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds a supported Slurm release from an unmodified source tarball into a
# prefix, for running flexslurm's tests against it:
#   scripts/build-slurm.sh [--configure-only] /path/slurm-26.05.3.tar.xz [BUILD_ROOT]
# Result: BUILD_ROOT/slurm-26.05.3/src (configured tree, for
# --with-slurm-source) and BUILD_ROOT/slurm-26.05.3/prefix (installed). A
# finished build is reused. --configure-only stops after configure (enough to
# compile plugins against). Prints the build directory last.
set -euo pipefail
configure_only=no
if [ "${1:-}" = "--configure-only" ]; then
	configure_only=yes
	shift
fi
tarball=$(realpath "$1")
root=$(realpath -m "${2:-$(cd "$(dirname "$0")/.." && pwd)/build/slurm}")
name=$(basename "$tarball" .tar.xz)
dir="$root/$name"
log() { printf 'build-slurm: %s\n' "$*" >&2; }

if [ -f "$dir/prefix/.flexslurm-built" ] || { [ "$configure_only" = yes ] && [ -f "$dir/src/config.h" ]; }; then
	log "$name already built in $dir/prefix"
	echo "$dir"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
deps=(libhwloc-dev libjson-c-dev libhttp-parser-dev libmunge-dev libyaml-dev libpam0g-dev make gcc)
missing=()
for p in "${deps[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing ${missing[*]}"
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rm -rf "$dir"
mkdir -p "$dir"
tar -C "$dir" -xJf "$tarball"
mv "$dir/$name" "$dir/src"
cd "$dir/src"
log "configuring $name"
# Built for tests, not speed: without optimisation and with line tables only
# (Slurm's own --disable-debug drops its -ggdb3 -O1), which builds in about
# a quarter less time than Slurm's defaults on two cores.
./configure --quiet --prefix="$dir/prefix" --sysconfdir="$dir/prefix/etc" --disable-static \
	--enable-multiple-slurmd --with-munge --without-rpath --disable-debug CFLAGS="-O0 -g1" >"$dir/configure.log" 2>&1 ||
	{ tail -30 "$dir/configure.log" >&2; exit 1; }
if [ "$configure_only" = yes ]; then
	echo "$dir"
	exit 0
fi
log "building $name ($(nproc) jobs)"
make -j"$(nproc)" >"$dir/make.log" 2>&1 || { tail -30 "$dir/make.log" >&2; exit 1; }
make install >>"$dir/make.log" 2>&1 || { tail -30 "$dir/make.log" >&2; exit 1; }
[ -f "$dir/prefix/lib/slurm/cgroup_v1.so" ] || { log "no cgroup/v1 plugin was built"; exit 1; }
touch "$dir/prefix/.flexslurm-built"
log "$name installed in $dir/prefix"
echo "$dir"
