// SPDX-License-Identifier: GPL-2.0-or-later
// Runs a program directly (no shell) with a given environment and standard
// input, bounded in time: for the MPS control program, once per step.
#pragma once

#include "core/util/result.hpp"

#include <string>
#include <vector>

namespace flexslurm
{

// Exit status of the program, or why it could not run. Killed after
// `timeout_ms`. `uid`/`gid` >= 0: run as that user. The program inherits
// only stdin (`input`) and stdout/stderr (/dev/null), and no supplementary
// groups.
Result<int> run_command(const std::vector<std::string> &argv, const std::vector<std::string> &env,
                        const std::string &input, int timeout_ms, long uid = -1, long gid = -1);

} // namespace flexslurm
