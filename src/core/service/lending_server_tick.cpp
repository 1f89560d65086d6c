// SPDX-License-Identifier: GPL-2.0-or-later
// The lending server's tick, every second: read the job records (under
// the controller's read locks), decide (under the book's lock), act (under
// the controller's job write lock), then, with no lock held, names, the
// listener and the snapshot for the writer.
#include "core/service/lending_server.hpp"

#include "core/util/log.hpp"

#include <algorithm>
#include <cstdio>

namespace flexslurm
{

namespace
{

// A borrower younger than this gets no checkpoint signal (see execute).
constexpr int64_t young_borrower_seconds = 3;

double ms_since(std::chrono::steady_clock::time_point &t)
{
	const auto now = std::chrono::steady_clock::now();
	const double ms = std::chrono::duration<double, std::milli>(now - t).count();
	t = now;
	return ms;
}

} // namespace

// "TICK ticks=600 read_p50_ms=0.41 ...": the last ticks' times, in the
// status file and every 600 ticks in the log.
std::string LendingServer::tick_summary() const
{
	auto ms = [](double v) {
		char buf[32];
		std::snprintf(buf, sizeof(buf), "%.2f", v);
		return std::string(buf);
	};
	return "TICK ticks=" + std::to_string(read_times_.size()) +
	       " read_p50_ms=" + ms(read_times_.quantile(0.5)) +
	       " read_p99_ms=" + ms(read_times_.quantile(0.99)) +
	       " act_ticks=" + std::to_string(act_times_.size()) +
	       " act_p50_ms=" + ms(act_times_.quantile(0.5)) +
	       " act_p99_ms=" + ms(act_times_.quantile(0.99)) +
	       " wait_p99_ms=" + ms(wait_times_.quantile(0.99));
}

void LendingServer::anchor_clocks(Instant steady, Instant wall)
{
	// Both clocks are read in whole seconds: their difference wobbles by
	// one. More than that is a step of the wall clock: the state file and
	// the history follow it, the timers do not.
	const Seconds offset = wall - steady;
	if (wall_offset_ && std::chrono::abs(offset - *wall_offset_) <= Seconds(1))
		return;
	if (wall_offset_)
		log_info("lending: the wall clock moved by " +
		         std::to_string((offset - *wall_offset_).count()) +
		         " s; loan timers are not affected");
	wall_offset_ = offset;
	std::lock_guard<std::mutex> guard(book_mutex_);
	book_.set_wall_offset(offset);
}

void LendingServer::tick()
{
	if (!controller_.in_control()) {
		stand_by();
		return;
	}
	if (!in_control_)
		log_info("lending: in control: reading the state file and listening for node reports");
	in_control_ = true;
	const Instant now = io_.steady_clock();
	anchor_clocks(now, io_.wall_clock());
	restore_once();
	auto lap = std::chrono::steady_clock::now();
	times_ = {};
	// A loan committed after the records were read (the scheduler runs
	// between our locks) is not in them, and the book would take it for a
	// borrower gone: then the records are read again. Loans are committed
	// under the book's lock (committed()), so the check below is exact.
	// The reclaims in flight end only when their borrowers' job records
	// say so (LoanBook::sync): those records are read too.
	std::vector<uint32_t> reclaimed;
	std::unique_lock<std::mutex> book_lock(book_mutex_, std::defer_lock);
	double read_held_ms = 0;
	bool read_held_known = true;
	for (int attempt = 0;; ++attempt) {
		const uint64_t commits = commits_.load();
		book_lock.lock();
		reclaimed = book_.reclaim_borrowers();
		book_lock.unlock();
		view_.alive.clear();
		view_.borrowers.clear();
		view_.locked_ms = -1;
		if (!controller_.read(view_, totals_jobs_, reclaimed))
			return; // the controller is still reading its state
		read_held_known = read_held_known && view_.locked_ms >= 0;
		read_held_ms += view_.locked_ms;
		book_lock.lock();
		if (commits_.load() == commits || attempt == 2)
			break;
		book_lock.unlock();
	}
	times_.read_ms = ms_since(lap);
	times_.read_held_ms = read_held_known ? read_held_ms : times_.read_ms;
	// Job end times are on the wall clock: sync moves the owners' onto the
	// book's clock as it uses them, the borrowers' are moved here.
	for (auto &[id, record] : view_.borrowers)
		if (record.end)
			*record.end -= *wall_offset_;
	// A reclaim the admin started after the records were read has none
	// here: it has not been requeued yet, which a running record keeps
	// waiting (its grace runs), as it should.
	for (uint32_t b : book_.reclaim_borrowers())
		if (!std::binary_search(reclaimed.begin(), reclaimed.end(), b))
			view_.borrowers.emplace(b, BorrowerRecord{});
	std::sort(view_.alive.begin(), view_.alive.end());
	std::vector<uint32_t> gone;
	for (uint32_t job : totals_jobs_)
		if (!std::binary_search(view_.alive.begin(), view_.alive.end(), job))
			gone.push_back(job);

	TickActions actions;
	std::vector<std::pair<uint32_t, JobTotals>> to_record;
	std::vector<std::string> events;
	{
		book_.sync(now, view_.nodes, &view_.borrowers, *wall_offset_);
		book_.forget_totals(gone);
		actions = book_.tick(now);
		// Borrowers' records follow their loans; a lender's record is
		// written once, when it ends (ended()), so that lending leaves a
		// running lender's record untouched.
		for (const auto &[id, totals] : book_.totals()) {
			if (!totals.borrowed_slice_seconds || totals.lent_slice_seconds)
				continue;
			const auto r = recorded_.find(id);
			if (r == recorded_.end() || !(r->second == totals))
				to_record.emplace_back(id, totals);
		}
		events = book_.take_events();
		book_lock.unlock();
	}
	times_.book_ms = ms_since(lap);
	for (const std::string &e : events)
		log_info("lending: " + e);

	std::vector<std::pair<uint32_t, Done>> done;
	const bool act = !actions.signal.empty() || !actions.requeue.empty() ||
	                 !actions.requeue_ended.empty() || !to_record.empty();
	double act_held_ms = -1;
	if (act)
		act_held_ms = controller_.locked([&] {
			execute(actions, io_.wall_clock(), done);
			for (const auto &[id, totals] : to_record)
				controller_.record_totals(id, totals);
		});
	times_.act_ms = ms_since(lap);
	times_.act_held_ms = act_held_ms >= 0 ? act_held_ms : times_.act_ms;
	read_times_.add(times_.read_held_ms);
	wait_times_.add(std::max(0.0, times_.read_ms - times_.read_held_ms) +
	                (act ? std::max(0.0, times_.act_ms - times_.act_held_ms) : 0.0));
	if (act)
		act_times_.add(times_.act_held_ms);
	if (read_times_.count() % 600 == 0)
		log_info("lending: " + tick_summary());
	for (const auto &[id, totals] : to_record)
		recorded_[id] = totals;

	// The files are rewritten from a snapshot when the book saw an event
	// (a loan, a reclaim and its steps), and every status_refresh_interval
	// for what changes quietly (idle timers, totals, the status' ages).
	std::optional<BookSnapshot> snapshot;
	bool eventful = false;
	BookCounters counters;
	std::vector<int64_t> durations;
	size_t in_flight = 0;
	{
		std::lock_guard<std::mutex> guard(book_mutex_);
		for (const auto &[job, what] : done) {
			if (what == Done::Signalled)
				book_.signalled(job, now);
			else if (what == Done::Requeued)
				book_.requeued(job, now);
			else
				book_.gave_up(job, now);
		}
		events = book_.take_events();
		counters = book_.counters();
		durations = book_.take_reclaim_durations();
		in_flight = book_.active_reclaims();
		eventful = book_.revision() != snapshot_revision_;
		if (eventful || !snapshot_at_ || now - *snapshot_at_ >= status_refresh_interval) {
			snapshot = book_.snapshot(now);
			snapshot->tick_summary = tick_summary();
			snapshot_revision_ = book_.revision();
			snapshot_at_ = now;
		}
		totals_jobs_.clear();
		totals_jobs_.reserve(book_.totals().size());
		for (const auto &[job, totals] : book_.totals())
			totals_jobs_.push_back(job);
	}
	times_.book_ms += ms_since(lap);
	for (const std::string &e : events)
		log_info("lending: " + e);
	for (auto it = recorded_.begin(); it != recorded_.end();)
		it = std::binary_search(totals_jobs_.begin(), totals_jobs_.end(), it->first)
		             ? std::next(it)
		             : recorded_.erase(it);

	if (actions.lendable_appeared)
		controller_.kick_scheduler(); // a waiting borrower may fit now
	refresh_addresses(view_.hosts, now);
	if (const uint16_t p = new_port_.exchange(0); p && p != settings_.port) {
		listener_.reset(); // lending.port changed by reconfigure
		log_info("lending: port " + std::to_string(settings_.port) + " closed, moving to " +
		         std::to_string(p));
		settings_.port = p;
		next_listen_ = {};
	}
	// Listen once the nodes' addresses are known: a report that came
	// earlier could only be refused.
	if (!listener_ && io_.listen && now >= next_listen_) {
		auto l = io_.listen(settings_.port, [this](std::string_view frame, const std::string &peer) {
			return handle(frame, peer);
		});
		if (l) {
			listener_ = std::move(*l);
			log_info("lending: listening for node reports on port " +
			         std::to_string(settings_.port));
		} else {
			log_error("lending: cannot listen on port " + std::to_string(settings_.port) + ": " +
			          l.error() + "; nothing is lent until it can (retrying every 10 s)");
			next_listen_ = now + Seconds(10);
		}
	}
	if (snapshot)
		hand_over(std::move(*snapshot), eventful);
	times_.files_ms = ms_since(lap);
	write_metrics(now, counters, durations, in_flight,
	              (times_.read_ms + times_.book_ms + times_.act_ms + times_.files_ms) / 1000.0);

	std::lock_guard<std::mutex> guard(refusal_mutex_);
	refusals_.expire(now, [](const std::string &source, uint64_t held) {
		log_error("lending: " + std::to_string(held) + " more admin request(s) from " + source +
		          " refused in the last " + std::to_string(refusal_log_window.count()) + " s");
	});
}

// Counts this tick and, every metrics_interval, writes the metrics file
// (node_exporter's textfile collector) from the job records just read.
void LendingServer::write_metrics(Instant now, const BookCounters &counters,
                                  const std::vector<int64_t> &durations, size_t in_flight,
                                  double tick_seconds)
{
	if (settings_.metrics_dir.empty())
		return;
	metrics_.tick_seconds.observe(tick_seconds);
	for (const int64_t d : durations)
		metrics_.counters.reclaim_seconds.observe(static_cast<double>(d));
	metrics_.counters.loans = counters.loans;
	std::copy(counters.reclaims.begin(), counters.reclaims.end(), metrics_.counters.reclaims.begin());
	metrics_.reclaims_in_flight = in_flight;
	if (metrics_at_ && now - *metrics_at_ < metrics_interval)
		return;
	metrics_at_ = now;
	for (size_t r = 0; r < drop_reason_count; ++r)
		metrics_.dropped[r] = intake_.dropped(static_cast<DropReason>(r));
	metrics_.accepted = intake_.accepted();
	metrics_.nodes = &view_.nodes;
	if (!io_.write_public)
		return;
	const auto written = io_.write_public(metrics_path(), controller_metrics_text(metrics_));
	metrics_.nodes = nullptr;
	if (!written && !metrics_write_failed_)
		log_error("lending: metrics: " + metrics_path() + ": " + written.error());
	metrics_write_failed_ = !written;
}

// Not in control (a backup standing by, or a controller stopping, handing
// control back or re-executing): hands off the shared state file and the
// report port. What the book knew is forgotten: whoever runs the cluster
// meanwhile moves on, and the state file is read afresh on taking control.
void LendingServer::execute(const TickActions &actions, Instant wall,
                            std::vector<std::pair<uint32_t, Done>> &done)
{
	for (const ReclaimOrder &o : actions.signal) {
		const auto job = controller_.job(o.borrower);
		if (!job || !job->running)
			continue;
		if (!job->checkpoint) {
			// Nothing would use the grace: give the slice back at once.
			log_info("lending: " + job_name(o.borrower) +
			         " asked for no checkpoint signal (--signal): requeued at once");
			requeue(o.borrower, done);
			continue;
		}
		// A batch job signalled while slurmstepd is still launching it
		// fails to launch (JobLaunchFailure) instead of taking the signal;
		// one this young has nothing to checkpoint yet: it is requeued at
		// the deadline without a signal.
		// (A negative age is a wall clock stepped back, not a young job.)
		const int64_t age = wall.time_since_epoch().count() - job->start_time;
		if (job->start_time && age >= 0 && age < young_borrower_seconds) {
			log_info("lending: " + job_name(o.borrower) + " started " + std::to_string(age) +
			         "s ago: no checkpoint signal, requeued at the deadline");
			continue;
		}
		if (const std::string failed = controller_.signal_checkpoint(o.borrower); !failed.empty())
			log_error("lending: signal to " + job_name(o.borrower) + ": " + failed);
		done.emplace_back(o.borrower, Done::Signalled);
	}
	for (uint32_t b : actions.requeue)
		requeue(b, done);
	for (uint32_t b : actions.requeue_ended) {
		const std::string failed = controller_.requeue_ended(b);
		if (failed.empty()) {
			done.emplace_back(b, Done::Requeued);
			continue;
		}
		log_error("lending: cannot requeue borrower " + job_name(b) +
		          ", ended by its hard stop: " + failed);
		done.emplace_back(b, Done::GaveUp);
	}
}

void LendingServer::requeue(uint32_t borrower, std::vector<std::pair<uint32_t, Done>> &done)
{
	const auto job = controller_.job(borrower);
	if (!job || !job->running) {
		done.emplace_back(borrower, Done::Requeued);
		return;
	}
	const std::string failed = controller_.requeue(borrower);
	if (failed.empty()) {
		done.emplace_back(borrower, Done::Requeued);
		return;
	}
	// The lender's guarantee comes first: a borrower that cannot be
	// requeued (job_submit/flex not configured?) is stopped.
	log_error("lending: cannot requeue borrower " + job_name(borrower) + ": " + failed + "; killing it");
	controller_.kill(borrower);
	done.emplace_back(borrower, Done::GaveUp);
}

// No lock held: name resolution may block. A failed lookup is tried again
// after a while (a node whose name did not resolve at first, or a DNS
// outage, must not keep its reports refused until a restart).
void LendingServer::refresh_addresses(const std::map<std::string, std::string> &hosts, Instant now)
{
	// The same nodes and hosts as last time, no failed lookup due: the
	// same addresses (most ticks).
	if (hosts == hosts_seen_ && now < retry_at_)
		return;
	hosts_seen_ = hosts;
	retry_at_ = Instant::max();
	std::map<std::string, Host> kept;
	std::map<std::string, std::vector<std::string>> addrs;
	for (const auto &[node, host] : hosts) {
		auto found = kept.find(host);
		if (found == kept.end()) {
			auto old = hosts_.find(host);
			found = kept.emplace(host, old != hosts_.end() ? std::move(old->second) : Host{})
			                .first;
			Host &h = found->second;
			const bool never = old == hosts_.end();
			if (never || (h.addresses.empty() && now >= h.next_lookup)) {
				h.addresses = controller_.resolve(host);
				if (h.addresses.empty()) {
					h.backoff = h.backoff.count()
					                    ? std::min(2 * h.backoff, Seconds(dns_retry_cap))
					                    : Seconds(dns_retry_first);
					h.next_lookup = now + h.backoff;
					if (never)
						log_error(
						        "lending: cannot resolve " + host + " (node " + node +
						        "): its reports are refused until it resolves (tried again every " +
						        std::to_string(dns_retry_first.count()) + "-" +
						        std::to_string(dns_retry_cap.count()) + " s)");
				} else if (!never) {
					log_info("lending: " + host + " (node " + node + ") resolves now");
				}
			}
		}
		if (found->second.addresses.empty())
			retry_at_ = std::min(retry_at_, found->second.next_lookup);
		addrs[node] = found->second.addresses;
	}
	hosts_ = std::move(kept);
	{
		// Nodes no longer in the cluster: their identities go too.
		std::lock_guard<std::mutex> guard(identities_mutex_);
		std::erase_if(identities_, [&](const auto &entry) { return !addrs.count(entry.first); });
	}
	std::lock_guard<std::mutex> guard(addr_mutex_);
	node_addrs_ = std::move(addrs);
}

} // namespace flexslurm
