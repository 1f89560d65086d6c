// SPDX-License-Identifier: GPL-2.0-or-later
#include "plugins/select_flex/slurm_controller.hpp"

#include "plugins/select_flex/gres_view.hpp"

#include "core/io/channel.hpp"
#include "core/model/loan_book.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <optional>
#include <string>
#include <vector>

namespace flexslurm::select_flex
{

namespace
{

double ms_since(std::chrono::steady_clock::time_point since)
{
	return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

// Who holds which slice and which borrow unit, from the job records, into
// the records the last read left (filled in place: their memory is
// reused). A job holding a device whole (gres/gpu) owns all its slices,
// marked whole (the ledger's policy says whether those lend). Caller holds
// the job and node locks.
void read_books(std::vector<NodeBooks> &books)
{
	size_t count = 0;
	std::vector<int> at(static_cast<size_t>(std::max(node_record_count, 0)), -1); // node -> books
	for (int i = 0; i < node_record_count; ++i) {
		node_record_t *node = node_record_table_ptr[i];
		gres_node_state_t *vs = node ? compat::node_gres(node, vslice_id()) : nullptr;
		if (!vs)
			continue;
		if (count == books.size())
			books.emplace_back();
		NodeBooks &nb = books[count];
		if (nb.node != node->name)
			nb.node = node->name;
		// Its partitions, in place (the same names tick after tick).
		size_t k = 0;
		for (int p = 0; node->part_pptr && p < node->part_cnt; ++p) {
			const auto *part = static_cast<const part_record_t *>(node->part_pptr[p]);
			const char *name = part && part->name ? part->name : "";
			if (k < nb.partitions.size()) {
				if (nb.partitions[k] != name)
					nb.partitions[k] = name;
			} else {
				nb.partitions.emplace_back(name);
			}
			++k;
		}
		nb.partitions.resize(k);
		NodeSlices slices = node_slices(vs);
		nb.known = slices.known; // false: not registered since the controller started
		if (slices.known) {
			if (nb.device_of_slice != slices.device_of_slice)
				nb.device_of_slice = std::move(slices.device_of_slice);
			at[static_cast<size_t>(i)] = static_cast<int>(count);
		} else {
			nb.device_of_slice.clear();
		}
		nb.clear_units();
		++count;
	}
	books.resize(count);
	auto books_of = [&](int i) -> NodeBooks * {
		const int b = i >= 0 && static_cast<size_t>(i) < at.size() ? at[static_cast<size_t>(i)] : -1;
		return b < 0 ? nullptr : &books[static_cast<size_t>(b)];
	};
	// gpu unit -> that device's slices, per node, read when a job holds one.
	std::vector<std::optional<std::vector<std::pair<int, int>>>> gpu_slices(at.size());
	auto own = [](NodeBooks &nb, int u, uint32_t job, const char *partition,
	              const std::optional<Instant> &end, bool whole) {
		SliceOwner &o = nb.owner(static_cast<size_t>(u));
		o.job = job;
		if (o.partition != partition)
			o.partition = partition;
		o.end = end;
		o.whole = whole;
	};
	for (auto *job : compat::list_items<job_record_t>(job_list)) {
		const bool running = IS_JOB_RUNNING(job) || IS_JOB_SUSPENDED(job);
		const bool completing = IS_JOB_COMPLETING(job);
		if (!running && !completing)
			continue;
		if (running && !completing) {
			const char *partition =
			        job->part_ptr && job->part_ptr->name ? job->part_ptr->name : "";
			std::optional<Instant> end;
			if (job->time_limit != INFINITE && job->end_time)
				end = Instant(Seconds(job->end_time)); // wall clock
			for_each_job_unit_set(job, vslice_id(), [&](int i, bitstr_t *bits) {
				NodeBooks *nb = books_of(i);
				if (!nb)
					return;
				for_each_set_bit(bits, [&](int u) {
					own(*nb, u, job->job_id, partition, end, false);
				});
			});
			for_each_job_unit_set(job, gpu_id(), [&](int i, bitstr_t *bits) {
				NodeBooks *nb = books_of(i);
				if (!nb)
					return;
				auto &slices = gpu_slices[static_cast<size_t>(i)];
				if (!slices)
					slices = slices_of_gpu_units(node_record_table_ptr[i]);
				for_each_set_bit(bits, [&](int g) {
					if (static_cast<size_t>(g) >= slices->size())
						return;
					const auto [first, n] = (*slices)[static_cast<size_t>(g)];
					for (int u = first;
					     first >= 0 && u < first + n &&
					     static_cast<size_t>(u) < nb->device_of_slice.size();
					     ++u)
						own(*nb, u, job->job_id, partition, end, true);
				});
			});
		}
		for_each_job_unit_set(job, vborrow_id(), [&](int i, bitstr_t *bits) {
			NodeBooks *nb = books_of(i);
			if (!nb)
				return;
			for_each_set_bit(bits, [&](int u) {
				nb->borrower(static_cast<size_t>(u)) = {job->job_id, completing || !running,
				                                        job->restart_cnt};
			});
		});
	}
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

bool SlurmController::read(ControllerView &view, const std::vector<uint32_t> &check_alive,
                           const std::vector<uint32_t> &reclaimed)
{
	compat::JobReadLock locks;
	const auto held_since = std::chrono::steady_clock::now();
	if (!job_list || !node_record_table_ptr)
		return false; // the controller is still reading its state
	read_books(view.nodes);
	// In place too: most ticks no node and no host changed.
	size_t hosts = 0;
	for (int i = 0; i < node_record_count; ++i)
		if (node_record_t *n = node_record_table_ptr[i]) {
			const char *host = n->comm_name ? n->comm_name : n->name;
			std::string &h = view.hosts[n->name];
			if (h != host)
				h = host;
			++hosts;
		}
	if (view.hosts.size() != hosts) { // a node went: start afresh
		view.hosts.clear();
		for (int i = 0; i < node_record_count; ++i)
			if (node_record_t *n = node_record_table_ptr[i])
				view.hosts[n->name] = n->comm_name ? n->comm_name : n->name;
	}
	for (uint32_t id : check_alive) {
		job_record_t *job = find_job_record(id);
		if (job && (!IS_JOB_FINISHED(job) || IS_JOB_COMPLETING(job)))
			view.alive.push_back(id);
	}
	for (uint32_t id : reclaimed)
		if (auto r = borrower_record(id))
			view.borrowers.emplace(id, *r);
	view.locked_ms = ms_since(held_since);
	return true;
}

double SlurmController::locked(const std::function<void()> &body)
{
	compat::JobWriteLock locks;
	const auto held_since = std::chrono::steady_clock::now();
	body();
	return ms_since(held_since);
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

bool write_totals(job_record_t *job, const JobTotals &t)
{
	const std::string text = totals_comment(job->system_comment ? job->system_comment : "", t);
	if (job->system_comment && text == job->system_comment)
		return false;
	xfree(job->system_comment);
	job->system_comment = xstrdup(text.c_str());
	// A job that has ended: Slurm has sent its end record already.
	if (IS_JOB_RUNNING(job) || IS_JOB_SUSPENDED(job))
		return false;
	compat::store_system_comment(job);
	return true;
}

} // namespace flexslurm::select_flex
