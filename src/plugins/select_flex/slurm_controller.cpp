#include "plugins/select_flex/slurm_controller.hpp"

#include "plugins/select_flex/gres_view.hpp"

#include "core/io/channel.hpp"
#include "core/model/loan_book.hpp"

#include <algorithm>
#include <csignal>
#include <optional>
#include <string>
#include <vector>

namespace flexslurm::select_flex
{

namespace
{

// Who holds which slice and which borrow unit, from the job records.
// Caller holds the job and node locks.
std::vector<NodeBooks> read_books()
{
	std::vector<NodeBooks> books;
	std::vector<int> at(static_cast<size_t>(std::max(node_record_count, 0)), -1); // node -> books
	for (int i = 0; i < node_record_count; ++i) {
		node_record_t *node = node_record_table_ptr[i];
		gres_node_state_t *vs = node ? compat::node_gres(node, vslice_id()) : nullptr;
		if (!vs)
			continue;
		NodeBooks nb;
		nb.node = node->name;
		NodeSlices slices = node_slices(vs);
		if (!slices.known) {
			nb.known = false; // not registered since the controller started
			books.push_back(std::move(nb));
			continue;
		}
		nb.device_of_slice = std::move(slices.device_of_slice);
		at[static_cast<size_t>(i)] = static_cast<int>(books.size());
		books.push_back(std::move(nb));
	}
	auto books_of = [&](int i) -> NodeBooks * {
		const int b = i >= 0 && static_cast<size_t>(i) < at.size() ? at[static_cast<size_t>(i)] : -1;
		return b < 0 ? nullptr : &books[static_cast<size_t>(b)];
	};
	for (auto *job : compat::list_items<job_record_t>(job_list)) {
		const bool running = IS_JOB_RUNNING(job) || IS_JOB_SUSPENDED(job);
		const bool completing = IS_JOB_COMPLETING(job);
		if (!running && !completing)
			continue;
		if (running && !completing)
			for_each_job_unit_set(job, vslice_id(), [&](int i, bitstr_t *bits) {
				NodeBooks *nb = books_of(i);
				if (!nb)
					return;
				SliceOwner owner{job->job_id,
				                 job->part_ptr && job->part_ptr->name ? job->part_ptr->name
				                                                      : "",
				                 std::nullopt};
				if (job->time_limit != INFINITE && job->end_time)
					owner.end = Instant(Seconds(job->end_time)); // wall clock
				for_each_set_bit(bits, [&](int u) { nb->owners[u] = owner; });
			});
		for_each_job_unit_set(job, vborrow_id(), [&](int i, bitstr_t *bits) {
			NodeBooks *nb = books_of(i);
			if (!nb)
				return;
			for_each_set_bit(bits, [&](int u) {
				nb->borrowers[u] = {job->job_id, completing || !running, job->restart_cnt};
			});
		});
	}
	return books;
}

// What a job record says about a borrower whose reclaim is in flight
// (LoanBook::judge decides from it). Caller holds the job lock.
std::optional<BorrowerRecord> borrower_record(uint32_t id)
{
	using Stage = BorrowerRecord::Stage;
	job_record_t *job = find_job_record(id);
	if (!job)
		return std::nullopt;
	BorrowerRecord r;
	r.run = job->restart_cnt;
	if (IS_JOB_COMPLETING(job))
		r.stage = Stage::Leaving;
	else if (IS_JOB_RUNNING(job) || IS_JOB_SUSPENDED(job))
		r.stage = Stage::Running;
	else if (IS_JOB_PENDING(job))
		r.stage = Stage::Pending;
	else
		r.stage = IS_JOB_FAILED(job) ? Stage::Failed : Stage::Ended;
	if (r.stage == Stage::Failed || r.stage == Stage::Ended)
		r.end = Instant(Seconds(job->end_time)); // wall clock
	return r;
}

} // namespace

bool SlurmController::in_control()
{
	return compat::controller_in_control();
}

std::optional<ControllerView> SlurmController::read(const std::vector<uint32_t> &check_alive,
                                                    const std::vector<uint32_t> &reclaimed)
{
	compat::JobReadLock locks;
	if (!job_list || !node_record_table_ptr)
		return std::nullopt; // the controller is still reading its state
	ControllerView view;
	view.nodes = read_books();
	for (int i = 0; i < node_record_count; ++i)
		if (node_record_t *n = node_record_table_ptr[i])
			view.hosts[n->name] = n->comm_name ? n->comm_name : n->name;
	for (uint32_t id : check_alive) {
		job_record_t *job = find_job_record(id);
		if (job && (!IS_JOB_FINISHED(job) || IS_JOB_COMPLETING(job)))
			view.alive.push_back(id);
	}
	for (uint32_t id : reclaimed)
		if (auto r = borrower_record(id))
			view.borrowers.emplace(id, *r);
	return view;
}

void SlurmController::locked(const std::function<void()> &body)
{
	compat::JobWriteLock locks;
	body();
}

std::optional<JobFacts> SlurmController::job(uint32_t id)
{
	job_record_t *job = find_job_record(id);
	if (!job)
		return std::nullopt;
	return JobFacts{IS_JOB_RUNNING(job), job->warn_signal != 0, static_cast<int64_t>(job->start_time)};
}

std::string SlurmController::signal_checkpoint(uint32_t id)
{
	job_record_t *job = find_job_record(id);
	if (!job)
		return "no job record";
	const uint16_t flags = job->warn_flags & (KILL_JOB_BATCH | KILL_FULL_JOB);
	const int rc = job_signal(job, job->warn_signal, flags, 0, false);
	return rc == SLURM_SUCCESS ? ""
	                           : "signal " + std::to_string(job->warn_signal) + ": " + slurm_strerror(rc);
}

std::string SlurmController::requeue(uint32_t id)
{
	job_record_t *job = find_job_record(id);
	if (!job)
		return "no job record";
	const int rc = compat::requeue_job(job);
	return rc == SLURM_SUCCESS ? "" : slurm_strerror(rc);
}

void SlurmController::kill(uint32_t id)
{
	if (job_record_t *job = find_job_record(id))
		job_signal(job, SIGKILL, 0, 0, false);
}

void SlurmController::record_totals(uint32_t id, const JobTotals &totals)
{
	if (job_record_t *job = find_job_record(id))
		write_totals(job, totals);
}

void SlurmController::kick_scheduler()
{
	queue_job_scheduler();
}

std::vector<std::string> SlurmController::resolve(const std::string &host)
{
	return numeric_addresses(host);
}

void write_totals(job_record_t *job, const JobTotals &t)
{
	const std::string text = totals_comment(job->system_comment ? job->system_comment : "", t);
	if (!job->system_comment || text != job->system_comment) {
		xfree(job->system_comment);
		job->system_comment = xstrdup(text.c_str());
	}
}

} // namespace flexslurm::select_flex
