#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Checks that every undefined symbol of each plugin is one its hosts provide,
# so that a missing symbol fails the build's `make check`, not srun or slurmd.
# Slurm plugins resolve their hosts' symbols when loaded (dlopen), which is
# why the link cannot use -z defs; this is that check, done afterwards.
#
#   check-plugin-symbols.sh [--sbindir DIR --bindir DIR] [--host BINARY]...
#                           [--lib-path DIRS] PLUGIN.so|PLUGIN.la...
#
# A host provides the dynamic symbols it defines, those of every library it
# loads (ldd) and those of the plugin's own libraries (its NEEDED entries:
# libc, libstdc++, hwloc, yaml, munge). Weak undefined symbols are optional
# and not checked. Hosts are the --host binaries if given, otherwise the
# Slurm programs that load a plugin of that kind (its file name's prefix):
#   gres_*        slurmd, slurmstepd, slurmctld
#   select_*      slurmctld, slurmd (22.05 loads select plugins in slurmd)
#   job_submit_*  slurmctld
#   spank_*       srun, sbatch, salloc, slurmd, slurmstepd
# from --sbindir (daemons) and --bindir (commands). --lib-path (colon
# separated) is searched for host libraries the binaries do not locate
# themselves (libslurmfull.so in the PluginDir, libslurm.so). A .la names
# its shared object (libtool's dlname, under .libs/).
#
# Prints one line per missing symbol ("PLUGIN: SYMBOL: not provided by
# HOST") and a summary; exits 1 if any is missing, 2 on a usage error or
# when a host or one of its libraries cannot be found.
set -uo pipefail
export LC_ALL=C

usage() {
	sed -n '7,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

sbindir="" bindir="" lib_path="" hosts=() plugins=()
while [ $# -gt 0 ]; do
	case "$1" in
	--sbindir) sbindir=${2:?}; shift 2 ;;
	--bindir) bindir=${2:?}; shift 2 ;;
	--host) hosts+=("${2:?}"); shift 2 ;;
	--lib-path) lib_path=${2:?}; shift 2 ;;
	-h | --help) usage ;;
	-*) echo "check-plugin-symbols: unknown option $1" >&2; usage ;;
	*) plugins+=("$1"); shift ;;
	esac
done
[ ${#plugins[@]} -gt 0 ] || usage

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A libtool .la: the shared object beside it, in .libs/.
shared_object() {
	local la=$1 dlname
	case "$la" in
	*.la)
		dlname=$(sed -n "s/^dlname='\(.*\)'$/\1/p" "$la")
		[ -n "$dlname" ] || { echo "check-plugin-symbols: $la: no dlname" >&2; return 1; }
		echo "$(dirname "$la")/.libs/$dlname"
		;;
	*) echo "$la" ;;
	esac
}

# The libraries a binary loads, as paths (ldd; --lib-path as a fallback).
libraries_of() {
	local out
	out=$(LD_LIBRARY_PATH="${lib_path}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$1" 2>&1) || {
		echo "check-plugin-symbols: ldd $1: $out" >&2
		return 1
	}
	if grep -q "not found" <<<"$out"; then
		echo "check-plugin-symbols: $1: $(grep 'not found' <<<"$out" | tr -s '\t ' ' ' | paste -sd ';')" >&2
		return 1
	fi
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# Defined dynamic symbols of files, names only (version suffixes dropped).
defined_symbols() {
	nm -D --defined-only "$@" 2>/dev/null | awk 'NF >= 3 { sub(/@.*/, "", $3); print $3 }'
}

# Symbols a host provides, computed once per host.
provided_by() {
	local host=$1 file="$work/host-$(echo "$1" | md5sum | cut -c1-16)"
	if [ ! -f "$file" ]; then
		local libs
		libs=$(libraries_of "$host") || return 1
		# shellcheck disable=SC2086 # one path per line, no spaces in them
		{ defined_symbols "$host"; defined_symbols $libs; } | sort -u >"$file"
	fi
	echo "$file"
}

hosts_for() {
	local name
	name=$(basename "$1")
	case "$name" in
	gres_*) echo "$sbindir/slurmd $sbindir/slurmstepd $sbindir/slurmctld" ;;
	select_*) echo "$sbindir/slurmctld $sbindir/slurmd" ;;
	job_submit_*) echo "$sbindir/slurmctld" ;;
	spank_*) echo "$bindir/srun $bindir/sbatch $bindir/salloc $sbindir/slurmd $sbindir/slurmstepd" ;;
	*) return 1 ;;
	esac
}

missing=0 checked=0 failed=0
for p in "${plugins[@]}"; do
	so=$(shared_object "$p") || exit 2
	[ -f "$so" ] || { echo "check-plugin-symbols: $so: no such plugin" >&2; exit 2; }
	if [ ${#hosts[@]} -gt 0 ]; then
		plugin_hosts=("${hosts[@]}")
	else
		[ -n "$sbindir" ] && [ -n "$bindir" ] || { echo "check-plugin-symbols: $so: give --host or --sbindir and --bindir" >&2; exit 2; }
		list=$(hosts_for "$so") || { echo "check-plugin-symbols: $so: which Slurm program loads it? (give --host)" >&2; exit 2; }
		read -r -a plugin_hosts <<<"$list"
	fi
	# Strong undefined symbols only: weak ones may be absent by design.
	undefined=$(nm -D --undefined-only "$so" | awk '$1 == "U" { sub(/@.*/, "", $2); print $2 }' | sort -u)
	own_libs=$(libraries_of "$so") || exit 2
	# shellcheck disable=SC2086
	own=$(defined_symbols $own_libs | sort -u)
	for host in "${plugin_hosts[@]}"; do
		[ -x "$host" ] || { echo "check-plugin-symbols: $host: no such host program" >&2; exit 2; }
		provided=$(provided_by "$host") || exit 2
		lacking=$(comm -23 <(echo "$undefined") <(sort -u "$provided" <(echo "$own")))
		checked=$((checked + 1))
		if [ -n "$lacking" ]; then
			failed=$((failed + 1))
			while read -r sym; do
				[ -n "$sym" ] || continue
				echo "$(basename "$so"): $sym: not provided by $host"
				missing=$((missing + 1))
			done <<<"$lacking"
		fi
	done
done
echo "check-plugin-symbols: ${#plugins[@]} plugins, $checked plugin/host pairs, $failed with missing symbols ($missing symbols)"
[ "$missing" = 0 ]
