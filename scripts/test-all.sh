#!/usr/bin/env bash
# Runs every test of flexslurm on this machine (Debian 12, as root):
#   1. installs what is missing and prepares the matching Slurm source,
#   2. builds (warnings are errors) and checks formatting,
#   3. Check unit tests of the Slurm-free core,
#   4. integration tests on a real local cluster (munged, slurmctld, slurmd).
# The last line is the total: `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

fail() { echo "test-all: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (daemons, mknod, cgroups)"
slurm_src=$(scripts/setup-debian12.sh | tail -n1) || fail "setup failed"

./autogen.sh || fail "autogen failed"
mkdir -p build/obj
(cd build/obj && "$top/configure" --quiet --with-slurm-source="$slurm_src" CXXFLAGS="-O2 -g -Werror") ||
	fail "configure failed"
make -C build/obj -j"$(nproc)" >build/make.log 2>&1 || { tail -40 build/make.log; fail "build failed"; }
rm -rf build/stage
make -C build/obj install DESTDIR="$top/build/stage" >>build/make.log 2>&1 || fail "make install failed"
plugin_dir=$(dirname "$(find build/stage -name gres_vslice.so | head -n1)")

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
