// SPDX-License-Identifier: GPL-2.0-or-later
// The core LendingServer's hands on slurmctld: who holds which slice and
// borrow unit (from the job records), what a borrower's record says, and
// the job calls a reclaim makes (signal, requeue, kill, totals, scheduler).
#pragma once

#ifndef FLEXSLURM_COMPAT_SELECT
#define FLEXSLURM_COMPAT_SELECT
#endif
#include "slurm_compat.h"

#include "core/service/lending_server.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace flexslurm::select_flex
{

class SlurmController final : public LendingController
{
public:
	bool in_control() override;
	bool read(ControllerView &view, const std::vector<uint32_t> &check_alive,
	          const std::vector<uint32_t> &reclaimed) override;
	double locked(const std::function<void()> &body) override;
	std::optional<JobFacts> job(uint32_t id) override;
	std::string signal_checkpoint(uint32_t id) override;
	std::string requeue(uint32_t id) override;
	// Slurm requeues a finished batch job as it does a running one.
	std::string requeue_ended(uint32_t id) override { return requeue(id); }
	void kill(uint32_t id) override;
	void record_totals(uint32_t id, const JobTotals &totals) override;
	void kick_scheduler() override;
	std::vector<std::string> resolve(const std::string &host) override;
};

// The job's SystemComment gets its lending totals; a job that has ended
// also gets them into its accounting record (slurmdbd). True if sent there.
// Caller holds the job write lock.
bool write_totals(job_record_t *job, const JobTotals &totals);

} // namespace flexslurm::select_flex
