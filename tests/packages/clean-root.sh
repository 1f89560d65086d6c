#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The .deb on a clean Debian 12: makes a bookworm root (mmdebstrap
# --variant=minbase, from the mirrors this machine's own apt uses, read from
# /etc/apt/sources.list*), installs Debian's Slurm and MUNGE there with apt
# (slurmctld slurmd slurm-client munge), installs the flexslurm .deb that
# `make deb` built with `apt-get install ./flexslurm_*.deb` (apt checks its
# Depends against that Slurm), then runs a one-node cluster (node dc1) inside
# the root with the installed files only (tests/packages/clean-root-cluster.sh:
# munged, slurmctld, slurmd; select/flex, gres/vslice and the SPANK plugin
# from Debian's PluginDir; the installed flexslurm.yaml and plugstack drop-in)
# and checks that a --gres=vslice:1 job sees its slice's environment and
# can open only its slice's device (fake accelerators: character devices on
# real majors, as tools/localcluster.py makes them).
#
#   tests/packages/clean-root.sh [--deb FILE] [--refresh] [--keep] [--prepare|--install-only]
#
# --deb FILE  install FILE instead of building one with `make -C build/obj deb`
# --refresh   download the root again instead of reusing the cache
# --keep      leave the root (build/clean-root/root) for a look; the next run
#             removes it
# --prepare   only make (or refresh) the cached root: no .deb, no cluster
# --install-only  install the .deb with apt, but start no cluster
#
# The root with Slurm and MUNGE installed is kept in
# build/clean-root/bookworm-slurm.tar.zst and reused (rebuilt when older than
# 30 days or with --refresh); each run unpacks it afresh, runs apt-get update
# and installs the .deb. The cluster runs in namespaces of its own (mount,
# network with only loopback, UTS with the host name dc1, PID): its ports and
# host name are its own, and nothing it started outlives it. Every daemon is
# stopped by its PID at exit, every mount is undone, the node's cgroups are
# removed. Needs root, cgroup v1 hierarchies under /sys/fs/cgroup (as on the
# machines tests/integration runs on), mmdebstrap and zstd.
#
# Prints one line last: "clean-root: PASS ...", "clean-root: FAIL ..." (exit
# 1) or "clean-root: SKIP ..." (the mirror cannot be reached; exit 0). The
# details go to build/clean-root/clean-root.log and build/clean-root/logs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)

deb="" refresh=0 keep=0 prepare=0 install_only=0
while [ $# -gt 0 ]; do
	case "$1" in
	--deb) deb=$(realpath "$2") && shift ;;
	--refresh) refresh=1 ;;
	--keep) keep=1 ;;
	--prepare) prepare=1 ;;
	--install-only) install_only=1 ;;
	*) echo "usage: $0 [--deb FILE] [--refresh] [--keep] [--prepare|--install-only]" >&2 && exit 2 ;;
	esac
	shift
done

[ "$(id -u)" = 0 ] || { echo "clean-root: FAIL: must run as root (chroot, mounts, daemons)"; exit 1; }
for tool in mmdebstrap zstd curl; do
	command -v "$tool" >/dev/null ||
		{ echo "clean-root: FAIL: $tool is not installed (scripts/setup-debian12.sh installs it)"; exit 1; }
done

# Everything below in a mount namespace of our own: the root's mounts are
# never seen outside and go away with this script, however it ends.
if [ -z "${FLEXSLURM_CLEAN_ROOT_NS:-}" ]; then
	export FLEXSLURM_CLEAN_ROOT_NS=1
	args=(--refresh)
	[ "$refresh" = 1 ] || args=()
	[ "$keep" = 0 ] || args+=(--keep)
	[ "$prepare" = 0 ] || args+=(--prepare)
	[ "$install_only" = 0 ] || args+=(--install-only)
	[ -z "$deb" ] || args+=(--deb "$deb")
	exec unshare --mount --propagation private -- "$0" "${args[@]}"
fi

dir=$top/build/clean-root
cache=$dir/bookworm-slurm.tar.zst
root=$dir/root
log=$dir/clean-root.log
node=dc1
plugin_dir=/usr/lib/x86_64-linux-gnu/slurm-wlm # Debian's PluginDir
start=$SECONDS
mkdir -p "$dir"
: >"$log"

step="start"
summary=""
unshare_pid=""

say() { echo "== $*" >>"$log"; }
finish() { # PASS|FAIL|SKIP text
	summary="clean-root: $1: $2 ($((SECONDS - start)) s)"
}
fail() {
	finish FAIL "$*"
	exit 1
}
# Runs a command in the root (mounted by mount_root).
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
	DEBIAN_FRONTEND=noninteractive "$@"; }

mount_root() {
	mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
	cp -L /etc/resolv.conf "$root/etc/resolv.conf"
}

