#include "core/service/lending_server.hpp"

#include "core/io/file_io.hpp"
#include "core/util/log.hpp"

#include <algorithm>

namespace flexslurm
{

namespace
{

// A borrower younger than this gets no checkpoint signal (see execute).
constexpr int64_t young_borrower_seconds = 3;

// The credential handle() opened, for the intake on the same thread (munge
// refuses a second opening as a replay).
thread_local Result<Sealed> *opened_here = nullptr;

std::string job_name(uint32_t job)
{
	return "JobId=" + std::to_string(job);
}

double ms_since(std::chrono::steady_clock::time_point &t)
{
	const auto now = std::chrono::steady_clock::now();
	const double ms = std::chrono::duration<double, std::milli>(now - t).count();
	t = now;
	return ms;
}

Instant seconds_of(std::chrono::steady_clock::time_point t)
{
	return Instant(std::chrono::duration_cast<Seconds>(t.time_since_epoch()));
}

} // namespace

ServerIo ServerIo::production(const MungeEndpoint &munge)
{
	ServerIo io;
	io.steady_clock = [] { return seconds_of(std::chrono::steady_clock::now()); };
	io.wall_clock = [] {
		return std::chrono::time_point_cast<Seconds>(std::chrono::system_clock::now());
	};
	io.seal = [munge](std::string_view payload) { return munge_seal(munge, payload); };
	io.open = [munge](std::string_view cred) { return munge_open(munge, cred); };
	io.listen = [](uint16_t port, Listener::Handler handler) {
		return Listener::start("", port, std::move(handler));
	};
	io.write_file = [](const std::string &path, const std::string &text, bool sync) {
		return write_file_atomically(path, text, 0600, sync);
	};
	return io;
}

LendingServer::LendingServer(ServerSettings settings, LendingController &controller, ServerIo io)
    : settings_(std::move(settings)), controller_(controller), io_(std::move(io)),
      book_(settings_.policy, settings_.telemetry_timeout, settings_.hard_stop_after),
      intake_(rules(), [](std::string_view) {
	      if (!opened_here)
		      return Result<Sealed>::failure("no credential");
	      return std::move(*opened_here);
      })
{
}

LendingServer::~LendingServer()
{
	{
		std::lock_guard<std::mutex> guard(stop_mutex_);
		stopping_ = true;
	}
	stop_.notify_all();
	if (thread_.joinable())
		thread_.join();
	{
		std::lock_guard<std::mutex> guard(writer_mutex_);
		writer_stopping_ = true; // after what is pending is written
	}
	writer_wake_.notify_all();
	if (writer_.joinable())
		writer_.join();
	listener_.reset();
}

void LendingServer::start()
{
	start_writer();
	thread_ = std::thread([this] { loop(); });
}

void LendingServer::start_writer()
{
	writer_ = std::thread([this] { writer_loop(); });
}

void LendingServer::hand_over(BookSnapshot &&snapshot, bool urgent)
{
	if (!writer_.joinable()) {
		save(std::move(snapshot), urgent);
		return;
	}
	{
		std::lock_guard<std::mutex> guard(writer_mutex_);
		pending_ = std::move(snapshot);
		pending_urgent_ = pending_urgent_ || urgent;
	}
	writer_wake_.notify_one();
}

void LendingServer::writer_loop()
{
	for (;;) {
		std::optional<BookSnapshot> snapshot;
		bool urgent = false;
		{
			std::unique_lock<std::mutex> lock(writer_mutex_);
			writer_wake_.wait(lock, [this] { return pending_ || writer_stopping_; });
			if (!pending_)
				return;
			snapshot = std::move(pending_);
			pending_.reset();
			urgent = std::exchange(pending_urgent_, false);
		}
		try {
			save(std::move(*snapshot), urgent);
		} catch (const std::exception &e) {
			log_error(std::string("lending: writing the state: ") + e.what());
		} catch (...) {
			log_error("lending: writing the state: unexpected failure");
		}
	}
}

IntakeRules LendingServer::rules()
{
	IntakeRules r;
	r.allowed_uids = settings_.admin_uids;
	r.node_known = [this](const std::string &node) {
		std::lock_guard<std::mutex> guard(addr_mutex_);
		return node_addrs_.count(node) > 0;
	};
	r.node_matches_peer = [this](const std::string &node, const std::string &peer) {
		std::lock_guard<std::mutex> guard(addr_mutex_);
		auto a = node_addrs_.find(node);
		return a != node_addrs_.end() &&
		       std::find(a->second.begin(), a->second.end(), peer) != a->second.end();
	};
	// An agent reports once an interval: a few more within one interval
	// is jitter, many is a flood.
	r.min_interval = std::max(Seconds(1), settings_.report_interval);
	r.max_age = std::max(Seconds(30), 3 * settings_.report_interval);
	return r;
}

void LendingServer::loop()
{
	for (;;) {
		try {
			tick();
		} catch (const std::exception &e) {
			log_error(std::string("lending: ") + e.what());
		} catch (...) {
			log_error("lending: unexpected failure");
		}
		std::unique_lock<std::mutex> lock(stop_mutex_);
		if (stop_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; }))
			return;
	}
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
	std::optional<ControllerView> view;
	std::vector<uint32_t> reclaimed;
	std::unique_lock<std::mutex> book_lock(book_mutex_, std::defer_lock);
	for (int attempt = 0;; ++attempt) {
		const uint64_t commits = commits_.load();
		book_lock.lock();
		reclaimed = book_.reclaim_borrowers();
		book_lock.unlock();
		view = controller_.read(totals_jobs_, reclaimed);
		if (!view)
			return; // the controller is still reading its state
		book_lock.lock();
		if (commits_.load() == commits || attempt == 2)
			break;
		book_lock.unlock();
	}
	times_.read_ms = ms_since(lap);
	for (NodeBooks &nb : view->nodes) // job end times: wall clock -> the book's
		for (auto &[u, owner] : nb.owners)
			if (owner.end)
				*owner.end -= *wall_offset_;
	for (auto &[id, record] : view->borrowers)
		if (record.end)
			*record.end -= *wall_offset_;
	// A reclaim the admin started after the records were read has none
	// here: it has not been requeued yet, which a running record keeps
	// waiting (its grace runs), as it should.
	for (uint32_t b : book_.reclaim_borrowers())
		if (!std::binary_search(reclaimed.begin(), reclaimed.end(), b))
			view->borrowers.emplace(b, BorrowerRecord{});
	std::sort(view->alive.begin(), view->alive.end());
	std::vector<uint32_t> gone;
	for (uint32_t job : totals_jobs_)
		if (!std::binary_search(view->alive.begin(), view->alive.end(), job))
			gone.push_back(job);

	TickActions actions;
	std::vector<std::pair<uint32_t, JobTotals>> to_record;
	std::vector<std::string> events;
	{
		book_.sync(now, view->nodes, &view->borrowers);
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
	if (!actions.signal.empty() || !actions.requeue.empty() || !actions.requeue_ended.empty() ||
	    !to_record.empty())
		controller_.locked([&] {
			execute(actions, io_.wall_clock(), done);
			for (const auto &[id, totals] : to_record)
				controller_.record_totals(id, totals);
		});
	times_.act_ms = ms_since(lap);
	for (const auto &[id, totals] : to_record)
		recorded_[id] = totals;

	// The files are rewritten from a snapshot when the book saw an event
	// (a loan, a reclaim and its steps), and every status_refresh_interval
	// for what changes quietly (idle timers, totals, the status' ages).
	std::optional<BookSnapshot> snapshot;
	bool eventful = false;
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
		eventful = book_.revision() != snapshot_revision_;
		if (eventful || !snapshot_at_ || now - *snapshot_at_ >= status_refresh_interval) {
			snapshot = book_.snapshot(now);
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
	refresh_addresses(view->hosts, now);
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

	std::lock_guard<std::mutex> guard(refusal_mutex_);
	for (auto it = refusals_.begin(); it != refusals_.end();) {
		Refusals &r = it->second;
		if (now - r.window_start < refusal_log_window) {
			++it;
			continue;
		}
		if (r.count)
			log_error("lending: " + std::to_string(r.count) + " more admin request(s) from " +
			          it->first + " refused in the last " +
			          std::to_string(refusal_log_window.count()) + " s");
		it = refusals_.erase(it);
	}
}

// Not in control (a backup standing by, or a controller stopping, handing
// control back or re-executing): hands off the shared state file and the
// report port. What the book knew is forgotten: whoever runs the cluster
// meanwhile moves on, and the state file is read afresh on taking control.
void LendingServer::stand_by()
{
	if (in_control_)
		log_info("lending: not in control: report port closed, standing by");
	in_control_ = false;
	listener_.reset();
	next_listen_ = {};
	if (!restored_)
		return;
	restored_ = false;
	{
		std::lock_guard<std::mutex> guard(writer_mutex_);
		pending_.reset(); // never written by a controller not in control
		pending_urgent_ = false;
	}
	forget_saved_ = true;
	std::lock_guard<std::mutex> guard(book_mutex_);
	book_.clear();
	snapshot_revision_ = ~uint64_t{0};
	snapshot_at_.reset();
	totals_jobs_.clear();
	recorded_.clear();
}

void LendingServer::reconfigure(const ServerSettings &settings)
{
	{
		std::lock_guard<std::mutex> guard(book_mutex_);
		book_.set_policy(settings.policy, settings.telemetry_timeout, settings.hard_stop_after);
	}
	new_port_ = settings.port;
	log_info("lending: settings reloaded (grace " + std::to_string(settings.policy.grace.count()) +
	         " s, idle window " + std::to_string(settings.policy.idle_window.count()) + " s)");
}

// Under the controller's job write lock.
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
		addrs[node] = found->second.addresses;
	}
	hosts_ = std::move(kept);
	std::lock_guard<std::mutex> guard(addr_mutex_);
	node_addrs_ = std::move(addrs);
}

