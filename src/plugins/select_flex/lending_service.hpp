// SPDX-License-Identifier: GPL-2.0-or-later
// Idle reclaim in slurmctld (lending: in flexslurm.yaml): the core's
// LendingServer on SlurmController, started with the plugin, given new
// settings at reconfigure, told which jobs took and gave back borrow units.
#pragma once

#ifndef FLEXSLURM_COMPAT_SELECT
#define FLEXSLURM_COMPAT_SELECT
#endif
#include "slurm_compat.h"

#include "core/io/config.hpp"

#include <functional>
#include <set>
#include <string>

namespace flexslurm::select_flex
{

// init(): starts the server if `cfg` turns lending on.
void start_lending_service(const Config &cfg);
// select_p_reconfigure (under the controller's locks): the lending settings
// of `cfg` take effect. The server's thread is never joined here.
void reload_lending_service(const Config &cfg);
// fini(): stops the server, if it runs.
void stop_lending_service();

// The borrow units of `node` that are lendable now (none with lending off);
// a free slice lent only if `allocated_now(u)` says Slurm has not given it
// to a job since the ledger's last sync.
std::set<int> lendable_units(const std::string &node, const std::function<bool(int)> &allocated_now);

// A running job got its units (select_p_select_nodeinfo_set): the borrow
// units it holds become its loan.
void record_loan(job_record_t *job);
// A job ended (select_p_job_fini): what it lent goes into its record, and
// its lending totals (lent or borrowed) to the accounting storage.
void record_lent_totals(job_record_t *job);

} // namespace flexslurm::select_flex
