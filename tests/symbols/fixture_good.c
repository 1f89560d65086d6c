/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A plugin whose undefined symbols its host (fixture_host) and libc provide. */
#include <string.h>

int flexslurm_fixture_host_symbol(int x);
int fixture_entry(const char *s);

int fixture_entry(const char *s)
{
	return flexslurm_fixture_host_symbol((int)strlen(s));
}