std::string LendingServer::handle(std::string_view frame, const std::string &peer)
{
	Result<Sealed> opened = io_.open(frame);
	if (opened && !opened->replayed)
		if (auto admin = parse_admin(opened->payload))
			return answer_admin(*admin, opened->uid, peer);
	opened_here = &opened;
	auto report = intake_.take(frame, peer, io_.wall_clock());
	opened_here = nullptr;
	if (!report)
		return "";
	Orders orders;
	{
		std::lock_guard<std::mutex> guard(book_mutex_);
		const Instant now = io_.steady_clock();
		book_.report(now, *report);
		orders = book_.orders_for(report->node, report->seq, now);
	}
	auto sealed = io_.seal(encode_orders(orders));
	if (!sealed) {
		log_error("lending: cannot seal the answer to " + report->node + ": " + sealed.error());
		return "";
	}
	return *sealed;
}

void LendingServer::log_refusal(const std::string &peer, uid_t uid)
{
	const Instant now = io_.steady_clock();
	std::lock_guard<std::mutex> guard(refusal_mutex_);
	const std::string source =
	        refusals_.size() < max_refusal_sources || refusals_.count(peer) ? peer : "other sources";
	Refusals &r = refusals_[source];
	if (r.logged && now - r.window_start < refusal_log_window) {
		++r.count; // logged with its count when the window ends (tick)
		return;
	}
	const std::string more = r.count ? " (" + std::to_string(r.count) + " more refused before this)" : "";
	log_error("lending: admin request from " + source + " with uid " + std::to_string(uid) +
	          " refused: only root and SlurmUser may" + more +
	          "; further refusals from it are counted and logged once a minute");
	r.window_start = now;
	r.count = 0;
	r.logged = true;
}

