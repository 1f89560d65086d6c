#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs every test of flexslurm on this machine (Debian 12, as root), one leg
# per supported Slurm release (RELEASES: the release and its leg):
#   debian   Debian's packages (22.05): build, format check, Check unit
#            tests, every integration test on a real local cluster (the
#            accounting ones with Debian's slurmdbd and MariaDB; and
#            test_packages: make deb, installed into an empty root, a slice
#            job on it; make srpm), and tests/packages/clean-root.sh: the
#            .deb installed with apt on a fresh Debian 12 root with Debian's
#            Slurm, a slice job there (one count; skipped, not counted, when
#            Debian's mirror cannot be reached);
#   full     built from ../shared/slurm into build/slurm (reused when
#            built; scripts/build-slurm.sh: -O0, line tables only): the
#            same, but make check without the core's unit tests (they never
#            include Slurm: the Debian leg runs them; configure
#            --disable-unit-tests), test_accounting only where that Slurm has
#            accounting_storage/mysql (configured with libmariadb-dev), and
#            the reclaim loop of test_lending makes RECLAIM_TRIALS_FULL
#            loans instead of 20;
#   debian cgroup/v2  the Debian build: device isolation, limits and the
#            lending hard stop again under Slurm's cgroup/v2;
#   subset   built from ../shared/slurm like full: compile, make check
#            (plugin symbols, man pages) and the integration modules in
#            SUBSET_TESTS (those whose code paths differ by release: GRES,
#            select, SPANK, lending, client commands), to shorten .ci/run;
#   compile  configure + compile + make check (man pages);
#   replay smoke  bench/replay/replay.py --smoke (one count).
# The full suites run two test modules at once (run.py --jobs 2: their
# clusters never share node names; the longest first, by
# tests/integration/durations.json in a clean clone), and make check runs
# with -j: the whole took 73 minutes on two cores here (2026-12-02). The
# Debian leg also runs every fuzz driver of tests/fuzz for 10 s
# (scripts/fuzz.sh: about 2 minutes with its build), one count per target.
# Each leg ends with its own `leg X: N passed, N failed` line; the last line
# is the total `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
shared=$(realpath -m "$top/../shared/slurm")

[ "$(id -u)" = 0 ] || { echo "test-all: must run as root (daemons, mknod, cgroups)"; echo "0 passed, 1 failed"; exit 1; }

# The cgroup/v2 leg's tests (run.py -k): whole modules end with a dot.
CGROUP_V2_TESTS="test_spank.,test_spank_limits.,test_lending.test_agent_hard_stops,test_lending.test_requeued_borrower"

# The subset leg's modules (run.py -k).
# test_lending without its reclaim loop (test_reclaim_when_the_lender_turns_busy_again_and_again:
# 20 loans on the Debian leg, RECLAIM_TRIALS_FULL on the full legs, about 14 s each).
SUBSET_TESTS="test_gres_vslice.,test_gres_forms.,test_select_flex.,test_spank.,test_spank_env.,test_lending.test_borrower,test_lending.test_only_idle,test_lending.test_a_gpu,test_lending.test_agent,test_lending.test_requeued,test_lending.test_slurmctld_killed,test_lending.test_admin,test_lending.test_a_free_slice,test_lending.test_forged,test_lending_placement.,test_controller_restart.,test_host_roles.,test_cli.,test_vendor_lending.,test_mixed_node."

RECLAIM_TRIALS_FULL=5

# The releases of leg $1 (debian, full, subset, compile), from RELEASES.
releases_of() { awk -v leg="$1" '$1 !~ /^#/ && $2 == leg { print $1 }' RELEASES; }
debian=$(releases_of debian)

total_passed=0 total_failed=0
leg_passed=0 leg_failed=0
leg_name=""
# What failed, one line each, printed again just before the total: CI shows
# only the end of a long run.
failures=()

count() { # count PASSED FAILED
	leg_passed=$((leg_passed + $1))
	leg_failed=$((leg_failed + $2))
}

failed() { # failed LINE...: one count failed, LINE remembered for the summary
	count 0 1
	failures+=("leg $leg_name: $*")
}

# Remembers each line of stdin that matches ERE $1 (its count is made elsewhere)
remember() {
	local line
	while IFS= read -r line; do failures+=("leg $leg_name: $line"); done < <(grep -a -E "$1" || true)
}

start_leg() { # name
	leg_name=$1
	echo "== leg $1"
}

