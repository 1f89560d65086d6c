// SPDX-License-Identifier: GPL-2.0-or-later
#include "plugins/select_flex/will_run.hpp"

#include "plugins/select_flex/gres_view.hpp"
#include "plugins/select_flex/unit_masks.hpp"

#include "core/model/placement.hpp"

#include <algorithm>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

namespace flexslurm::select_flex
{

namespace
{

// When each vslice and gpu unit held on a node comes back: the end of its
// holder's time limit, as cons_tres's own simulation takes it. Every node
// with a running job, but `self`'s units (a running job's own) left out.
NodeEnds unit_ends(const job_record_t *self)
{
	NodeEnds ends;
	for (auto *job : compat::list_items<job_record_t>(job_list)) {
		// cons_tres's simulation skips a running job without an end time:
		// its units never come back here either.
		if (job == self || !(IS_JOB_RUNNING(job) || IS_JOB_SUSPENDED(job)) || !job->end_time ||
		    !job->node_bitmap)
			continue;
		const int64_t end = job->end_time;
		for (const auto &[gres, units] :
		     {std::pair{vslice_id(), &UnitEnds::slices}, std::pair{gpu_id(), &UnitEnds::gpus}})
			for_each_job_unit_set(job, gres, [&](int i, bitstr_t *bits) {
				for_each_set_bit(bits, [&](int u) { (ends[i].*units)[u] = end; });
			});
	}
	return ends;
}

// The running jobs' unit ends, kept from one will-run test to the next:
// backfill tests a job at each of its start-time windows, and every job it
// tries, while the running jobs stay the same, and reading them walks every
// job record. Slurm stamps each change of a job record (a start, an end, a
// signal, a new time limit) in last_job_update, to the second: the ends read
// are reused while it holds the value it had then, and only if that value
// was older than the second they were read in (another change in that same
// second would leave it as it was). The callers hold the job read lock at
// least, so the stamp does not move under them; the mutex is for two
// readers at once (backfill and an RPC's will-run).
std::shared_ptr<const NodeEnds> running_unit_ends(const job_record_t *self)
{
	if (IS_JOB_RUNNING(self) || IS_JOB_SUSPENDED(self) || !&last_job_update)
		return std::make_shared<const NodeEnds>(unit_ends(self));
	static std::mutex mutex;
	static std::shared_ptr<const NodeEnds> kept;
	static time_t kept_stamp = 0;
	const std::lock_guard<std::mutex> guard(mutex);
	const time_t stamp = last_job_update;
	if (kept && kept_stamp == stamp)
		return kept;
	auto ends = std::make_shared<const NodeEnds>(unit_ends(self));
	const bool reusable = stamp != 0 && stamp < std::time(nullptr);
	kept = reusable ? ends : nullptr;
	kept_stamp = stamp;
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
	const std::shared_ptr<const NodeEnds> kept_ends = running_unit_ends(job);
	const NodeEnds &ends = *kept_ends;

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
