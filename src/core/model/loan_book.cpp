#include "core/model/loan_book.hpp"

#include "core/util/log.hpp"

#include <algorithm>
#include <charconv>

namespace flexslurm
{

namespace
{

constexpr size_t history_limit = 200;
// Requeues one reclaim may issue after the job record contradicted an
// earlier one; a borrower that cannot be requeued counts as this many.
constexpr int requeue_again_limit = 3;
constexpr std::string_view state_header = "flexslurm-lending 1";

int64_t unix_of(Instant t)
{
	return t.time_since_epoch().count();
}

std::string time_text(std::optional<Instant> t)
{
	return t ? std::to_string(unix_of(*t)) : "-";
}

std::string job_text(uint32_t job)
{
	return job ? "JobId=" + std::to_string(job) : "-";
}

template <class T>
bool parse_number(std::string_view s, T &out)
{
	auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
	return ec == std::errc() && p == s.data() + s.size();
}

bool parse_time(std::string_view s, std::optional<Instant> &out)
{
	if (s == "-") {
		out.reset();
		return true;
	}
	// A state file is input from disk: a time past 2100 (or a huge value
	// that would overflow when a grace is added to it) is refused.
	constexpr int64_t latest_time = 4102444800; // 2100-01-01
	int64_t v = 0;
	if (!parse_number(s, v) || v < 0 || v > latest_time)
		return false;
	out = Instant(Seconds(v));
	return true;
}

std::vector<std::string_view> words(std::string_view line)
{
	std::vector<std::string_view> out;
	size_t i = 0;
	while (i < line.size()) {
		while (i < line.size() && line[i] == ' ')
			++i;
		size_t j = i;
		while (j < line.size() && line[j] != ' ')
			++j;
		if (j > i)
			out.push_back(line.substr(i, j - i));
		i = j;
	}
	return out;
}

// "key=value" fields of a state line, in a fixed order.
bool field(std::string_view word, std::string_view key, std::string_view &value)
{
	if (word.size() <= key.size() || word.substr(0, key.size()) != key || word[key.size()] != '=')
		return false;
	value = word.substr(key.size() + 1);
	return true;
}

std::optional<SliceState> state_of(std::string_view name)
{
	for (SliceState s : {SliceState::Free, SliceState::OwnedBusy, SliceState::Idle, SliceState::Lent,
	                     SliceState::Reclaiming})
		if (state_name(s) == name)
			return s;
	return std::nullopt;
}

std::optional<ReclaimReason> reason_of(std::string_view name)
{
	for (ReclaimReason r : {ReclaimReason::LenderBusy, ReclaimReason::LenderEnded, ReclaimReason::MaxLoan,
	                        ReclaimReason::TelemetryLost, ReclaimReason::Admin})
		if (reason_name(r) == name)
			return r;
	return std::nullopt;
}

} // namespace

LoanBook::LoanBook(LendingPolicy policy, Seconds telemetry_timeout, Seconds hard_stop_after)
    : policy_(std::move(policy)), telemetry_timeout_(telemetry_timeout), hard_stop_after_(hard_stop_after)
{
}

void LoanBook::set_policy(LendingPolicy policy, Seconds telemetry_timeout, Seconds hard_stop_after)
{
	policy_ = std::move(policy); // every SliceLending reads it through a pointer
	telemetry_timeout_ = telemetry_timeout;
	hard_stop_after_ = hard_stop_after;
}

void LoanBook::event(Instant now, std::string text)
{
	history_.push_back(std::to_string(unix_of(now + wall_offset_)) + " " + text);
	while (history_.size() > history_limit)
		history_.pop_front();
	pending_events_.push_back(std::move(text));
	++revision_;
}

std::vector<std::string> LoanBook::take_events()
{
	return std::exchange(pending_events_, {});
}

void LoanBook::sync(Instant now, const std::vector<NodeBooks> &books,
                    const std::map<uint32_t, BorrowerRecord> *borrowers)
{
	std::map<uint32_t, bool> borrower_running; // job -> holds a unit it is not leaving
	std::set<std::string> seen_nodes, unknown_nodes;
	borrower_run_.clear();
	for (const NodeBooks &nb : books) {
		seen_nodes.insert(nb.node);
		if (!nb.known) {
			unknown_nodes.insert(nb.node);
			continue;
		}
		Node &n = nodes_[nb.node];
		// A node newly seen (or seen again after a restart) gets a full
		// telemetry timeout before its loans count as lost.
		if (!n.last_report)
			n.last_report = now;
		const size_t units = nb.device_of_slice.size();
		if (n.slices.size() > units) // the node shrank
			n.slices.erase(n.slices.begin() + static_cast<std::ptrdiff_t>(units), n.slices.end());
		while (n.slices.size() < units)
			n.slices.emplace_back(policy_);
		// The records' maps are walked along the units, in order.
		auto owner = nb.owners.begin();
		auto holding = nb.borrowers.begin();
		for (size_t i = 0; i < units; ++i) {
			const int u = static_cast<int>(i);
			Slice &s = n.slices[i];
			s.device = nb.device_of_slice[i];
			SliceLending &l = s.lending;
			while (owner != nb.owners.end() && owner->first < u)
				++owner;
			const bool held = l.state() != SliceState::Free;
			if (owner != nb.owners.end() && owner->first == u) {
				if (!held || l.owner() != owner->second.job) {
					if (held)
						l.owner_released(now);
					l.owner_assigned(now, owner->second.job, owner->second.partition,
					                 owner->second.end);
				}
			} else if (held && !(l.state() == SliceState::Reclaiming && l.owner() == 0)) {
				l.owner_released(now);
			}

			while (holding != nb.borrowers.end() && holding->first < u)
				++holding;
			if (holding != nb.borrowers.end() && holding->first == u) {
				const uint32_t b = holding->second.job;
				bool &running = borrower_running[b];
				running = running || !holding->second.completing;
				if (!holding->second.completing)
					borrower_run_[b] = holding->second.run;
				if (l.borrower() != b) {
					if (l.borrower() != 0)
						l.borrower_gone(now);
					l.adopt_loan(now, b);
					event(now, "loan found in the job records: " + nb.node + " slice " +
					                   std::to_string(u) + " lent to " + job_text(b));
				}
				if (auto r = reclaims_.find(b); r != reclaims_.end())
					r->second.nodes.insert(nb.node);
			} else if (l.borrower() != 0) {
				l.borrower_gone(now);
			}
		}
		n.borrowed_units.clear();
		for (const auto &[u, h] : nb.borrowers)
			n.borrowed_units.insert(u);
	}
	for (auto it = nodes_.begin(); it != nodes_.end();)
		it = seen_nodes.count(it->first) ? std::next(it) : nodes_.erase(it);

	for (auto it = reclaims_.begin(); borrowers && it != reclaims_.end();) {
		Reclaim &r = it->second;
		// The run being taken back, seen while it still runs.
		if (const auto run = borrower_run_.find(it->first);
		    !r.run && !r.requeued_at && run != borrower_run_.end())
			r.run = run->second;
		const auto record = borrowers->find(it->first);
		const BorrowerRecord *rec = record == borrowers->end() ? nullptr : &record->second;
		switch (judge(r, rec, now)) {
		case Verdict::Done:
			finish_reclaim(r, now);
			if (rec && rec->stage == BorrowerRecord::Stage::Running)
				new_run_is_a_loan(r.borrower, now); // requeued, and running again
			it = reclaims_.erase(it);
			continue;
		case Verdict::RequeueAgain:
			++r.requeued_again;
			r.requeued_at.reset(); // the next tick requeues it (its deadline is past)
			event(now,
			      "reclaim " + job_text(r.borrower) +
			              ": its job record still shows it running, not requeued (the controller restarted before saving the requeue): requeued again");
			break;
		case Verdict::RequeueEnded:
			++r.requeued_again;
			r.requeued_at.reset();
			requeue_ended_.push_back(r.borrower);
			event(now,
			      "reclaim " + job_text(r.borrower) +
			              ": ended FAILED after its deadline, its requeue not in its job record (the controller was down): requeued");
			break;
		case Verdict::Wait:
			break;
		}
		++it;
	}
	for (auto it = reclaims_.begin(); !borrowers && it != reclaims_.end();) {
		// On a node Slurm does not know yet, the borrower may well be there.
		const bool unsure =
		        std::any_of(it->second.nodes.begin(), it->second.nodes.end(),
		                    [&](const std::string &n) { return unknown_nodes.count(n) > 0; });
		if (unsure) {
			++it;
			continue;
		}
		const auto b = borrower_running.find(it->first);
		const bool gone = b == borrower_running.end();
		// Requeued, and already running again: that is a new loan.
		const bool restarted = !gone && b->second && it->second.requeued_at;
		if (gone || restarted) {
			finish_reclaim(it->second, now);
			it = reclaims_.erase(it);
		} else {
			if (!b->second && !it->second.requeued_at) // it left on its own (requeued itself)
				it->second.requeued_at = now;
			++it;
		}
	}
	// Per-job totals are not cleaned here: whether a job still exists is
	// for its record to say (forget_totals), not which nodes are known.
}

void LoanBook::forget_totals(const std::vector<uint32_t> &jobs)
{
	for (uint32_t job : jobs)
		totals_.erase(job);
}

// A reclaim is done only when the job record shows the borrower pending (or
// ended) and off the device. Slurm's job state on disk may predate the
// requeue (a controller killed just after it): a record that still shows
// the reclaimed run running is requeued again, and one that the agent's
// hard stop ended FAILED meanwhile is requeued from there, so that the
// borrower always ends up pending, its restart count one higher.
LoanBook::Verdict LoanBook::judge(Reclaim &r, const BorrowerRecord *record, Instant now)
{
	if (!record)
		return Verdict::Done; // no record left: nothing to take back
	using Stage = BorrowerRecord::Stage;
	const bool same_run = r.run && record->run == *r.run;
	switch (record->stage) {
	case Stage::Leaving:        // requeued or ended: wait until its processes are gone
		if (!r.requeued_at) // it left on its own (requeued itself)
			r.requeued_at = now;
		return Verdict::Wait;
	case Stage::Pending:
		return Verdict::Done;
	case Stage::Running:
		if (!r.requeued_at)
			return Verdict::Wait; // the grace runs
		if (!same_run)                // requeued, and running again: a new loan (or a run not known)
			return Verdict::Done;
		return r.requeued_again < requeue_again_limit ? Verdict::RequeueAgain : Verdict::Wait;
	case Stage::Failed:
		if (same_run && record->end && *record->end >= r.deadline &&
		    r.requeued_again < requeue_again_limit)
			return Verdict::RequeueEnded;
		return Verdict::Done;
	case Stage::Ended:
		return Verdict::Done;
	}
	return Verdict::Wait;
}

// A borrower requeued and running again on a slice it was being taken back
// from, seen only now (a controller restart hid its leaving): a new loan.
void LoanBook::new_run_is_a_loan(uint32_t borrower, Instant now)
{
	for (auto &[name, n] : nodes_)
		for (size_t u = 0; u < n.slices.size(); ++u)
			if (SliceLending &l = n.slices[u].lending;
			    l.borrower() == borrower && l.state() == SliceState::Reclaiming) {
				l.borrower_gone(now);
				l.adopt_loan(now, borrower);
				event(now, "loan found in the job records: " + name + " slice " +
				                   std::to_string(u) + " lent to " + job_text(borrower));
			}
}

std::vector<uint32_t> LoanBook::reclaim_borrowers() const
{
	std::vector<uint32_t> out;
	for (const auto &[b, r] : reclaims_)
		out.push_back(b);
	return out;
}

void LoanBook::report(Instant now, const Report &r)
{
	auto found = nodes_.find(r.node);
	if (found == nodes_.end())
		return;
	Node &n = found->second;
	n.last_report = now;
	n.lendable_memory_devices.clear();
	std::map<int, const DeviceReport *> by_device;
	for (const DeviceReport &d : r.devices) {
		by_device[d.device] = &d;
		if (d.lendable_memory_mib > 0)
			n.lendable_memory_devices.insert(d.device);
	}
	for (Slice &s : n.slices) {
		const auto d = by_device.find(s.device);
		if (d == by_device.end()) {
			s.lending.telemetry_lost(now); // a device the agent cannot read is busy
			continue;
		}
		const uint32_t owner = s.lending.owner();
		if (!owner || s.lending.state() == SliceState::Free)
			continue;
		double busy = d->second->busy_percent;
		if (d->second->per_job) {
			// Only the owner's own use counts: a borrower's kernels on
			// the same device must not look like the lender waking up.
			busy = 0;
			for (const JobReport &j : d->second->jobs)
				if (j.job == owner)
					busy += j.busy_percent;
		}
		s.lending.sample(now, busy);
	}
}

bool LoanBook::fresh(const Node &n, Instant now) const
{
	return n.last_report && now - *n.last_report <= telemetry_timeout_;
}

bool LoanBook::lendable(const Node &n, size_t unit, Instant now) const
{
	const Slice &s = n.slices[unit];
	return s.lending.lendable(now) && n.lendable_memory_devices.count(s.device) &&
	       !n.borrowed_units.count(static_cast<int>(unit));
}

std::vector<int> LoanBook::lendable_units(const std::string &node, Instant now) const
{
	const auto n = nodes_.find(node);
	std::vector<int> out;
	if (n == nodes_.end() || !fresh(n->second, now))
		return out;
	for (size_t u = 0; u < n->second.slices.size(); ++u)
		if (lendable(n->second, u, now))
			out.push_back(static_cast<int>(u));
	return out;
}

void LoanBook::lent(Instant now, const std::string &node, int unit, uint32_t borrower)
{
	auto n = nodes_.find(node);
	if (n == nodes_.end())
		return;
	if (unit < 0 || static_cast<size_t>(unit) >= n->second.slices.size())
		return;
	SliceLending &l = n->second.slices[static_cast<size_t>(unit)].lending;
	if (!l.lend(now, borrower))
		l.adopt_loan(now, borrower); // Slurm started it: it is a loan whatever we thought
	n->second.borrowed_units.insert(unit);
	event(now, node + " slice " + std::to_string(unit) + " of " + job_text(l.owner()) + " lent to " +
	                   job_text(borrower));
}

bool LoanBook::admin_reclaim(Instant now, uint32_t borrower)
{
	bool found = false;
	for (auto &[name, n] : nodes_)
		for (Slice &s : n.slices)
			if (s.lending.borrower() == borrower && borrower != 0) {
				s.lending.admin_reclaim(now);
				found = true;
			}
	return found;
}

void LoanBook::start_reclaims(Instant now, TickActions &out)
{
	for (auto &[name, n] : nodes_) {
		for (size_t u = 0; u < n.slices.size(); ++u) {
			const SliceLending &l = n.slices[u].lending;
			if (l.state() != SliceState::Reclaiming || !l.borrower())
				continue;
			auto [r, fresh] = reclaims_.try_emplace(l.borrower());
			r->second.nodes.insert(name);
			if (!fresh)
				continue;
			r->second.borrower = l.borrower();
			r->second.reason = l.reclaim_reason().value_or(ReclaimReason::Admin);
			// The grace runs from now, when the borrower is told, not from
			// the report that started the reclaim (up to a tick earlier).
			r->second.t0 = now;
			r->second.deadline = now + policy_.grace;
			if (const auto run = borrower_run_.find(l.borrower()); run != borrower_run_.end())
				r->second.run = run->second;
			out.signal.push_back({l.borrower(), r->second.reason});
			event(now, "reclaim " + job_text(l.borrower()) + " from " + name + " slice " +
			                   std::to_string(u) + " of " + job_text(l.owner()) + ": " +
			                   std::string(reason_name(r->second.reason)) + ", grace " +
			                   std::to_string(policy_.grace.count()) + " s");
		}
	}
}

TickActions LoanBook::tick(Instant now)
{
	TickActions out;
	const Seconds dt = last_tick_ && now > *last_tick_ ? now - *last_tick_ : Seconds(0);
	last_tick_ = now;
	for (auto &[name, n] : nodes_) {
		if (!n.last_report) // the timeout runs from the first tick that knows the node
			n.last_report = now;
		const bool stale = now - *n.last_report > telemetry_timeout_;
		n.lendable_before.resize(n.slices.size(), false);
		for (size_t u = 0; u < n.slices.size(); ++u) {
			SliceLending &l = n.slices[u].lending;
			if (stale && l.state() != SliceState::Free && l.state() != SliceState::OwnedBusy)
				l.telemetry_lost(now);
			l.tick(now);
			if (l.borrower() && dt.count() > 0) {
				const auto secs = static_cast<uint64_t>(dt.count());
				if (l.owner() && !l.owner_gone()) // an ended job lends nothing
					totals_[l.owner()].lent_slice_seconds += secs;
				totals_[l.borrower()].borrowed_slice_seconds += secs;
			}
			// Reclaims start below without changing a slice: lendable now.
			const bool now_lendable = !stale && lendable(n, u, now);
			out.lendable_appeared =
			        out.lendable_appeared || (now_lendable && !n.lendable_before[u]);
			n.lendable_before[u] = now_lendable;
		}
	}
	start_reclaims(now, out);
	out.requeue_ended = std::exchange(requeue_ended_, {});
	for (const auto &[b, r] : reclaims_)
		if (!r.requeued_at && now >= r.deadline &&
		    std::find(out.requeue_ended.begin(), out.requeue_ended.end(), b) ==
		            out.requeue_ended.end())
			out.requeue.push_back(b);
	return out;
}

void LoanBook::signalled(uint32_t borrower, Instant now)
{
	auto r = reclaims_.find(borrower);
	if (r == reclaims_.end())
		return;
	r->second.signalled = true;
	++revision_;
	(void)now;
}

void LoanBook::requeued(uint32_t borrower, Instant now)
{
	auto r = reclaims_.find(borrower);
	if (r == reclaims_.end() || r->second.requeued_at)
		return;
	r->second.requeued_at = now;
	event(now, "reclaim " + job_text(borrower) + ": requeued " +
	                   std::to_string((now - r->second.t0).count()) + " s after the signal");
}

void LoanBook::gave_up(uint32_t borrower, Instant now)
{
	auto r = reclaims_.find(borrower);
	if (r == reclaims_.end() || r->second.requeued_at)
		return;
	r->second.requeued_at = now;
	r->second.requeued_again = requeue_again_limit; // never tried again
	event(now, "reclaim " + job_text(borrower) + ": could not be requeued, stopped instead");
}

void LoanBook::finish_reclaim(const Reclaim &r, Instant now)
{
	const auto since = [&](Instant t) { return std::to_string((t - r.t0).count()); };
	event(now, "reclaim " + job_text(r.borrower) + " done (" + std::string(reason_name(r.reason)) +
	                   "): signal " + (r.signalled ? "0" : "-") + " s, requeue " +
	                   (r.requeued_at ? since(*r.requeued_at) : std::string("-")) + " s, device free " +
	                   since(now) + " s, grace " + std::to_string(policy_.grace.count()) + " s");
}

Orders LoanBook::orders_for(const std::string &node, uint64_t seq, Instant now) const
{
	Orders o;
	o.node = node;
	o.seq = seq;
	for (const auto &[b, r] : reclaims_) {
		if (!r.nodes.count(node))
			continue;
		// A stop further off than the wire carries (a far deadline from a
		// state file or a very long grace) is sent as the longest one: an
		// order the node refuses would drop every stop order of the node.
		const Instant stop_at = r.deadline + hard_stop_after_;
		const int64_t in = stop_at > now ? (stop_at - now).count() : 0;
		o.stops.push_back({b, std::min(in, max_stop_delay_seconds)});
	}
	return o;
}

BookSnapshot LoanBook::snapshot(Instant now) const
{
	BookSnapshot out;
	out.now = now;
	out.wall_offset = wall_offset_;
	const SliceLending::Memento initial;
	out.slices.reserve(slices_hint_);
	for (const auto &[name, n] : nodes_) {
		bool named = false;
		for (size_t u = 0; u < n.slices.size(); ++u) {
			SliceLending::Memento m = n.slices[u].lending.memento();
			if (m == initial)
				continue;
			if (!named) {
				out.nodes.push_back(name);
				named = true;
			}
			out.slices.push_back(
			        {out.nodes.size() - 1, static_cast<int>(u), n.slices[u].device, m});
		}
	}
	slices_hint_ = out.slices.size();
	out.reclaims.reserve(reclaims_.size());
	for (const auto &[b, r] : reclaims_)
		out.reclaims.push_back({b, r.reason, r.t0, r.deadline, r.signalled, r.requeued_at,
		                        std::vector<std::string>(r.nodes.begin(), r.nodes.end()), r.run,
		                        r.requeued_again});
	out.totals.assign(totals_.begin(), totals_.end());
	out.history.assign(history_.begin(), history_.end());
	return out;
}

bool BookSnapshot::same_content(const BookSnapshot &o, bool with_totals) const
{
	return wall_offset == o.wall_offset && nodes == o.nodes && reclaims == o.reclaims &&
	       history == o.history && (!with_totals || totals == o.totals) && slices == o.slices;
}

std::string BookSnapshot::state_text() const
{
	const auto wall = [this](std::optional<Instant> t) {
		return time_text(t ? std::optional<Instant>(*t + wall_offset) : std::nullopt);
	};
	std::string out;
	out.reserve(64 + slices.size() * 160 + totals.size() * 32 + history.size() * 100);
	out.append(state_header)
	        .append("\nsaved ")
	        .append(std::to_string(unix_of(now + wall_offset)))
	        .append("\n");
	for (const SliceRow &row : slices) {
		const SliceLending::Memento &m = row.m;
		out.append("slice ").append(nodes[row.node]).append(" ").append(std::to_string(row.unit));
		out.append(" ")
		        .append(std::to_string(row.device))
		        .append(" state=")
		        .append(state_name(m.state));
		out.append(" owner=").append(std::to_string(m.owner));
		out.append(" borrower=").append(std::to_string(m.borrower));
		out.append(" lends=").append(m.owner_lends ? "1" : "0");
		out.append(" gone=").append(m.owner_gone ? "1" : "0");
		out.append(" overdue=").append(m.overdue_reported ? "1" : "0");
		out.append(" streak=").append(std::to_string(m.busy_streak));
		out.append(" end=").append(wall(m.owner_end));
		out.append(" idle=").append(wall(m.idle_since));
		// 0: never lent (the initial value, on no clock)
		out.append(" lent=").append(
		        std::to_string(m.lent_at == Instant{} ? 0 : unix_of(m.lent_at + wall_offset)));
		out.append(" cool=").append(wall(m.cooldown_until));
		out.append(" reason=").append(m.reason ? reason_name(*m.reason) : "-");
		out.append(" deadline=").append(wall(m.deadline)).append("\n");
	}
	for (const ReclaimRow &r : reclaims) {
		out.append("reclaim ").append(std::to_string(r.borrower));
		out.append(" reason=").append(reason_name(r.reason));
		out.append(" t0=").append(std::to_string(unix_of(r.t0 + wall_offset)));
		out.append(" deadline=").append(std::to_string(unix_of(r.deadline + wall_offset)));
		out.append(" signalled=").append(r.signalled ? "1" : "0");
		out.append(" requeued=").append(wall(r.requeued_at)).append(" nodes=");
		for (size_t i = 0; i < r.nodes.size(); ++i)
			out.append(i ? "," : "").append(r.nodes[i]);
		out.append(" run=").append(r.run ? std::to_string(*r.run) : "-");
		out.append(" again=").append(std::to_string(r.requeued_again)).append("\n");
	}
	for (const auto &[job, t] : totals)
		out.append("total ")
		        .append(std::to_string(job))
		        .append(" ")
		        .append(std::to_string(t.lent_slice_seconds))
		        .append(" ")
		        .append(std::to_string(t.borrowed_slice_seconds))
		        .append("\n");
	for (const std::string &h : history)
		out.append("history ").append(h).append("\n");
	out.append("end\n");
	return out;
}

std::string LoanBook::serialize(Instant now) const
{
	return snapshot(now).state_text();
}

bool LoanBook::restore(std::string_view text, std::string &why)
{
	size_t pos = 0;
	return restore(
	        [&](std::string_view &line) {
		        if (pos >= text.size())
			        return false;
		        size_t eol = text.find('\n', pos);
		        if (eol == std::string_view::npos)
			        eol = text.size();
		        line = text.substr(pos, eol - pos);
		        pos = eol + 1;
		        return true;
	        },
	        why);
}

bool LoanBook::restore(const LineSource &next, std::string &why)
{
	std::map<std::string, Node> nodes;
	std::map<uint32_t, Reclaim> reclaims;
	std::map<uint32_t, JobTotals> totals;
	std::deque<std::string> history;
	std::optional<Instant> saved;
	bool ended = false;
	int line_no = 0;
	auto fail = [&](const std::string &what) {
		why = "line " + std::to_string(line_no) + ": " + what;
		return false;
	};
	// Times in the file are wall clock: back onto the book's clock.
	const auto shift = [this](std::optional<Instant> &t) {
		if (t)
			*t -= wall_offset_;
	};
	std::string_view line;
	while (next(line)) {
		++line_no;
		if (ended)
			return fail("text after the end marker");
		if (line_no == 1) {
			if (line != state_header)
				return fail("not a flexslurm lending state (or another version)");
			continue;
		}
		const auto w = words(line);
		if (w.empty())
			return fail("empty line");
		if (w[0] == "end" && w.size() == 1) {
			ended = true;
		} else if (w[0] == "saved" && w.size() == 2) {
			if (!parse_time(w[1], saved) || !saved)
				return fail("bad time");
		} else if (w[0] == "slice" && w.size() == 17) {
			int unit = 0, device = 0;
			if (!valid_node_name(w[1]))
				return fail("bad node name");
			if (!parse_number(w[2], unit) || unit < 0 || unit > 4096 ||
			    !parse_number(w[3], device) || device < 0 ||
			    device >= static_cast<int>(max_report_devices))
				return fail("bad slice or device number");
			SliceLending::Memento m;
			std::string_view v;
			int flag = 0;
			std::optional<Instant> lent_at;
			const bool ok = field(w[4], "state", v) &&
			                (m.state = state_of(v).value_or(SliceState::Free), state_of(v)) &&
			                field(w[5], "owner", v) && parse_number(v, m.owner) &&
			                field(w[6], "borrower", v) && parse_number(v, m.borrower) &&
			                field(w[7], "lends", v) && parse_number(v, flag) &&
			                ((m.owner_lends = flag != 0), true) && field(w[8], "gone", v) &&
			                parse_number(v, flag) && ((m.owner_gone = flag != 0), true) &&
			                field(w[9], "overdue", v) && parse_number(v, flag) &&
			                ((m.overdue_reported = flag != 0), true) &&
			                field(w[10], "streak", v) && parse_number(v, m.busy_streak) &&
			                m.busy_streak >= 0 && m.busy_streak <= 1000000 &&
			                field(w[11], "end", v) && parse_time(v, m.owner_end) &&
			                field(w[12], "idle", v) && parse_time(v, m.idle_since) &&
			                field(w[13], "lent", v) && parse_time(v, lent_at) && lent_at &&
			                field(w[14], "cool", v) && parse_time(v, m.cooldown_until) &&
			                field(w[15], "reason", v) && (v == "-" || reason_of(v)) &&
			                ((m.reason = v == "-" ? std::nullopt : reason_of(v)), true) &&
			                field(w[16], "deadline", v) && parse_time(v, m.deadline);
			if (!ok)
				return fail("malformed slice");
			m.lent_at = *lent_at == Instant{} ? Instant{} : *lent_at - wall_offset_;
			shift(m.owner_end);
			shift(m.idle_since);
			shift(m.cooldown_until);
			shift(m.deadline);
			Node &n = nodes[std::string(w[1])];
			while (n.slices.size() <= static_cast<size_t>(unit)) // units not listed: as new
				n.slices.emplace_back(policy_);
			Slice &s = n.slices[static_cast<size_t>(unit)];
			s.device = device;
			s.lending.restore(m);
			if (m.borrower)
				n.borrowed_units.insert(unit);
		} else if (w[0] == "reclaim" && (w.size() == 8 || w.size() == 10)) {
			// 8 fields: written before the run was kept (its run unknown).
			Reclaim r;
			std::string_view v;
			std::optional<Instant> t0, deadline;
			int flag = 0;
			const bool ok = parse_number(w[1], r.borrower) && r.borrower &&
			                field(w[2], "reason", v) && reason_of(v) &&
			                ((r.reason = *reason_of(v)), true) && field(w[3], "t0", v) &&
			                parse_time(v, t0) && t0 && field(w[4], "deadline", v) &&
			                parse_time(v, deadline) && deadline && *deadline >= *t0 &&
			                field(w[5], "signalled", v) && parse_number(v, flag) &&
			                field(w[6], "requeued", v) && parse_time(v, r.requeued_at) &&
			                field(w[7], "nodes", v);
			if (!ok)
				return fail("malformed reclaim");
			if (w.size() == 10) {
				std::string_view run, again;
				uint32_t n = 0;
				if (!field(w[8], "run", run) || (run != "-" && !parse_number(run, n)) ||
				    !field(w[9], "again", again) || !parse_number(again, r.requeued_again) ||
				    r.requeued_again < 0 || r.requeued_again > requeue_again_limit)
					return fail("malformed reclaim");
				if (run != "-")
					r.run = n;
			}
			r.t0 = *t0 - wall_offset_;
			r.deadline = *deadline - wall_offset_;
			shift(r.requeued_at);
			r.signalled = flag != 0;
			while (!v.empty()) {
				const size_t comma = v.find(',');
				// Orders for these nodes go back to them: names a report may carry.
				if (!valid_node_name(v.substr(0, comma)))
					return fail("malformed reclaim (bad node name)");
				r.nodes.insert(std::string(v.substr(0, comma)));
				v = comma == std::string_view::npos ? std::string_view()
				                                    : v.substr(comma + 1);
			}
			reclaims[r.borrower] = r;
		} else if (w[0] == "total" && w.size() == 4) {
			uint32_t job = 0;
			JobTotals t;
			if (!parse_number(w[1], job) || !parse_number(w[2], t.lent_slice_seconds) ||
			    !parse_number(w[3], t.borrowed_slice_seconds))
				return fail("malformed total");
			totals[job] = t;
		} else if (w[0] == "history") {
			history.emplace_back(line.substr(std::min(line.size(), size_t{8})));
			if (history.size() > history_limit)
				history.pop_front();
		} else {
			return fail("unknown line \"" + std::string(line.substr(0, 40)) + "\"");
		}
	}
	if (!ended)
		return fail("truncated (no end marker)");
	nodes_ = std::move(nodes);
	reclaims_ = std::move(reclaims);
	totals_ = std::move(totals);
	history_ = std::move(history);
	// Reports did not reach a stopped controller: every agent gets a full
	// timeout from the first sync to be heard again, and nothing new is
	// lent before its first report.
	for (auto &[name, n] : nodes_) {
		n.last_report.reset();
		n.lendable_memory_devices.clear();
	}
	shift(saved);
	last_tick_ = saved;
	++revision_;
	return true;
}

void LoanBook::clear()
{
	nodes_.clear();
	reclaims_.clear();
	totals_.clear();
	borrower_run_.clear();
	requeue_ended_.clear();
	last_tick_.reset();
	pending_events_.clear();
	history_.clear();
	++revision_;
}

std::string LoanBook::status(Instant now) const
{
	return snapshot(now).status_text();
}

std::string BookSnapshot::status_text() const
{
	std::string out = "NODE SLICE DEVICE STATE OWNER BORROWER SINCE\n";
	for (const SliceRow &row : slices) {
		const SliceLending::Memento &m = row.m;
		if (m.state == SliceState::Free)
			continue;
		out.append(nodes[row.node]).append(" ").append(std::to_string(row.unit)).append(" ");
		out.append(std::to_string(row.device)).append(" ").append(state_name(m.state)).append(" ");
		out.append(job_text(m.owner)).append(" ").append(job_text(m.borrower)).append(" ");
		out.append(m.borrower ? std::to_string((now - m.lent_at).count()) + "s" : std::string("-"));
		out.append("\n");
	}
	out.append("RECLAIMS IN FLIGHT\n");
	for (const ReclaimRow &r : reclaims)
		out.append(job_text(r.borrower))
		        .append(" ")
		        .append(reason_name(r.reason))
		        .append(" started ")
		        .append(std::to_string((now - r.t0).count()))
		        .append("s ago, deadline in ")
		        .append(std::to_string((r.deadline - now).count()))
		        .append("s")
		        .append(r.requeued_at ? ", requeued" : "")
		        .append("\n");
	out.append("HISTORY\n");
	for (const std::string &h : history)
		out.append(h).append("\n");
	return out;
}

} // namespace flexslurm
