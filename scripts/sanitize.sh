#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds the core and the Check unit tests with AddressSanitizer and
# UndefinedBehaviorSanitizer (in build/obj-asan, apart from the plugin build)
# and runs them. Needs the configured Slurm source that scripts/build.sh
# prepared. Last line: Check's summary; exit status 1 on any failure or
# sanitizer report. Not part of scripts/test-all.sh (it adds a full build).
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
slurm_src=$(scripts/setup-debian12.sh | tail -n1) || exit 1
[ -x configure ] || ./autogen.sh || exit 1
obj=build/obj-asan
mkdir -p "$obj"
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
if ! (cd "$obj" && "$top/configure" --quiet --with-slurm-source="$slurm_src" \
	CXXFLAGS="-O1 -g $san" CFLAGS="-O1 -g $san" LDFLAGS="$san") >build/configure-asan.log 2>&1; then
	echo "sanitize: configure failed (build/configure-asan.log)"
	exit 1
fi
# Only the core and the unit tests: the plugins are loaded by Slurm, whose
# daemons are not built with the sanitizers.
if ! make -C "$obj" -j2 src/core/libflexslurm_light.la src/core/libflexslurm_core.la \
	tests/unit/unit_tests >build/make-asan.log 2>&1; then
	tail -n 20 build/make-asan.log
	echo "sanitize: build failed (build/make-asan.log)"
	exit 1
fi
# Leaks are reported too; the unit tests fork (Check), each child checked.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	make -C "$obj" check TESTS=tests/unit/unit_tests >build/check-asan.log 2>&1
rc=$?
log="$obj/tests/unit/unit_tests.log"
grep -a -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$log" | head -n 20
grep -a -E ':[FE]:' "$log" | head -n 20
grep -a -E '^[0-9]+%: Checks' "$log" | tail -n1
[ "$rc" = 0 ] && ! grep -a -q -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$log"