std::string LendingServer::answer_admin(const Result<AdminRequest> &request, uid_t uid,
                                        const std::string &peer)
{
	std::string text;
	if (std::find(settings_.admin_uids.begin(), settings_.admin_uids.end(), uid) ==
	    settings_.admin_uids.end()) {
		log_refusal(peer, uid);
		text = "error: only root and SlurmUser may use flexslurm-lending\n";
	} else if (!request) {
		text = "error: " + request.error() + "\n";
	} else if (request->kind == AdminRequest::Kind::Status) {
		BookSnapshot snapshot;
		{
			std::lock_guard<std::mutex> guard(book_mutex_);
			snapshot = book_.snapshot(io_.steady_clock());
		}
		text = snapshot.status_text();
		if (text.size() > max_status_answer_bytes)
			text = fit_status_answer(text, status_path());
	} else {
		bool found = false;
		{
			std::lock_guard<std::mutex> guard(book_mutex_);
			found = book_.admin_reclaim(io_.steady_clock(), request->job);
		}
		if (found) {
			log_info("lending: admin (uid " + std::to_string(uid) + ") takes back the loans of " +
			         job_name(request->job));
			text = "reclaim of " + job_name(request->job) + " started\n";
		} else {
			text = "error: " + job_name(request->job) + " borrows nothing\n";
		}
	}
	auto sealed = io_.seal(text);
	if (!sealed) {
		log_error("lending: cannot seal the answer to an admin request from " + peer + ": " +
		          sealed.error());
		sealed = io_.seal("error: the answer could not be sealed: " + sealed.error() + "\n");
	}
	return sealed ? *sealed : "";
}

std::set<int> LendingServer::lendable(const std::string &node)
{
	std::lock_guard<std::mutex> guard(book_mutex_);
	const auto units = book_.lendable_units(node, io_.steady_clock());
	return {units.begin(), units.end()};
}

void LendingServer::committed(uint32_t job, const std::vector<std::pair<std::string, int>> &units)
{
	std::vector<std::string> events;
	{
		std::lock_guard<std::mutex> guard(book_mutex_);
		const Instant now = io_.steady_clock();
		for (const auto &[node, unit] : units)
			book_.lent(now, node, unit, job);
		++commits_;
		events = book_.take_events();
	}
	for (const std::string &e : events)
		log_info("lending: " + e);
}

std::optional<JobTotals> LendingServer::ended(uint32_t job)
{
	std::lock_guard<std::mutex> guard(book_mutex_);
	const auto t = book_.totals().find(job);
	if (t == book_.totals().end() || !t->second.lent_slice_seconds)
		return std::nullopt;
	log_info("lending: " + job_name(job) + " lent " + std::to_string(t->second.lent_slice_seconds) +
	         " slice-s");
	return t->second;
}

size_t LendingServer::totals_count()
{
	std::lock_guard<std::mutex> guard(book_mutex_);
	return book_.totals().size();
}

size_t LendingServer::active_reclaims()
{
	std::lock_guard<std::mutex> guard(book_mutex_);
	return book_.active_reclaims();
}

} // namespace flexslurm
