#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Fails (and shows the diff) if a C/C++ file differs from .clang-format, or a
# source file lacks its SPDX line (scripts/spdx.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format not installed"; exit 1; }
rc=0
diff_file=$(mktemp)
trap 'rm -f "$diff_file"' EXIT
while IFS= read -r f; do
	if ! diff -u "$f" <(clang-format --style=file "$f") >"$diff_file" 2>&1; then
		echo "check-format: $f is not clang-format clean:"
		head -40 "$diff_file"
		rc=1
	fi
done < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.c' 2>/dev/null || find src tests -name '*.[ch]pp' -o -name '*.[ch]')
# Every source file's SPDX-License-Identifier line (scripts/spdx.sh --add adds missing ones).
scripts/spdx.sh || rc=1
[ "$rc" = 0 ] && echo "check-format: clean"
exit "$rc"
