#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds the fuzz drivers of tests/fuzz (in build/fuzz, apart from the
# plugin build) and runs each for a short time. Usage:
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 10 s, every target)
# Environment: FUZZ_ENGINE=libfuzzer|standalone (default: libfuzzer where
# clang links -fsanitize=fuzzer, else the standalone mutation loop built
# with g++), FUZZ_CXX (the compiler), FUZZ_JOBS (targets run at once,
# default 2). Each target starts from tests/fuzz/corpus/<target> and keeps
# what it finds in build/fuzz/corpus/<target>; a crashing input is left in
# build/fuzz/artifacts/. One line per target, then the last line:
#   fuzz: N targets, C crashes
# (exit status 1 if C > 0 or the build failed). Longer campaigns:
# tests/fuzz/README.md.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
shift $(($# > 0 ? 1 : 0))
out=build/fuzz
mkdir -p "$out/artifacts" "$out/logs"

engine=${FUZZ_ENGINE:-}
if [ -z "$engine" ]; then
	cxx=${FUZZ_CXX:-$(command -v clang++-14 || command -v clang++ || true)}
	engine=standalone
	if [ -n "$cxx" ]; then
		printf '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t *, size_t) { return 0; }\n' \
			>"$out/probe.cpp"
		if "$cxx" -fsanitize=fuzzer,address,undefined "$out/probe.cpp" -o "$out/probe" >/dev/null 2>&1; then
			engine=libfuzzer
			export FUZZ_CXX=$cxx
		fi
	fi
fi
[ "$engine" = standalone ] && export FUZZ_CXX=${FUZZ_CXX:-g++}
bin="$out/$engine"

if ! make -f tests/fuzz/Makefile ENGINE="$engine" OUT="$bin" -j"${FUZZ_JOBS:-2}" >"$out/make.log" 2>&1; then
	tail -n 20 "$out/make.log"
	echo "fuzz: build failed ($engine, $out/make.log)"
	echo "fuzz: 0 targets, 1 crashes"
	exit 1
fi

if [ $# -gt 0 ]; then
	targets=("$@")
else
	mapfile -t targets < <(ls tests/fuzz/fuzz_*.cpp | sed -E 's|.*/fuzz_(.*)\.cpp|\1|')
fi

# Runs one target; prints its line; exit status 0 if no crash.
run_target() {
	local t=$1 log="$out/logs/$1.log" runs
	mkdir -p "$out/corpus/$t"
	rm -f "$out/artifacts/$t-"* "$out/artifacts/crash-standalone-fuzz_$t"
	if [ "$engine" = libfuzzer ]; then
		"$bin/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
			-print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
			"$out/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
	else
		(cd "$out/artifacts" && "../../../$bin/fuzz_$t" -max_total_time="$seconds" -seed="$RANDOM" \
			-max_len=8192 "../../../tests/fuzz/corpus/$t") >"$log" 2>&1
	fi
	local rc=$?
	runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p; s/^Done ([0-9]+) runs.*/\1/p' "$log" | tail -n1)
	if [ "$rc" = 0 ]; then
		echo "fuzz $t: ok, ${runs:-?} runs in ${seconds} s"
		return 0
	fi
	echo "fuzz $t: CRASH (exit $rc), log $log, input in $out/artifacts/:"
	grep -a -E -m1 -A12 'ERROR|runtime error|invariant failed|deadly signal' "$log" | head -n 20
	return 1
}

crashes=0
running=0
declare -A pid_of
for t in "${targets[@]}"; do
	if [ ! -x "$bin/fuzz_$t" ]; then
		echo "fuzz $t: no such target"
		crashes=$((crashes + 1))
		continue
	fi
	run_target "$t" >"$out/logs/$t.line" &
	pid_of[$t]=$!
	running=$((running + 1))
	if [ "$running" -ge "${FUZZ_JOBS:-2}" ]; then
		wait -n
		running=$((running - 1))
	fi
done
for t in "${!pid_of[@]}"; do
	wait "${pid_of[$t]}" || true
done
# Results in target order, counted from each target's line.
for t in "${targets[@]}"; do
	[ -f "$out/logs/$t.line" ] || continue
	cat "$out/logs/$t.line"
	grep -q '^fuzz [^ ]*: ok' "$out/logs/$t.line" || crashes=$((crashes + 1))
	rm -f "$out/logs/$t.line"
done
echo "fuzz: ${#targets[@]} targets, $crashes crashes"
[ "$crashes" = 0 ]
