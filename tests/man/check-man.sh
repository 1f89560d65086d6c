#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make check: every manual page in MANS (Makefile.am's dist_man_MANS, under
# top_srcdir) renders with groff's man macros without a single warning
# (groff -ww: all warnings), as man(1) would show it.
set -uo pipefail
: "${MANS:?set by make check}" "${top_srcdir:?set by make check}"
command -v groff >/dev/null || { echo "groff not installed: skipped"; exit 77; }
rc=0
for m in $MANS; do
	out=$(groff -man -ww -Tutf8 -z "$top_srcdir/$m" 2>&1)
	if [ -n "$out" ]; then
		echo "FAIL $m:"
		echo "$out"
		rc=1
	elif ! grep -q '^\.TH ' "$top_srcdir/$m"; then
		echo "FAIL $m: no .TH line"
		rc=1
	else
		echo "ok $m"
	fi
done
exit $rc
