// SPDX-License-Identifier: GPL-2.0-or-later
// The lending controller's admin channel as a client sees it, shared by
// flexslurm-lending and `flexslurm lending` / the slice map: the request
// words, where the controller is (slurm.conf: SlurmctldHost in order,
// AuthInfo socket=, SlurmUser; flexslurm.yaml beside it: lending.port),
// and one Munge-sealed exchange with the first controller that answers.
#pragma once

#include "core/model/admin_request.hpp"
#include "core/util/result.hpp"

#include <string>
#include <vector>

namespace flexslurm::cli
{

// {"status"} or {"reclaim", "JOBID"}: the words after the command name;
// nullopt for anything else (the caller prints its usage).
std::optional<AdminRequest> parse_lending_words(const std::vector<std::string> &words);
inline constexpr const char *lending_usage = "status\n       %s reclaim JOBID\n";

// Where slurm.conf is: SLURM_CONF, else /etc/slurm/slurm.conf, else a
// configless slurmd's copy (/run/slurm/conf/slurm.conf).
std::string slurm_conf_path();

struct LendingReply {
	enum class Kind { Answer, Disabled, Failed };
	Kind kind = Kind::Failed;
	std::string text;     // Answer: the controller's text; else why, one line
	bool refused = false; // Answer: the controller said "error: ..."
};
// Asks the controller; never throws.
LendingReply ask_lending(const AdminRequest &request);

// Whether this process's uid is root or slurm.conf's SlurmUser (the only
// ones the controller answers; others are not sent, so slurmctld does not
// log a refusal for every `flexslurm` a user runs).
bool may_ask_lending();

} // namespace flexslurm::cli
