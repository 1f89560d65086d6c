// SPDX-License-Identifier: GPL-2.0-or-later
// What select/flex hides from cons_tres, for the length of one call: the
// GRES units a job must not get (job_test), the gpu units Slurm would pick
// itself when it allocates a job (select_nodeinfo_set), and the borrow
// units whose slices are not lendable now. Caller holds the controller's
// job and node locks (every select_p_* call does).
#pragma once

#ifndef FLEXSLURM_COMPAT_SELECT
#define FLEXSLURM_COMPAT_SELECT
#endif
#include "slurm_compat.h"

#include "core/model/placement.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <vector>

namespace flexslurm::select_flex
{

// Hides units of one GRES on one node by counting them allocated, exactly as
// a job holding them would, and gives back exactly those units when it goes
// away: whatever the wrapped call allocated meanwhile stays (job_test
// allocates nothing; select_p_select_nodeinfo_set allocates the job).
class HiddenUnits
{
public:
	explicit HiddenUnits(gres_node_state_t *ns) : ns_(ns) {}
	HiddenUnits(const HiddenUnits &) = delete;
	HiddenUnits &operator=(const HiddenUnits &) = delete;
	HiddenUnits(HiddenUnits &&other) noexcept;
	HiddenUnits &operator=(HiddenUnits &&) = delete;
	~HiddenUnits();

	// Hides each of `units` not allocated yet (one outside the node's units:
	// none), counted in the node's, its topology entries' and types' totals
	// in one pass per entry.
	void hide(const std::vector<int> &units);
	void hide(int unit) { hide(std::vector<int>{unit}); }

private:
	gres_node_state_t *ns_;
	std::vector<int> units_;
	std::vector<uint64_t> topo_counted_; // per topology entry: the hidden units counted in it
};

// What job_test hides for a job on the candidate `nodes`, or the error
// job_test answers when the job cannot be placed at all.
struct JobTestMasks {
	int refusal = SLURM_SUCCESS;
	std::vector<HiddenUnits> hidden;
};
// The placement policy of the job's partition (placement: in flexslurm.yaml).
Placement placement_of(const job_record_t *job);

// `ends` (with `at`): hide as the devices will be at `at`, units whose holder
// ends by then counted free (backfill's plan of a later start, will_run.*).
// `answer_unfit` (RUN_NOW without preemption: the main scheduler's test):
// when select/flex's own view of the devices is all cons_tres would see
// through the masks (a known slice count or untyped gpu count per node, no
// borrowing, every unit on a device) and no candidate node's devices, or
// not those of a node the job requires (-w), can take the job now, the
// refusal is SLURM_ERROR ("not now"): cons_tres's test could find no node.
JobTestMasks masks_for_job_test(job_record_t *job, bitstr_t *nodes, uint32_t min_nodes, uint32_t max_nodes,
                                uint16_t mode, const NodeEnds *ends = nullptr, int64_t at = 0,
                                bool answer_unfit = false);

// What cons_tres's job_test answers (`test`, on `nodes`) while the units
// masks_for_job_test hides stay hidden; they come back, whatever the test
// allocated staying, before this returns. A job that cannot be placed at
// all: the refusal, `test` not run and `*refused` (where given) set.
int test_with_units_hidden(job_record_t *job, bitstr_t *nodes, uint32_t min_nodes, uint32_t max_nodes,
                           uint16_t mode, const std::function<int()> &test, bool *refused = nullptr,
                           const NodeEnds *ends = nullptr, int64_t at = 0, bool answer_unfit = false);

// For select_p_select_nodeinfo_set of a running job: the gpu units Slurm
// must not pick itself (devices whose slices are in use or given to it).
std::vector<HiddenUnits> mask_for_allocation(job_record_t *job);

} // namespace flexslurm::select_flex
