#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make check: the symbol check itself. A plugin whose symbols its host
# provides passes; one referencing flexslurm_no_such_symbol fails, naming it.
set -u
check=${CHECK_PLUGIN_SYMBOLS:?}
host=tests/symbols/fixture_host
failures=0

out=$(bash "$check" --host "$host" tests/symbols/fixture_good.la 2>&1)
rc=$?
echo "$out"
if [ "$rc" != 0 ]; then
	echo "FAIL: fixture_good.so was refused (exit $rc)"
	failures=$((failures + 1))
fi

out=$(bash "$check" --host "$host" tests/symbols/fixture_bad.la 2>&1)
rc=$?
echo "$out"
if [ "$rc" != 1 ]; then
	echo "FAIL: fixture_bad.so was not refused (exit $rc, expected 1)"
	failures=$((failures + 1))
fi
expected="fixture_bad.so: flexslurm_no_such_symbol: not provided by $host"
if ! grep -qxF "$expected" <<<"$out"; then
	echo "FAIL: no line '$expected'"
	failures=$((failures + 1))
fi
if grep -q "flexslurm_fixture_host_symbol" <<<"$out"; then
	echo "FAIL: the host's own symbol was reported missing"
	failures=$((failures + 1))
fi
[ "$failures" = 0 ]