# Check's summary of build dir $1 (`make check` already run)
count_unit() {
	local summary checks failures
	summary=$(grep -a -E '^[0-9]+%: Checks' "$1/tests/unit/unit_tests.log" 2>/dev/null | tail -n1)
	if [ -z "$summary" ]; then
		echo "unit tests did not run ($1/tests/unit/unit_tests.log)"
		failed "unit tests did not run ($1/tests/unit/unit_tests.log)"
		return
	fi
	grep -a -E '^[0-9]+%: Checks|:[FE]:' "$1/tests/unit/unit_tests.log"
	checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$summary")
	failures=$(($(sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1+\2/' <<<"$summary")))
	count $((checks - failures)) "$failures"
	remember ':[FE]:' <"$1/tests/unit/unit_tests.log"
}

# scripts/fuzz.sh's last line: "fuzz: N targets, C crashes"
count_fuzz() { # log file
	local line
	line=$(tail -n1 "$1")
	if [[ "$line" =~ ^fuzz:\ ([0-9]+)\ targets,\ ([0-9]+)\ crashes$ ]]; then
		count $((BASH_REMATCH[1] - BASH_REMATCH[2])) "${BASH_REMATCH[2]}"
		remember '^fuzz( [^:]*: (CRASH|no such target)|: build failed)' <"$1"
	else
		failed "fuzz did not finish ($1)"
	fi
}

# tests/packages/clean-root.sh's last line: PASS, FAIL or SKIP (mirror unreachable: not counted)
count_clean_root() { # log file
	case "$(tail -n1 "$1")" in
	"clean-root: PASS"*) count 1 0 ;;
	"clean-root: SKIP"*) ;;
	*) failed "$(tail -n1 "$1")" ;;
	esac
}

count_integration() { # log file
	local line
	line=$(tail -n1 "$1")
	if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		count "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
		remember '^FAIL ' <"$1"
	else
		failed "no summary line in $1"
		remember '^FAIL ' <"$1"
	fi
}

end_leg() { # name seconds
	echo "leg $1: $leg_passed passed, $leg_failed failed (${2}s)"
	total_passed=$((total_passed + leg_passed))
	total_failed=$((total_failed + leg_failed))
	leg_passed=0 leg_failed=0
}

# The automake test harness's summary of build dir $1 (`make check` already
# run): without unit tests (--disable-unit-tests), the plugin symbol check
# (skipped where configure had no slurmctld) and the man pages.
count_checks() {
	local log="$1/test-suite.log" pass bad
	if ! grep -q '^# TOTAL:' "$log" 2>/dev/null; then
		failed "make check did not run ($log)"
		return
	fi
	pass=$(awk '$1 == "#" && $2 == "PASS:" { print $3 }' "$log")
	bad=$(awk '$1 == "#" && ($2 == "FAIL:" || $2 == "ERROR:" || $2 == "XPASS:") { n += $3 } END { print n + 0 }' "$log")
	grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR):' "$log"
	count "$pass" "$bad"
	remember '^(FAIL|ERROR): ' <"$log"
}

# Configures and builds flexslurm in build/obj-$1 against tree $2; $3 is the
# slurmctld to match (or no). Stages the plugins in build/stage-$1. The
# core's unit tests do not depend on the release: the Debian leg runs them.
build_flexslurm() {
	local obj="$top/build/obj-$1"
	mkdir -p "$obj"
	(cd "$obj" && "$top/configure" --quiet --disable-unit-tests --with-slurm-source="$2" --with-slurmctld="$3" \
		CXXFLAGS="-O2 -g -Werror") >"$top/build/configure-$1.log" 2>&1 &&
		make -C "$obj" -j"$(nproc)" >"$top/build/make-$1.log" 2>&1 &&
		make -C "$obj" -j"$(nproc)" check >"$top/build/check-$1.log" 2>&1
	local rc=$?
	rm -rf "$top/build/stage-$1"
	make -C "$obj" install DESTDIR="$top/build/stage-$1" >>"$top/build/make-$1.log" 2>&1 || rc=1
	return $rc
}

# --- the Debian release's packages ------------------------------------------------
t0=$SECONDS
start_leg "$debian (Debian packages)"
if plugin_dir=$(scripts/build.sh | tail -n1) && [ -f "$plugin_dir/gres_vslice.so" ]; then
	if scripts/check-format.sh; then count 1 0; else failed "clang-format: scripts/check-format.sh"; fi
	make -C build/obj -j"$(nproc)" check >build/check.log 2>&1
	count_unit build/obj
	scripts/fuzz.sh "${FUZZ_SECONDS:-10}" | tee build/fuzz.log
	count_fuzz build/fuzz.log
	python3 tests/integration/run.py --plugin-dir "$plugin_dir" --jobs 2 | tee build/integration-22.05.log
	count_integration build/integration-22.05.log
	# The .deb test_packages just built from this tree (newer than this leg's make check), else its own make deb.
	deb=$(find build/obj/deb -maxdepth 1 -name 'flexslurm_*_amd64.deb' -newer build/check.log 2>/dev/null | head -n1)
	tests/packages/clean-root.sh ${deb:+--deb "$deb"} 2>&1 | tee build/clean-root.out
	count_clean_root build/clean-root.out
