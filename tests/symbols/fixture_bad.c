/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A plugin that references a symbol no host provides: the symbol check must
 * name it and fail (a plugin like it would fail at dlopen, in srun or slurmd). */
int flexslurm_fixture_host_symbol(int x);
int flexslurm_no_such_symbol(int x);
int fixture_entry(int x);

int fixture_entry(int x)
{
	return flexslurm_fixture_host_symbol(flexslurm_no_such_symbol(x));
}
