#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs inside the clean Debian 12 root of tests/packages/clean-root.sh, as
# the first process of its own PID, network (loopback only), UTS and mount
# namespaces: a one-node cluster from the installed packages only. Writes
# slurm.conf, gres.conf and cgroup.conf (Debian ships none), turns on the
# flexslurm package's own files (/etc/slurm/flexslurm.yaml plus the fake
# node's inventory, the plugstack.conf.d drop-in's `required` line), starts
# munged, slurmctld and slurmd (Debian's PluginDir: the package's plugins),
# submits `sbatch --gres=vslice:1` as an ordinary user and checks the job's
# slice environment and which fake device it could open. Stops every daemon
# it started by PID at exit. Last line: "PASS: ..." or "FAIL: ...".
#   clean-root-cluster.sh NODE PLUGINDIR
set -uo pipefail
node=$1
plugin_dir=$2
devdir=/var/lib/flexslurm-check/dev # the fake accelerators
user=flexcheck

declare -A pid=()
order=()

stop_all() {
	local name i p
	trap - EXIT INT TERM
	# Reverse start order: slurmd, slurmctld, munged.
	for ((i = ${#order[@]} - 1; i >= 0; i--)); do
		name=${order[i]}
		p=${pid[$name]}
		kill -0 "$p" 2>/dev/null || continue
		kill -TERM "$p"
		for _ in $(seq 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
		if kill -0 "$p" 2>/dev/null; then
			echo "$name ($p) ignored SIGTERM: SIGKILL"
			kill -KILL "$p"
		fi
		wait "$p" 2>/dev/null
		echo "stopped $name ($p)"
	done
}
trap stop_all EXIT
trap 'echo "FAIL: interrupted"; exit 1' INT TERM

fail() {
	echo "--- slurmctld.log"
	tail -n 30 /var/log/slurm/slurmctld.log 2>/dev/null
	echo "--- slurmd.log"
	tail -n 30 /var/log/slurm/slurmd.log 2>/dev/null
	echo "FAIL: $*"
	exit 1
}

start() { # name argv...: in the background, by PID
	local name=$1
	shift
	"$@" >"/var/log/slurm/$name.stdout" 2>&1 </dev/null &
	pid[$name]=$!
	order+=("$name")
	echo "started $name (${pid[$name]}): $*"
}

wait_for() { # seconds what command...: fails at once when a daemon died
	local t=$1 what=$2 name
	shift 2
	for _ in $(seq $((t * 2))); do
		"$@" >/dev/null 2>&1 && return 0
		for name in "${order[@]}"; do
			kill -0 "${pid[$name]}" 2>/dev/null || { tail -n 5 "/var/log/slurm/$name.stdout"; fail "$name exited (waiting for $what)"; }
		done
		sleep 0.5
	done
	fail "no $what after $t s"
}

# --- files -----------------------------------------------------------------------
grep -q "^cgroup /sys/fs/cgroup/devices " /proc/mounts || fail "no cgroup v1 devices hierarchy at /sys/fs/cgroup/devices"
printf '127.0.0.1 localhost\n127.0.1.1 %s\n' "$node" >/etc/hosts
install -d -m 0755 "$devdir"
# Real character devices every process may open (full, random): open() succeeds where the job's
# cgroup allows them and fails where it does not.
mknod -m 0666 "$devdir/nvidia0" c 1 7
mknod -m 0666 "$devdir/nvidia1" c 1 8

cat >/etc/slurm/slurm.conf <<EOF
ClusterName=flexcheck
SlurmctldHost=$node
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
GresTypes=gpu,vslice
SelectType=select/flex
SelectTypeParameters=CR_Core
TaskPlugin=task/cgroup
ProctrackType=proctrack/cgroup
JobAcctGatherType=jobacct_gather/none
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerParameters=sched_interval=1
MailProg=/bin/true
MpiDefault=none
NodeName=$node CPUs=2 RealMemory=1000 Gres=gpu:t4:2,vslice:t4:8 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
printf 'AutoDetect=off\nNodeName=%s Name=gpu Type=t4 File=%s/nvidia[0-1]\n' "$node" "$devdir" >/etc/slurm/gres.conf
printf 'CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nConstrainDevices=yes\nConstrainCores=no\nConstrainRAMSpace=no\n' \
	>/etc/slurm/cgroup.conf
# The package's flexslurm.yaml (the built-in defaults: 4 slices of 25 % per device) plus this fake
# node's hardware: its hwloc topology and where its device nodes are.
printf 'inventory:\n  topology_xml: /etc/slurm/topology-%%n.xml\n  device_dir: %s\n' "$devdir" >>/etc/slurm/flexslurm.yaml
# The package's SPANK drop-in, turned on as docs/admin.md says: remove the "# " before "required".
dropin=/etc/slurm/plugstack.conf.d/flexslurm.conf
sed -i 's/^# required /required /' "$dropin"
grep -q "^required $plugin_dir/spank_flexslurm.so" "$dropin" || fail "$dropin has no required line for $plugin_dir/spank_flexslurm.so"
grep -qx 'include /etc/slurm/plugstack.conf.d/\*.conf' /etc/slurm/plugstack.conf ||
	fail "/etc/slurm/plugstack.conf does not include plugstack.conf.d/*.conf"
for so in gres_vslice select_flex spank_flexslurm; do
	dpkg -S "$plugin_dir/$so.so" | grep -q '^flexslurm:' || fail "$plugin_dir/$so.so is not the package's"
done
echo "--- /etc/slurm/flexslurm.yaml (settings)"
grep -v '^ *#' /etc/slurm/flexslurm.yaml | grep .
echo "--- $dropin (settings)"
grep -v '^ *#' "$dropin"
install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
install -d /var/spool/slurmd
id "$user" >/dev/null 2>&1 || useradd -m "$user"

# --- daemons ----------------------------------------------------------------------
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
start munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
wait_for 20 "MUNGE credential" sh -c 'munge -n | unmunge'
start slurmctld slurmctld -D
wait_for 60 "slurmctld answering" scontrol ping
start slurmd slurmd -D
idle() { sinfo -h -n "$node" -o %t | grep -qx idle; }
wait_for 120 "idle node $node" idle
for d in slurmctld:select_flex.so slurmd:gres_vslice.so; do
	grep -q "$plugin_dir/${d#*:}" "/proc/${pid[${d%%:*}]}/maps" || fail "${d%%:*} has not loaded $plugin_dir/${d#*:}"
done
echo "slurmctld and slurmd run with $plugin_dir/select_flex.so and gres_vslice.so"

# --- the slice job, as an ordinary user ---------------------------------------------
cat >/home/$user/job.sh <<EOF
#!/bin/bash
env | sort
echo "LS \$(ls $devdir | tr '\n' ' ')"
for d in nvidia0 nvidia1; do
	if head -c1 $devdir/\$d >/dev/null 2>&1; then echo "OPEN \$d yes"; else echo "OPEN \$d no"; fi
done
EOF
chown "$user:" "/home/$user/job.sh"
out=$(setpriv --reuid="$user" --regid="$user" --init-groups env HOME="/home/$user" \
	sbatch --parsable --gres=vslice:1 -D "/home/$user" -o "/home/$user/job-%j.out" "/home/$user/job.sh" 2>&1) ||
	fail "sbatch --gres=vslice:1: $out"
job=${out%%;*}
echo "submitted job $job: sbatch --gres=vslice:1"
state() { scontrol show job "$job" -o | sed -n 's/.* JobState=\([A-Z_]*\).*/\1/p'; }
done_() { case "$(state)" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL) true ;; *) false ;; esac; }
wait_for 180 "end of job $job" done_
output=$(cat "/home/$user/job-$job.out" 2>/dev/null)
echo "--- job $job: $(state)"
echo "$output"
[ "$(state)" = COMPLETED ] || fail "job $job ended $(state)"

var() { sed -n "s/^$1=//p" <<<"$output"; }
got="$(var SLURM_VSLICES_ON_NODE) $(var SLURM_VSLICE_COUNTS) $(var SLURM_VSLICE_COMPUTE_PERCENT) $(var CUDA_VISIBLE_DEVICES)"
[ "$got" = "1 1 25 0" ] ||
	fail "job $job: SLURM_VSLICES_ON_NODE SLURM_VSLICE_COUNTS SLURM_VSLICE_COMPUTE_PERCENT CUDA_VISIBLE_DEVICES = '$got', not '1 1 25 0'"
dev=$(var SLURM_VSLICE_DEVICES)
case "$dev" in 0 | 1) ;; *) fail "job $job: SLURM_VSLICE_DEVICES='$dev'" ;; esac
seen=$(sed -n 's/^LS //p' <<<"$output" | tr ' ' '\n' | grep -E '^nvidia[0-9]+$' | paste -sd' ')
[ "$seen" = "nvidia$dev" ] || fail "job $job sees device nodes '$seen', not only nvidia$dev"
opened=$(sed -n 's/^OPEN \(nvidia[0-9]*\) yes$/\1/p' <<<"$output" | paste -sd' ')
[ "$opened" = "nvidia$dev" ] || fail "job $job could open '$opened', not only nvidia$dev"
echo "PASS: job $job on $node (select/flex, gres/vslice, SPANK from $plugin_dir): SLURM_VSLICES_ON_NODE=1, CUDA_VISIBLE_DEVICES=0, SLURM_VSLICE_DEVICES=$dev, sees and opens only nvidia$dev"