else
	echo "build failed (build/make.log)"
	failed "build failed (build/make.log)"
fi
end_leg "$debian" $((SECONDS - t0))

# --- the Debian release under Slurm's cgroup/v2 (IgnoreSystemd=yes) -------------------------
# The device isolation and limits modules and the lending tests whose hard stop
# finds a borrower's processes through their cgroup, on nodes vs1, vm1, vl1...
# (tools/localcluster.py cgroup="v2": cgroup2 mounted in slurmd's namespace).
t0=$SECONDS
start_leg "$debian cgroup/v2"
if [ -f "${plugin_dir:-}/gres_vslice.so" ]; then
	python3 tests/integration/run.py --plugin-dir "$plugin_dir" --cgroup v2 --workdir build/test-clusters-cgv2 \
		-k "$CGROUP_V2_TESTS" | tee build/integration-22.05-cgv2.log
	count_integration build/integration-22.05-cgv2.log
else
	echo "no $debian build to run (leg $debian)"
	failed "no $debian build to run"
fi
end_leg "$debian cgroup/v2" $((SECONDS - t0))

# --- trace replay smoke (bench/replay, issue 15): one count ----------------------
# A tiny sample of the public traces through P0 and P2 on one node (~2 minutes),
# so the benchmark's pipeline cannot rot. Without ../shared/traces it prints one
# line and passes.
t0=$SECONDS
start_leg "replay smoke"
if [ -f "${plugin_dir:-}/gres_vslice.so" ] &&
	python3 bench/replay/replay.py --smoke --plugin-dir "$plugin_dir" 2>&1 | tee build/replay-smoke.log; then
	count 1 0
else
	echo "replay smoke failed (build/replay-smoke.log)"
	failed "replay smoke failed: $(tail -n1 build/replay-smoke.log)"
fi
end_leg "replay smoke" $((SECONDS - t0))

# --- the "full" releases, built from source: the full suite ------------------------
for v in $(releases_of full) $(releases_of subset); do
	only=()
	if [ "$(awk -v r="$v" '$1 == r { print $2 }' RELEASES)" = subset ]; then only=(-k "$SUBSET_TESTS"); fi
	t0=$SECONDS
	start_leg "$v (built from $shared)"
	if dir=$(scripts/build-slurm.sh "$shared/slurm-$v.tar.xz" | tail -n1) &&
		build_flexslurm "$v" "$dir/src" "$dir/prefix/sbin/slurmctld"; then
		count_checks "build/obj-$v"
		plugin_dir=$(dirname "$(find "build/stage-$v" -name gres_vslice.so | head -n1)")
		# slurmdbd stores through accounting_storage/mysql, built only where
		# Slurm's configure found libmariadb-dev: else no accounting tests.
		skip=test_packages # Debian's .deb: built and installed on the Debian leg only
		[ -f "$dir/prefix/lib/slurm/accounting_storage_mysql.so" ] || skip=test_packages,test_accounting
		FLEXSLURM_RECLAIM_TRIALS=$RECLAIM_TRIALS_FULL python3 tests/integration/run.py --plugin-dir "$plugin_dir" --slurm-prefix "$dir/prefix" --jobs 2 \
			--workdir "build/test-clusters-$v" --skip "$skip" "${only[@]}" |
			tee "build/integration-$v.log"
		count_integration "build/integration-$v.log"
	else
		echo "Slurm $v or flexslurm against it did not build (build/slurm, build/make-$v.log)"
		failed "Slurm $v or flexslurm against it did not build (build/slurm, build/make-$v.log)"
	fi
	end_leg "$v" $((SECONDS - t0))
done

# --- the "compile" releases: configure + compile + make check ----------------------
for v in $(releases_of compile); do
	t0=$SECONDS
	start_leg "$v (compile and make check)"
	if dir=$(scripts/build-slurm.sh --configure-only "$shared/slurm-$v.tar.xz" | tail -n1) &&
		build_flexslurm "$v" "$dir/src" no; then
		count 1 0 # it compiled, warnings as errors
		count_checks "build/obj-$v"
	else
		echo "flexslurm did not build against $v (build/make-$v.log)"
		tail -20 "build/make-$v.log" 2>/dev/null
		failed "flexslurm did not build against $v (build/make-$v.log)"
	fi
	end_leg "$v" $((SECONDS - t0))
done

if [ "${#failures[@]}" -gt 0 ]; then
	echo "== what failed"
	printf '%s\n' "${failures[@]}"
fi
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" = 0 ]
