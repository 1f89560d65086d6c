#!/usr/bin/env bash
# Runs every test of flexslurm on this machine (Debian 12, as root):
#   1. scripts/build.sh: installs what is missing, prepares the matching
#      Slurm source, builds (warnings are errors) and stages the plugins,
#   2. checks formatting,
#   3. Check unit tests of the Slurm-free core,
#   4. integration tests on a real local cluster (munged, slurmctld, slurmd).
# The last line is the total: `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

fail() { echo "test-all: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (daemons, mknod, cgroups)"
plugin_dir=$(scripts/build.sh | tail -n1) || fail "build failed (build/make.log)"
[ -f "$plugin_dir/gres_vslice.so" ] || fail "no gres_vslice.so staged"

unit_passed=0 unit_failed=0
echo "== format"
if scripts/check-format.sh; then unit_passed=$((unit_passed + 1)); else unit_failed=$((unit_failed + 1)); fi

echo "== unit tests (Check)"
make -C build/obj check >build/check.log 2>&1
cat build/obj/tests/unit/unit_tests.log 2>/dev/null | grep -a -E '^[0-9]+%: Checks|:[FE]:' || true
summary=$(grep -a -E '^[0-9]+%: Checks' build/obj/tests/unit/unit_tests.log 2>/dev/null | tail -n1)
if [ -n "$summary" ]; then
	checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$summary")
	failures=$(sed -E 's/.*Failures: ([0-9]+), Errors: ([0-9]+).*/\1+\2/' <<<"$summary")
	failures=$((failures))
	unit_passed=$((unit_passed + checks - failures))
	unit_failed=$((unit_failed + failures))
else
	tail -20 build/check.log
	unit_failed=$((unit_failed + 1))
fi

echo "== integration tests (real cluster)"
python3 tests/integration/run.py --plugin-dir "$plugin_dir" | tee build/integration.log
summary=$(tail -n1 build/integration.log)
int_passed=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p' <<<"$summary")
int_failed=$(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p' <<<"$summary")
[ -n "$int_passed" ] || { int_passed=0; int_failed=1; }

total_passed=$((unit_passed + int_passed))
total_failed=$((unit_failed + int_failed))
echo "unit: $unit_passed passed, $unit_failed failed; integration: $int_passed passed, $int_failed failed"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" = 0 ]
