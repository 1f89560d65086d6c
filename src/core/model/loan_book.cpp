// SPDX-License-Identifier: GPL-2.0-or-later
// The ledger's allocations, telemetry and clock: sync with the job records,
// reports, loans and the tick. Reclaims in flight are in
// loan_book_reclaims.cpp, the snapshot and the state file in
// loan_book_state.cpp.
#include "core/model/loan_book.hpp"

#include "core/model/loan_book_text.hpp"

#include <algorithm>

namespace flexslurm
{

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
	history_.push_back(std::to_string(book_text::unix_of(now + wall_offset_)) + " " + text);
	while (history_.size() > book_text::history_limit)
		history_.pop_front();
	pending_events_.push_back(std::move(text));
	++revision_;
}

std::vector<std::string> LoanBook::take_events()
{
	return std::exchange(pending_events_, {});
}

std::vector<int64_t> LoanBook::take_reclaim_durations()
{
	return std::exchange(reclaim_durations_, {});
}

// The node the index-th record of the last sync named, if it still has
// that name (the records come in the same order tick after tick), else
// looked up (and made).
LoanBook::Node *LoanBook::node_of(size_t index, const std::string &name)
{
	if (index < sync_order_.size() && sync_order_[index]->first == name)
		return &sync_order_[index]->second;
	auto it = nodes_.try_emplace(name).first;
	if (index >= sync_order_.size())
		sync_order_.resize(index + 1, it);
	sync_order_[index] = it;
	return &it->second;
}

void LoanBook::sync(Instant now, const std::vector<NodeBooks> &books,
                    const std::map<uint32_t, BorrowerRecord> *borrowers, Seconds end_offset)
{
	// job -> holds a unit it is not leaving: what decides without records.
	std::map<uint32_t, bool> borrower_running;
	std::vector<std::string> unknown_nodes;
	const uint64_t sync = ++syncs_;
	borrower_run_.clear();
	for (size_t i = 0; i < books.size(); ++i) {
		const NodeBooks &nb = books[i];
		if (!nb.known) {
			unknown_nodes.push_back(nb.node);
			if (auto n = nodes_.find(nb.node); n != nodes_.end())
				n->second.synced = sync;
			continue;
		}
		Node &n = *node_of(i, nb.node);
		n.synced = sync;
		sync_node(n, nb, now, end_offset, borrowers ? nullptr : &borrower_running);
	}
	// Last write wins, as in a map: a borrower's units all show one run.
	std::stable_sort(borrower_run_.begin(), borrower_run_.end(),
	                 [](const auto &a, const auto &b) { return a.first < b.first; });
	size_t kept = 0;
	for (size_t i = 0; i < borrower_run_.size(); ++i) {
		if (kept && borrower_run_[kept - 1].first == borrower_run_[i].first)
			--kept; // a later one of the same borrower replaces it
		borrower_run_[kept++] = borrower_run_[i];
	}
	borrower_run_.resize(kept);
	bool erased = false;
	for (auto it = nodes_.begin(); it != nodes_.end();) {
		if (it->second.synced == sync) {
			++it;
		} else {
			it = nodes_.erase(it);
			erased = true;
		}
	}
	if (erased)
		sync_order_.clear();

	if (borrowers)
		settle_reclaims(now, *borrowers);
	else
		settle_reclaims(now, borrower_running, unknown_nodes);
	// Per-job totals are not cleaned here: whether a job still exists is
	// for its record to say (forget_totals), not which nodes are known.
}

void LoanBook::sync_node(Node &n, const NodeBooks &nb, Instant now, Seconds end_offset,
                         std::map<uint32_t, bool> *borrower_running)
{
	// A node newly seen (or seen again after a restart) gets a full
	// telemetry timeout before its loans count as lost.
	if (!n.last_report)
		n.last_report = now;
	if (n.partitions != nb.partitions)
		n.partitions = nb.partitions;
	const size_t units = nb.device_of_slice.size();
	if (n.slices.size() != units)
		n.changed = true;
	if (n.slices.size() > units) // the node shrank
		n.slices.erase(n.slices.begin() + static_cast<std::ptrdiff_t>(units), n.slices.end());
	while (n.slices.size() < units)
		n.slices.emplace_back(policy_);
	const bool free_lent = policy_.free_slices_lent(n.partitions);
	for (size_t i = 0; i < units; ++i) {
		const int u = static_cast<int>(i);
		Slice &s = n.slices[i];
		if (s.device != nb.device_of_slice[i]) {
			s.device = nb.device_of_slice[i];
			n.changed = true;
		}
		SliceLending &l = s.lending;
		const SliceOwner *owner = i < nb.owners.size() && nb.owners[i].job ? &nb.owners[i] : nullptr;
		const bool held = l.state() != SliceState::Free;
		if (owner) {
			if (!held || l.owner() != owner->job) {
				if (held)
					l.owner_released(now, free_lent);
				l.owner_assigned(now, owner->job, owner->partition,
				                 owner->end ? std::optional<Instant>(*owner->end - end_offset)
				                            : std::nullopt,
				                 owner->whole);
			}
		} else if (held && !(l.state() == SliceState::Reclaiming && l.owner() == 0)) {
			l.owner_released(now, free_lent);
		}

		const BorrowHolding *holding =
		        i < nb.borrowers.size() && nb.borrowers[i].job ? &nb.borrowers[i] : nullptr;
		if (holding) {
			const uint32_t b = holding->job;
			if (borrower_running) {
				bool &running = (*borrower_running)[b];
				running = running || !holding->completing;
			}
			if (!holding->completing)
				borrower_run_.emplace_back(b, holding->run);
			if (l.borrower() != b) {
				if (l.borrower() != 0)
					l.borrower_gone(now);
				l.adopt_loan(now, b);
				event(now, "loan found in the job records: " + nb.node + " slice " +
				                   std::to_string(u) + " lent to " + book_text::job_text(b));
			}
			if (!reclaims_.empty())
				if (auto r = reclaims_.find(b); r != reclaims_.end())
					r->second.nodes.insert(nb.node);
		} else if (l.borrower() != 0) {
			l.borrower_gone(now);
		}
		touched(n, s);
	}
	// As synced (units past the slices too); rewritten only when it
	// differs (most ticks it does not).
	size_t held_units = 0;
	bool same = true;
	for (size_t u = 0; u < nb.borrowers.size() && same; ++u)
		if (nb.borrowers[u].job) {
			++held_units;
			same = n.borrowed_units.count(static_cast<int>(u)) != 0;
		}
	if (!same || held_units != n.borrowed_units.size()) {
		n.borrowed_units.clear();
		for (size_t u = 0; u < nb.borrowers.size(); ++u)
			if (nb.borrowers[u].job)
				n.borrowed_units.insert(static_cast<int>(u));
	}
}

