#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Packs what tests/gpu/run.sh needs on a GPU machine that has no Slurm:
# Debian 12's Slurm 22.05.8 and munge (files of the installed packages, at
# their own paths), flexslurm's staged plugins and CLI, and gpu-probe, into
# .gpu/bundle.tar.gz (git-ignored; the device tool carries it).
# Run after scripts/build.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>"$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p .gpu
list=$(mktemp)
trap 'rm -f "$list"' EXIT
for p in slurmd slurmctld slurm-client slurm-wlm-basic-plugins libslurm38 munge libmunge2 \
	libhwloc15 libnuma1 libyaml-0-2; do
	dpkg -L "$p" | while read -r f; do
		case "$f" in /usr/share/*) continue ;; esac
		if [ -f "$f" ]; then echo "${f#/}"; fi
	done
done >"$list"
# Debian reaches slurmd/slurmctld through alternatives: store the programs under those names too.
for f in usr/sbin/slurmd usr/sbin/slurmctld usr/sbin/slurmstepd; do [ -e "/$f" ] && echo "$f"; done >>"$list"
stage=$top/build/stage
strip -o .gpu/gpu-probe build/obj/tools/gpu-probe
tar -czhf "$top/.gpu/bundle.tar.gz" -C / -T "$list"
copy=$(mktemp -d)
cp -a "$stage/." "$copy/"
find "$copy" -type f \( -name '*.so' -o -perm -u+x \) -exec strip --strip-debug {} + 2>/dev/null || true
tar -czf "$top/.gpu/flexslurm.tar.gz" -C "$copy" .
rm -rf "$copy"
ls -la .gpu