# Under $root: any mount left?
mounted_under() { awk -v r="$root/" 'index($5 "/", r) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; }

umount_root() {
	local m
	for m in proc sys dev; do
		if mountpoint -q "$root/$m"; then umount -R "$root/$m" || umount -R -l "$root/$m"; fi
	done
}

remove_root() {
	[ -e "$root" ] || return 0
	umount_root
	if mounted_under; then
		echo "clean-root: mounts left under $root; not removing it" >>"$log"
		return 1
	fi
	rm -rf --one-file-system "$root"
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	# The cluster's namespaces: killing unshare kills its child (--kill-child),
	# and with it every process of that PID namespace.
	# First its init (clean-root-cluster.sh), whose trap stops the daemons by PID.
	if [ -n "$unshare_pid" ] && kill -0 "$unshare_pid" 2>/dev/null; then
		local init
		init=$(cat "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null)
		[ -z "$init" ] || kill -TERM "$init" 2>/dev/null
		for _ in $(seq 60); do kill -0 "$unshare_pid" 2>/dev/null || break; sleep 0.5; done
		kill -TERM "$unshare_pid" 2>/dev/null
		wait "$unshare_pid" 2>/dev/null
	fi
	# slurmd's cgroups (cgroup v1: slurm_<node> in each hierarchy), deepest first.
	local cg
	for cg in /sys/fs/cgroup/*/slurm_"$node"; do
		[ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>>"$log"
	done
	if [ -d "$root/var/log/slurm" ]; then
		rm -rf "$dir/logs" && mkdir -p "$dir/logs"
		cp -r "$root/var/log/slurm/." "$root/var/log/munge/." "$dir/logs/" 2>/dev/null
	fi
	if [ "$keep" = 1 ]; then
		umount_root
	else
		remove_root
	fi
	if mounted_under; then
		finish FAIL "mounts left under $root"
		rc=1
	fi
	if [ -z "$summary" ]; then
		finish FAIL "at step '$step' (exit $rc; $log)"
		tail -n 30 "$log"
	fi
	[ "${summary#clean-root: FAIL}" = "$summary" ] || { [ "$rc" != 0 ] || rc=1; }
	echo "$summary"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the mirrors this machine's apt uses ----------------------------------------
# "deb URI SUITE main" for each bookworm, bookworm-updates and bookworm-security
# source in /etc/apt/sources.list* (one-line and deb822 files).
apt_sources() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		case "$f" in
		*.sources)
			awk 'function flush() {
				if (types ~ /(^| )deb( |$)/) {
					n = split(uris, u, " "); m = split(suites, s, " ")
					for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print "deb", u[i], s[j], "main"
				}
				types = uris = suites = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			tolower($1) == "types:" { $1 = ""; types = $0 }
			tolower($1) == "uris:" { $1 = ""; uris = $0 }
			tolower($1) == "suites:" { $1 = ""; suites = $0 }
			END { flush() }' "$f"
			;;
		*) sed -E -n 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+([^[:space:]]+).*/deb \2 \3 main/p' "$f" ;;
		esac
	done | awk '$3 ~ /^bookworm(-updates|-security)?$/ && !seen[$2 " " $3]++'
}

step="reading the apt sources"
mapfile -t sources < <(apt_sources)
mirror=$(printf '%s\n' "${sources[@]}" | awk '$3 == "bookworm" { print $2; exit }')
if [ -z "$mirror" ]; then
	finish SKIP "no bookworm source in /etc/apt/sources.list* to make a Debian 12 root from"
	exit 0
fi
if ! curl -fsS --max-time 20 -o /dev/null "${mirror%/}/dists/bookworm/InRelease" 2>>"$log"; then
	finish SKIP "Debian's mirror $mirror cannot be reached: no clean-root check"
	exit 0
fi
printf 'sources: %s\n' "${sources[@]}" >>"$log"

# --- the .deb -------------------------------------------------------------------
step="make deb"
if [ "$prepare" = 1 ]; then
	:
elif [ -z "$deb" ]; then
	[ -f build/obj/Makefile ] || fail "build/obj is not configured: run scripts/build.sh first"
	say "make -C build/obj deb"
	DEB_BUILD_OPTIONS=noautodbgsym nice -n 19 make -C build/obj deb >>"$log" 2>&1 || fail "make deb failed ($log)"
	debs=(build/obj/deb/flexslurm_*_amd64.deb)
	if [ "${#debs[@]}" != 1 ] || [ ! -f "${debs[0]}" ]; then
		fail "make deb made ${#debs[@]} flexslurm_*_amd64.deb files"
	fi
	deb=$top/${debs[0]}
fi
[ "$prepare" = 1 ] || [ -f "$deb" ] || fail "no such .deb: $deb"

# --- the clean root: Debian 12 minbase, then Debian's Slurm and MUNGE with apt -------
remove_root || fail "could not remove the previous $root"
if [ "$refresh" = 1 ] || [ ! -f "$cache" ] || [ -n "$(find "$cache" -mtime +30)" ]; then
	step="mmdebstrap"
	t0=$SECONDS
	rm -f "$cache"
	say "mmdebstrap --variant=minbase bookworm $root ${sources[*]}"
	nice -n 19 mmdebstrap --variant=minbase bookworm "$root" "${sources[@]}" >>"$log" 2>&1 ||
		fail "mmdebstrap failed ($log)"
	step="apt-get install Slurm and MUNGE"
	mount_root
	# No service starts inside the root while packages install (its daemons are ours to start).
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 755 "$root/usr/sbin/policy-rc.d"
	say "apt-get update && apt-get install -y slurm-wlm munge"
	{ in_root apt-get update && in_root nice -n 19 apt-get install -y slurm-wlm munge; } >>"$log" 2>&1 ||
		fail "apt-get install slurm-wlm munge failed in the root ($log)"
	in_root apt-get clean >>"$log" 2>&1
	umount_root
	step="caching the root"
	if ! nice -n 19 tar -C "$root" --one-file-system -cf - . | nice -n 19 zstd -q -T0 -o "$cache.tmp"; then
		fail "could not write $cache"
	fi
	mv "$cache.tmp" "$cache"
	echo "root made and cached in $((SECONDS - t0)) s" >>"$log"
elif [ "$prepare" = 1 ]; then
	:
else
	step="unpacking the cached root"
	t0=$SECONDS
	mkdir -p "$root"
	zstd -q -d -c "$cache" | tar -C "$root" -xf - || fail "could not unpack $cache"
	echo "cached root unpacked in $((SECONDS - t0)) s" >>"$log"
	mount_root
	step="apt-get update"
	in_root apt-get update >>"$log" 2>&1 || fail "apt-get update in the root failed ($log)"
fi
if [ "$prepare" = 1 ]; then
	finish PASS "$cache ready ($(du -h "$cache" | cut -f1))"
	exit 0
fi
mountpoint -q "$root/proc" || mount_root

# --- the package, with apt: its Depends are checked against the root's Slurm ---------
step="apt-get install ./$(basename "$deb")"
t0=$SECONDS
cp "$deb" "$root/tmp/"
say "cd /tmp && apt-get install -y ./$(basename "$deb")"
chroot "$root" /bin/sh -c "cd /tmp && DEBIAN_FRONTEND=noninteractive apt-get install -y ./$(basename "$deb")" >>"$log" 2>&1 ||
	fail "apt-get install ./$(basename "$deb") failed in the root ($log)"
echo "package installed in $((SECONDS - t0)) s" >>"$log"
versions=$(in_root dpkg-query -W -f '${db:Status-Abbrev}${Package}=${Version} ' flexslurm slurmctld slurmd munge)
echo "installed: $versions" >>"$log"
for p in flexslurm slurmctld slurmd munge; do
	grep -q "ii *$p=" <<<"$versions" || fail "$p is not installed in the root: $versions"
done

if [ "$install_only" = 1 ]; then
	finish PASS "$(basename "$deb") installed with apt on a clean Debian 12 (no cluster: --install-only)"
	exit 0
fi

# --- the cluster, with the installed files only -------------------------------------
step="the cluster"
t0=$SECONDS
cp tests/topologies/cluster-nvidia-2gpu.xml "$root/etc/slurm/topology-$node.xml" # the fake node's hardware
cp tests/packages/clean-root-cluster.sh "$root/root/"
# Its network: loopback, plus 127.0.1.1 as the host's address (as Debian's /etc/hosts has it):
# with no IPv4 address but 127.0.0.1, getaddrinfo(AI_ADDRCONFIG) finds nothing for slurmctld to bind.
# The cluster's namespace mounts its own /proc, and the root on itself: "/" is a mount point there,
# as on a real host (the SPANK plugin's isolation makes "/" a slave mount).
umount_root
mount --rbind /dev "$root/dev" && mount --make-rslave "$root/dev"
mount --rbind /sys "$root/sys" && mount --make-rslave "$root/sys"
say "cluster: node $node"
unshare --net --uts --pid --mount --fork --kill-child -- /bin/sh -c \
	'ip link set lo up && ip addr add 127.0.1.1/32 dev lo && hostname "$2" && mount --rbind "$1" "$1" && mount -t proc proc "$1/proc" &&
	exec chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
		/bin/bash /root/clean-root-cluster.sh "$2" "$3"' \
	sh "$root" "$node" "$plugin_dir" >"$dir/cluster.log" 2>&1 &
unshare_pid=$!
wait "$unshare_pid" && cluster_rc=0 || cluster_rc=$?
unshare_pid=""
cat "$dir/cluster.log" >>"$log"
echo "cluster ran $((SECONDS - t0)) s" >>"$log"
result=$(grep -E '^(PASS|FAIL):' "$dir/cluster.log" | tail -n1)
if [ "$cluster_rc" = 0 ] && [ "${result#PASS: }" != "$result" ]; then
	finish PASS "$(basename "$deb") installed with apt on a clean Debian 12 ($(sed 's/ii *//g' <<<"$versions" | tr ' ' '\n' |
		sed -n 's/^\(slurmctld\|munge\)=/\1 /p' | paste -sd, | sed 's/,/, /')); ${result#PASS: }"
else
	fail "${result#FAIL: }${result:+; }cluster exit $cluster_rc ($dir/cluster.log, $dir/logs)"
fi
