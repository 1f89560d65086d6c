// SPDX-License-Identifier: GPL-2.0-or-later
// The ledger's reclaims in flight: started by the tick from the slices
// that began one, carried out by the controller (signalled, requeued, gave
// up), and ended only by what the job records say.
#include "core/model/loan_book.hpp"

#include "core/model/loan_book_text.hpp"

#include <algorithm>

namespace flexslurm
{

using book_text::job_text;
using book_text::requeue_again_limit;

// With the borrowers' job records (the controller's tick).
void LoanBook::settle_reclaims(Instant now, const std::map<uint32_t, BorrowerRecord> &borrowers)
{
	for (auto it = reclaims_.begin(); it != reclaims_.end();) {
		Reclaim &r = it->second;
		// The run being taken back, seen while it still runs.
		if (const auto run = run_of(it->first); !r.run && !r.requeued_at && run)
			r.run = *run;
		const auto record = borrowers.find(it->first);
		const BorrowerRecord *rec = record == borrowers.end() ? nullptr : &record->second;
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
}

// Without records: a borrower that holds no unit any more counts as gone.
void LoanBook::settle_reclaims(Instant now, const std::map<uint32_t, bool> &borrower_running,
                               const std::vector<std::string> &unknown_nodes)
{
	for (auto it = reclaims_.begin(); it != reclaims_.end();) {
		// On a node Slurm does not know yet, the borrower may well be there.
		const bool unsure = std::any_of(
		        it->second.nodes.begin(), it->second.nodes.end(), [&](const std::string &n) {
			        return std::find(unknown_nodes.begin(), unknown_nodes.end(), n) !=
			               unknown_nodes.end();
		        });
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
			if (Slice &s = n.slices[u];
			    s.lending.borrower() == borrower && s.lending.state() == SliceState::Reclaiming) {
				s.lending.borrower_gone(now);
				s.lending.adopt_loan(now, borrower);
				touched(n, s);
				event(now, "loan found in the job records: " + name + " slice " +
				                   std::to_string(u) + " lent to " + job_text(borrower));
			}
}

std::optional<uint32_t> LoanBook::run_of(uint32_t borrower) const
{
	const auto it = std::lower_bound(borrower_run_.begin(), borrower_run_.end(), borrower,
	                                 [](const auto &e, uint32_t b) { return e.first < b; });
	if (it == borrower_run_.end() || it->first != borrower)
		return std::nullopt;
	return it->second;
}

std::vector<uint32_t> LoanBook::reclaim_borrowers() const
{
	std::vector<uint32_t> out;
	out.reserve(reclaims_.size());
	for (const auto &[b, r] : reclaims_)
		out.push_back(b);
	return out;
}

// A slice of `name` is reclaiming (the tick found it so): the reclaim of
// its borrower takes in the node, and starts if it is new.
void LoanBook::start_reclaim(const std::string &name, size_t unit, const SliceLending &l, Instant now,
                             TickActions &out)
{
	auto [r, fresh] = reclaims_.try_emplace(l.borrower());
	r->second.nodes.insert(name);
	if (!fresh)
		return;
	r->second.borrower = l.borrower();
	r->second.reason = l.reclaim_reason().value_or(ReclaimReason::Admin);
	// The grace runs from now, when the borrower is told, not from the
	// report that started the reclaim (up to a tick earlier).
	r->second.t0 = now;
	r->second.deadline = now + policy_.grace;
	r->second.run = run_of(l.borrower());
	out.signal.push_back({l.borrower(), r->second.reason});
	if (const auto reason = static_cast<size_t>(r->second.reason); reason < counters_.reclaims.size())
		++counters_.reclaims[reason];
	event(now, "reclaim " + job_text(l.borrower()) + " from " + name + " slice " + std::to_string(unit) +
	                   book_text::of_lender(l.owner()) + ": " +
	                   std::string(reason_name(r->second.reason)) + ", grace " +
	                   std::to_string(policy_.grace.count()) + " s");
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
	if (reclaim_durations_.size() < 4096) // taken every tick
		reclaim_durations_.push_back((now - r.t0).count());
	event(now, "reclaim " + job_text(r.borrower) + " done (" + std::string(reason_name(r.reason)) +
	                   "): signal " + (r.signalled ? "0" : "-") + " s, requeue " +
	                   (r.requeued_at ? since(*r.requeued_at) : std::string("-")) + " s, device free " +
	                   since(now) + " s, grace " + std::to_string(policy_.grace.count()) + " s");
}

} // namespace flexslurm