SliceOwner &NodeBooks::owner(size_t u)
{
	if (owners.size() <= u)
		owners.resize(u + 1);
	return owners[u];
}

BorrowHolding &NodeBooks::borrower(size_t u)
{
	if (borrowers.size() <= u)
		borrowers.resize(u + 1);
	return borrowers[u];
}

void NodeBooks::clear_units()
{
	for (SliceOwner &o : owners) {
		o.job = 0;
		o.partition.clear(); // keeps its memory for the next fill
		o.end.reset();
		o.whole = false;
	}
	for (BorrowHolding &h : borrowers)
		h = BorrowHolding{};
}

void LoanBook::forget_totals(const std::vector<uint32_t> &jobs)
{
	for (uint32_t job : jobs)
		totals_.erase(job);
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
			touched(n, s);
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
		touched(n, s);
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
	       !n.borrowed_units.count(static_cast<int>(unit)) &&
	       (s.lending.state() != SliceState::Free || policy_.free_slices_lent(n.partitions));
}

std::vector<int> LoanBook::lendable_units(const std::string &node, Instant now,
                                          const std::function<bool(int)> &allocated_now) const
{
	const auto n = nodes_.find(node);
	std::vector<int> out;
	if (n == nodes_.end() || !fresh(n->second, now))
		return out;
	for (size_t u = 0; u < n->second.slices.size(); ++u) {
		if (!lendable(n->second, u, now))
			continue;
		// A slice free at the last sync that Slurm has given an owner
		// since (the same scheduling pass) is that owner's: not lent.
		if (n->second.slices[u].lending.state() == SliceState::Free && allocated_now &&
		    allocated_now(static_cast<int>(u)))
			continue;
		out.push_back(static_cast<int>(u));
	}
	return out;
}

void LoanBook::lent(Instant now, const std::string &node, int unit, uint32_t borrower)
{
	auto n = nodes_.find(node);
	if (n == nodes_.end())
		return;
	if (unit < 0 || static_cast<size_t>(unit) >= n->second.slices.size())
		return;
	Slice &s = n->second.slices[static_cast<size_t>(unit)];
	SliceLending &l = s.lending;
	if (!l.lend(now, borrower))
		l.adopt_loan(now, borrower); // Slurm started it: it is a loan whatever we thought
	touched(n->second, s);
	n->second.borrowed_units.insert(unit);
	++counters_.loans;
	event(now, node + " slice " + std::to_string(unit) + book_text::of_lender(l.owner()) + " lent to " +
	                   book_text::job_text(borrower));
}

bool LoanBook::admin_reclaim(Instant now, uint32_t borrower)
{
	bool found = false;
	for (auto &[name, n] : nodes_)
		for (Slice &s : n.slices)
			if (s.lending.borrower() == borrower && borrower != 0) {
				s.lending.admin_reclaim(now);
				touched(n, s);
				found = true;
			}
	return found;
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
			Slice &s = n.slices[u];
			SliceLending &l = s.lending;
			if (stale && l.state() != SliceState::Free && l.state() != SliceState::OwnedBusy)
				l.telemetry_lost(now);
			l.tick(now);
			touched(n, s);
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
			if (l.state() == SliceState::Reclaiming && l.borrower())
				start_reclaim(name, u, l, now, out);
		}
	}
	out.requeue_ended = std::exchange(requeue_ended_, {});
	for (const auto &[b, r] : reclaims_)
		if (!r.requeued_at && now >= r.deadline &&
		    std::find(out.requeue_ended.begin(), out.requeue_ended.end(), b) ==
		            out.requeue_ended.end())
			out.requeue.push_back(b);
	return out;
}

Orders LoanBook::orders_for(const std::string &node, uint64_t seq, Instant now, bool with_slices) const
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
	// Who holds each slice: the node's metrics and DCGM job mapping.
	if (const auto n = nodes_.find(node); with_slices && n != nodes_.end())
		for (size_t u = 0; u < n->second.slices.size() && o.slices.size() < max_slice_holders &&
		                   u <= static_cast<size_t>(max_slice_unit);
		     ++u) {
			const SliceLending &l = n->second.slices[u].lending;
			if (l.owner() || l.borrower())
				o.slices.push_back(
				        {static_cast<int>(u), l.owner_gone() ? 0 : l.owner(), l.borrower()});
		}
	return o;
}

void LoanBook::clear()
{
	nodes_.clear();
	sync_order_.clear();
	reclaims_.clear();
	totals_.clear();
	borrower_run_.clear();
	requeue_ended_.clear();
	last_tick_.reset();
	pending_events_.clear();
	history_.clear();
	++revision_;
}

} // namespace flexslurm
