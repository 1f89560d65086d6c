// SPDX-License-Identifier: GPL-2.0-or-later
#include "plugins/select_flex/will_run.hpp"

#include "plugins/select_flex/gres_view.hpp"
#include "plugins/select_flex/unit_masks.hpp"

#include "core/model/placement.hpp"

#include <algorithm>
#include <ctime>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <utility>
#include <vector>

namespace flexslurm::select_flex
{

namespace
{

// The vslice and gpu units a running job holds.
std::vector<HeldUnit> held_units(job_record_t *job)
{
	std::vector<HeldUnit> units;
	for (const auto &[gres, gpu] : {std::pair{vslice_id(), false}, std::pair{gpu_id(), true}})
		for_each_job_unit_set(job, gres, [&](int i, bitstr_t *bits) {
			for_each_set_bit(bits, [&](int u) { units.push_back({i, gpu, u}); });
		});
	return units;
}

// The running jobs, but `self` (a running job's own units are left out):
// those whose units come back at the end of their time limit, as cons_tres's
// own simulation takes it, which skips a running job without an end time
// (its units never come back here either).
struct Running {
	std::vector<HeldBy> by;
	std::vector<job_record_t *> jobs;
};
Running running_jobs(const job_record_t *self)
{
	struct Walk {
		const job_record_t *self;
		Running out;
		std::exception_ptr failed;
	} walk{self, {}, nullptr};
	// One walk under the list's read lock, not a lock per item: the job
	// list holds every pending job too. Nothing thrown crosses Slurm's list
	// code.
	list_for_each_ro(
	        job_list,
	        [](void *item, void *arg) -> int {
		        auto *job = static_cast<job_record_t *>(item);
		        auto *w = static_cast<Walk *>(arg);
		        if (job == w->self || !(IS_JOB_RUNNING(job) || IS_JOB_SUSPENDED(job)) ||
		            !job->end_time || !job->node_bitmap || !job->job_resrcs)
			        return 0;
		        try {
			        w->out.by.push_back(
			                {job->job_id, static_cast<int64_t>(job->start_time),
			                 static_cast<int64_t>(job->end_time),
			                 static_cast<uint64_t>(reinterpret_cast<uintptr_t>(job->job_resrcs)),
			                 job->job_resrcs->nhosts, static_cast<int64_t>(job->resize_time)});
			        w->out.jobs.push_back(job);
		        } catch (...) {
			        w->failed = std::current_exception();
			        return -1;
		        }
		        return 0;
	        },
	        &walk);
	if (walk.failed)
		std::rethrow_exception(walk.failed);
	return std::move(walk.out);
}

// The reading kept between will-run tests (running_unit_ends).
std::mutex kept_mutex;
RunningEnds kept;
std::shared_ptr<const NodeEnds> last;
time_t kept_stamp = 0;

// When the units held on each node come back. The reading is kept from one
// will-run test to the next (RunningEnds): backfill tests a job at each of
// its start-time windows, and every job it tries, while the running jobs
// stay the same. Slurm stamps each change of a job record (a start, an end,
// a signal, a new time limit, a pending job's reason) in last_job_update, to
// the second: while it holds the value it had at the last reading, and that
// value was older than the second of that reading (another change in that
// same second would leave it as it was), the last reading stands without a
// walk of the job list. The callers hold the job read lock at least, so no
// job record changes under them; the mutex is for two readers at once
// (backfill and an RPC's will-run).
std::shared_ptr<const NodeEnds> running_unit_ends(job_record_t *self)
{
	auto read = [](RunningEnds &ends, const job_record_t *left_out) {
		Running running = running_jobs(left_out);
		return ends.read(std::move(running.by),
		                 [&](size_t i) { return held_units(running.jobs[i]); });
	};
	if (IS_JOB_RUNNING(self) || IS_JOB_SUSPENDED(self) || !&last_job_update) {
		RunningEnds once;
		return read(once, self);
	}
	const std::lock_guard<std::mutex> guard(kept_mutex);
	const time_t stamp = last_job_update;
	if (last && kept_stamp == stamp)
		return last;
	auto ends = read(kept, nullptr);
	const bool reusable = stamp != 0 && stamp < std::time(nullptr);
	last = reusable ? ends : nullptr;
	kept_stamp = stamp;
	return ends;
}

// When each candidate node's devices can take the job (now if they can now,
// a node without slices too: its GPUs are cons_tres's alone; absent if not
// while only the jobs now running end), from the running jobs' unit ends.
struct DevicePlan {
	std::shared_ptr<const NodeEnds> ends;
	std::map<int, int64_t> ready;
	std::set<int64_t> times; // those of the nodes that cannot now, within the window
	bool any_now = false;
	bool every_node = true; // every candidate node has a time
	bool complete = true;   // false: stopped at the first node that can take it now
	// The earliest time min_nodes candidates' devices can take the job: no
	// node can start it earlier, whatever cons_tres's simulation finds,
	// when the request is known per node (0: none).
	int64_t lower_bound = 0;
};

std::optional<DevicePlan> device_plan(job_record_t *job, bitstr_t *candidates, uint32_t min_nodes,
                                      uint32_t max_nodes, compat::WillRunWindow window, time_t now,
                                      bool stop_at_now)
{
	const JobAsk ask = job_ask(job, max_nodes);
	if (!(ask.slices || ask.gpus) || ask.borrows || !job_list)
		return std::nullopt;
	const time_t after = std::max(now, window.start);
	const Placement policy = placement_of(job);
	const std::vector<NodeRequest> requests = node_requests(ask);
	DevicePlan plan;
	for_each_set_bit(candidates, [&](int i) {
		if (!plan.complete)
			return;
		if (i >= node_record_count || !node_record_table_ptr[i]) {
			plan.every_node = false;
			return;
		}
		const std::vector<DeviceView> devices = devices_of(node_record_table_ptr[i]);
		if (devices.empty() || devices_can_hold(devices, requests, policy)) {
			plan.ready[i] = now;
			plan.any_now = true;
			plan.complete = !stop_at_now;
			return;
		}
		if (!plan.ends)
			plan.ends = running_unit_ends(job);
		const auto e = plan.ends->find(i);
		const UnitEnds none;
		const UnitEnds &held = e != plan.ends->end() ? e->second : none;
		const auto at =
		        devices_ready_at(devices_at(devices, held, after), held, requests, policy, after);
		if (!at) {
			plan.every_node = false;
			return;
		}
		plan.ready[i] = *at;
		if (!window.end || *at <= window.end)
			plan.times.insert(*at);
	});
	const bool known = count_known_per_node(ask);
	if (known && plan.every_node && !plan.any_now && min_nodes >= 1 && plan.ready.size() >= min_nodes) {
		std::vector<int64_t> times;
		for (const auto &[node, at] : plan.ready)
			times.push_back(at);
		std::nth_element(times.begin(), times.begin() + (min_nodes - 1), times.end());
		plan.lower_bound = times[min_nodes - 1];
	}
	return plan;
}

// One cons_tres will-run test as of `t`: `nodes` cut from `candidates` to
// the nodes ready by then, the units hidden as they will be then. Its
// start (no earlier than `t`), or nullopt.
std::optional<time_t> test_at(job_record_t *job, bitstr_t *nodes, bitstr_t *candidates, uint32_t min_nodes,
                              uint32_t max_nodes, const DevicePlan &plan, int64_t t,
                              const std::function<int()> &test, int &tests, bool &refused)
{
	bit_copybits(nodes, candidates);
	uint32_t left = 0;
	for_each_set_bit(candidates, [&](int i) {
		const auto r = plan.ready.find(i);
		if (r == plan.ready.end() || r->second > t)
			bit_clear(nodes, i);
		else
			++left;
	});
	if (left < min_nodes)
		return std::nullopt;
	const int rc = test_with_units_hidden(job, nodes, min_nodes, max_nodes, SELECT_MODE_WILL_RUN, test,
	                                      &refused, plan.ends.get(), t);
	if (refused)
		return std::nullopt;
	++tests;
	if (rc != SLURM_SUCCESS)
		return std::nullopt;
	return std::max<time_t>(job->start_time, static_cast<time_t>(t));
}

} // namespace

void forget_running_ends()
{
	const std::lock_guard<std::mutex> guard(kept_mutex);
	kept.forget();
	last.reset();
	kept_stamp = 0;
}

int will_run_planned(job_record_t *job, bitstr_t *nodes, uint32_t min_nodes, uint32_t max_nodes,
                     compat::WillRunWindow window, const std::function<int()> &test)
{
	const compat::bitmap_holder candidates(bit_copy(nodes));
	const time_t now = std::time(nullptr);
	// Stopped at the first node that can take the job now: most jobs
	// backfill tests can start now, and the rest of the plan is read only if
	// cons_tres's test says otherwise.
	std::optional<DevicePlan> plan =
	        device_plan(job, candidates.get(), min_nodes, max_nodes, window, now, true);

	// The best plan so far: its start and nodes.
	time_t best = 0;
	compat::bitmap_holder best_nodes;
	bool planned_by_devices = false;
	int tests = 0;
	bool refused = false;
	auto keep = [&](time_t start, bool by_devices) {
		if (best && start >= best)
			return;
		best = start;
		best_nodes.reset(bit_copy(nodes));
		planned_by_devices = by_devices;
	};
	int rc = SLURM_ERROR;
	auto answer = [&] {
		if (!best) {
			bit_copybits(nodes, candidates.get());
			return rc;
		}
		bit_copybits(nodes, best_nodes.get());
		job->start_time = best;
		if (planned_by_devices)
			debug2("select/flex: JobId=%u planned at %lld, when devices free up",
			       compat::job_id_of(job), static_cast<long long>(best));
		return SLURM_SUCCESS;
	};

	// No candidate's devices can take the job now: cons_tres's simulation
	// cannot start it before the lower bound either (the units it hides stay
	// hidden there, the plan frees them). A test as of the lower bound that
	// starts it then is the best plan: cons_tres's own test is spared.
	int64_t tried = 0;
	if (plan && plan->lower_bound && (!window.end || plan->lower_bound <= window.end)) {
		tried = plan->lower_bound;
		if (const auto start = test_at(job, nodes, candidates.get(), min_nodes, max_nodes, *plan,
		                               tried, test, tests, refused)) {
			keep(*start, true);
			if (*start == tried)
				return answer();
		}
		if (refused)
			plan.reset();
	}

	// cons_tres's own test, with the units hidden as they are now.
	bit_copybits(nodes, candidates.get());
	bool refused_now = false;
	rc = test_with_units_hidden(job, nodes, min_nodes, max_nodes, SELECT_MODE_WILL_RUN, test,
	                            &refused_now);
	if (refused_now)
		return rc;
	if (rc == SLURM_SUCCESS && job->start_time <= now)
		return rc;
	if (rc == SLURM_SUCCESS)
		keep(job->start_time, false);
	if (plan && !plan->complete)
		plan = device_plan(job, candidates.get(), min_nodes, max_nodes, window, now, false);

	// Then as of each time a candidate's devices can take the job, earliest
	// first, while a time can beat the best plan.
	if (plan) {
		for (int64_t t : plan->times) {
			if ((best && t >= best) || tests == will_run_steps)
				break;
			if (t == tried)
				continue;
			const auto start = test_at(job, nodes, candidates.get(), min_nodes, max_nodes, *plan,
			                           t, test, tests, refused);
			if (refused)
				break;
			if (!start)
				continue;
			keep(*start, true);
			if (*start == t)
				break; // a later time cannot start it earlier
		}
	}
	return answer();
}

} // namespace flexslurm::select_flex
