#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make check: the symbol check over the plugins this build made, against the
# installed Slurm configure found (Makefile.am's AM_TESTS_ENVIRONMENT).
if [ -z "${SLURM_SBINDIR:-}" ]; then
	echo "no installed Slurm to check against (configured --with-slurmctld=no): skipped"
	exit 77
fi
# shellcheck disable=SC2086 # PLUGINS: the .la paths, space separated
exec bash "$CHECK_PLUGIN_SYMBOLS" --sbindir "$SLURM_SBINDIR" --bindir "$SLURM_BINDIR" \
	--lib-path "$SLURM_LIBPATH" $PLUGINS
