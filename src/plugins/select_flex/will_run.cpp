// SPDX-License-Identifier: GPL-2.0-or-later
#include "plugins/select_flex/will_run.hpp"

#include "plugins/select_flex/gres_view.hpp"
#include "plugins/select_flex/unit_masks.hpp"

#include "core/model/placement.hpp"

#include <algorithm>
#include <ctime>
#include <map>
#include <set>
#include <utility>
#include <vector>

namespace flexslurm::select_flex
{

namespace
{

// When each vslice and gpu unit held on the candidate nodes comes back: the
// end of its holder's time limit, as cons_tres's own simulation takes it.
NodeEnds unit_ends(job_record_t *self, bitstr_t *nodes)
{
	NodeEnds ends;
	for (auto *job : compat::list_items<job_record_t>(job_list)) {
		// cons_tres's simulation skips a running job without an end time:
		// its units never come back here either.
		if (job == self || !(IS_JOB_RUNNING(job) || IS_JOB_SUSPENDED(job)) || !job->end_time ||
		    !job->node_bitmap || !bit_overlap_any(job->node_bitmap, nodes))
			continue;
		const int64_t end = job->end_time;
		for (const auto &[gres, units] :
		     {std::pair{vslice_id(), &UnitEnds::slices}, std::pair{gpu_id(), &UnitEnds::gpus}})
			for_each_job_unit_set(job, gres, [&](int i, bitstr_t *bits) {
				if (i < bit_size(nodes) && bit_test(nodes, i))
					for_each_set_bit(bits, [&](int u) { (ends[i].*units)[u] = end; });
			});
	}
	return ends;
}

} // namespace

int will_run_when_devices_free(job_record_t *job, bitstr_t *nodes, bitstr_t *candidates, uint32_t min_nodes,
                               uint32_t max_nodes, compat::WillRunWindow window,
                               const std::function<int()> &test, int rc)
{
	const JobAsk ask = job_ask(job, max_nodes);
	if (!(ask.slices || ask.gpus) || ask.borrows || !job_list)
		return rc;
	const time_t now = std::time(nullptr);
	const time_t after = std::max(now, window.start);
	const Placement policy = placement_of(job);
	const std::vector<NodeRequest> requests = node_requests(ask);
	const NodeEnds ends = unit_ends(job, candidates);

	// Per candidate node, when its devices can take the job: now if they
	// can now (a node without slices too: its GPUs are cons_tres's alone);
	// absent if not while only the jobs now running end. The times to try
	// are those of the nodes that cannot now: the test just answered
	// covered the others.
	std::map<int, int64_t> ready;
	std::set<int64_t> times;
	for_each_set_bit(candidates, [&](int i) {
		if (i >= node_record_count || !node_record_table_ptr[i])
			return;
		const std::vector<DeviceView> devices = devices_of(node_record_table_ptr[i]);
		if (devices.empty() || devices_can_hold(devices, requests, policy)) {
			ready[i] = now;
			return;
		}
		const auto e = ends.find(i);
		const UnitEnds none;
		const UnitEnds &held = e != ends.end() ? e->second : none;
		const auto at =
		        devices_ready_at(devices_at(devices, held, after), held, requests, policy, after);
		if (!at)
			return;
		ready[i] = *at;
		if (!window.end || *at <= window.end)
			times.insert(*at);
	});

	// cons_tres's own plan, if it found one (a later start, on other nodes
	// or behind other jobs): a time tried must beat it.
	time_t best = rc == SLURM_SUCCESS ? job->start_time : 0;
	compat::bitmap_holder best_nodes(rc == SLURM_SUCCESS ? bit_copy(nodes) : nullptr);
	bool improved = false;
	int tests = 0;
	for (int64_t t : times) {
		if ((best && t >= best) || tests == will_run_steps)
			break;
		bit_copybits(nodes, candidates);
		uint32_t left = 0;
		for_each_set_bit(candidates, [&](int i) {
			const auto r = ready.find(i);
			if (r == ready.end() || r->second > t)
				bit_clear(nodes, i);
			else
				++left;
		});
		if (left < min_nodes)
			continue;
		++tests;
		int answer = SLURM_ERROR;
		{
			const JobTestMasks masks = masks_for_job_test(job, nodes, min_nodes, max_nodes,
			                                              SELECT_MODE_WILL_RUN, &ends, t);
			if (masks.refusal != SLURM_SUCCESS)
				break;
			answer = test();
		}
		if (answer != SLURM_SUCCESS)
			continue;
		const time_t start = std::max<time_t>(job->start_time, static_cast<time_t>(t));
		if (!best || start < best) {
			best = start;
			best_nodes.reset(bit_copy(nodes));
			improved = true;
		}
		if (start == t)
			break; // a later time cannot start it earlier
	}
	if (!best) {
		bit_copybits(nodes, candidates);
		return rc;
	}
	bit_copybits(nodes, best_nodes.get());
	job->start_time = best;
	if (improved)
		debug2("select/flex: JobId=%u planned at %lld, when devices free up", compat::job_id_of(job),
		       static_cast<long long>(best));
	return SLURM_SUCCESS;
}

} // namespace flexslurm::select_flex
