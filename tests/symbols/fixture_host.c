/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A stand-in for slurmd in the symbol check's self-test: a program that
 * exports a symbol its plugins may use (as slurmd exports its own). */
int flexslurm_fixture_host_symbol(int x);

int flexslurm_fixture_host_symbol(int x)
{
	return x + 1;
}

int main(void)
{
	return flexslurm_fixture_host_symbol(-1);
}
