#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Every source file starts with an SPDX-License-Identifier line (after a
# #! line): C/C++ `// SPDX...`, C headers and linker scripts `/* ... */`,
# shell, Python, make and autoconf `# SPDX...` (`dnl` in configure.ac).
#   scripts/spdx.sh          lists the files without one; fails if any
#   scripts/spdx.sh --add    adds the line to them (one line each, nothing else)
# scripts/check-format.sh runs the check.
set -uo pipefail
cd "$(dirname "$0")/.."
id="SPDX-License-Identifier: GPL-2.0-or-later"

files() {
	git ls-files -- src tests tools scripts bench .ci/run Makefile.am configure.ac autogen.sh \
		debian/rules flexslurm.spec.in man |
		grep -E '\.(c|cpp|h|hpp|inc|map|py|sh)$|^\.ci/run$|^tests/fuzz/Makefile$|^tests/integration/fake-mps-control$|^Makefile\.am$|^configure\.ac$|^debian/rules$|^flexslurm\.spec\.in$|^man/'
}

line_for() {
	case "$1" in
	*.cpp | *.hpp | *.inc) echo "// $id" ;;
	*.c | *.h | *.map) echo "/* $id */" ;;
	configure.ac) echo "dnl $id" ;;
	man/*) echo ".\\\" $id" ;;
	*) echo "# $id" ;;
	esac
}

add=no
[ "${1:-}" = --add ] && add=yes
missing=0
while IFS= read -r f; do
	head -n3 "$f" | grep -q "$id" && continue
	if [ "$add" = no ]; then
		echo "spdx: $f has no '$id' line (scripts/spdx.sh --add)"
		missing=$((missing + 1))
		continue
	fi
	l=$(line_for "$f")
	if head -n1 "$f" | grep -q '^#!'; then
		L="$l" perl -0pi -e 's/\A(#![^\n]*\n)/$1$ENV{L}\n/' "$f"
	else
		L="$l" perl -0pi -e 's/\A/$ENV{L}\n/' "$f"
	fi
	echo "spdx: added to $f"
done < <(files)
[ "$missing" = 0 ]
