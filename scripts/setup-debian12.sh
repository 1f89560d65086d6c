#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Installs everything a fresh Debian 12 machine lacks to build and test flexslurm, and prepares
# a configured Slurm source tree of exactly the installed Slurm release (the plugins need
# Slurm's internal headers and its config.h, which no binary package ships).
#
# Usage: scripts/setup-debian12.sh [SRC_PARENT_DIR]   (default: ./build/slurm-src)
# Prints the path of the configured Slurm source tree on its last line.
set -euo pipefail

src_parent=${1:-"$(cd "$(dirname "$0")/.." && pwd)/build/slurm-src"}
export DEBIAN_FRONTEND=noninteractive

log() { printf 'setup: %s\n' "$*" >&2; }

need_pkgs=(python3 slurm-wlm slurmctld slurmd libslurm-dev munge libmunge-dev libhwloc-dev hwloc
           libyaml-dev check pkg-config autoconf automake libtool make g++ gcc dpkg-dev
           clang-format clang-14 libclang-rt-14-dev # clang: the fuzz drivers (scripts/fuzz.sh)
           slurmdbd mariadb-server mariadb-client # accounting tests (tools/localcluster_accounting.py)
           debhelper rpm groff-base # make deb, make srpm, the man page check (tests/integration/test_packages.py)
           mmdebstrap zstd curl) # the .deb on a fresh Debian 12 root (tests/packages/clean-root.sh)
missing=()
for p in "${need_pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# deb-src entry: the deb stanzas of debian.sources with Types: deb-src, so `apt-get source`
# fetches the source package of exactly the Slurm that apt installed.
srcfile=/etc/apt/sources.list.d/flexslurm-deb-src.sources
if [ ! -f "$srcfile" ]; then
	log "adding deb-src entries ($srcfile)"
	sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$srcfile"
	updated=no
else
	updated=yes
fi

if [ "${#missing[@]}" -gt 0 ] || [ "$updated" = no ]; then
	log "apt-get update"
	apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing: ${missing[*]}"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian packages start their daemons; the local cluster tool runs its own on private
# ports and sockets (MariaDB and slurmdbd too), so keep the system ones from holding locks or ports.
for svc in slurmctld slurmd slurmdbd mariadb munge; do
	systemctl disable --now "$svc" >/dev/null 2>&1 || true
	service "$svc" stop >/dev/null 2>&1 || true
done

ver=$(dpkg-query -W -f='${Version}' slurmctld) # e.g. 22.05.8-4+deb12u3
upver=${ver%%-*}
tree="$src_parent/slurm-wlm-$upver"
if [ ! -d "$tree" ]; then
	mkdir -p "$src_parent"
	log "fetching Debian source of slurm-wlm $ver"
	(cd "$src_parent" && apt-get source -qq "slurm-wlm=$ver" >/dev/null)
	[ -d "$tree" ] || { log "apt-get source did not create $tree"; exit 1; }
fi
# Configured as Debian builds its package (debian/rules), so that config.h
# matches the daemons the plugins load into.
configure_flags=(--prefix=/usr --sysconfdir=/etc/slurm --libdir=/usr/lib/x86_64-linux-gnu
		 --enable-multiple-slurmd --disable-debug --with-munge)
if [ ! -f "$tree/config.h" ] || ! grep -q -- "--enable-multiple-slurmd" "$tree/config.log" 2>/dev/null; then
	log "configuring $tree (for config.h only)"
	(cd "$tree" && ./configure --quiet "${configure_flags[@]}" >/dev/null 2>"$tree/flexslurm-configure.err") || {
		tail -20 "$tree/flexslurm-configure.err" >&2
		exit 1
	}
fi
echo "$tree"
