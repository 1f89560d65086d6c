// SPDX-License-Identifier: GPL-2.0-or-later
// flexslurm-lending: an admin's view of idle reclaim, and a way to take a
// loan back by hand. It asks select/flex in slurmctld over the channel the
// node agents use, with a Munge credential of the caller (root or
// SlurmUser only):
//
//   flexslurm-lending status          per slice: owner, borrower, since when;
//                                     reclaims in flight; reclaim history
//   flexslurm-lending reclaim JOBID   take back the loans of borrower JOBID
//                                     (checkpoint signal, grace, requeue)
//
// The same as `flexslurm lending ...` (src/cli/flexslurm.cpp); both use
// src/cli/lending_client.*. Exit codes: 0 done, 1 failed, 2 usage.
#include "cli/lending_client.hpp"

#include <cstdio>
#include <string>
#include <vector>

using namespace flexslurm;

int main(int argc, char **argv)
{
	const auto request = cli::parse_lending_words(std::vector<std::string>(argv + 1, argv + argc));
	if (!request) {
		std::fputs("usage: flexslurm-lending ", stderr);
		std::fprintf(stderr, cli::lending_usage, "flexslurm-lending");
		return 2;
	}
	const cli::LendingReply reply = cli::ask_lending(*request);
	if (reply.kind != cli::LendingReply::Kind::Answer) {
		std::fprintf(stderr, "flexslurm-lending: %s\n", reply.text.c_str());
		return 1;
	}
	std::fputs(reply.text.c_str(), stdout);
	return reply.refused ? 1 : 0;
}
