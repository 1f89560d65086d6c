// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/lending.hpp"

#include "core/util/names.hpp"

#include <algorithm>

namespace flexslurm
{

bool LendingPolicy::partition_lends(std::string_view partition) const
{
	return std::find(never_lend_partitions.begin(), never_lend_partitions.end(), partition) ==
	       never_lend_partitions.end();
}

bool LendingPolicy::free_slices_lent(const std::vector<std::string> &node_partitions) const
{
	return free_slices && std::all_of(node_partitions.begin(), node_partitions.end(),
	                                  [this](const std::string &p) { return partition_lends(p); });
}

bool LendingPolicy::owner_lends(std::string_view partition, bool whole) const
{
	return (whole_devices || !whole) && partition_lends(partition);
}

// The names of the states and reasons, both ways, from one table each.
namespace
{

constexpr NameTable<SliceState> state_names[] = {
        {SliceState::Free, "free"}, {SliceState::OwnedBusy, "owned-busy"},  {SliceState::Idle, "idle"},
        {SliceState::Lent, "lent"}, {SliceState::Reclaiming, "reclaiming"},
};

constexpr NameTable<ReclaimReason> reason_names[] = {
        {ReclaimReason::LenderBusy, "lender-busy"},
        {ReclaimReason::LenderEnded, "lender-ended"},
        {ReclaimReason::MaxLoan, "max-loan"},
        {ReclaimReason::TelemetryLost, "telemetry-lost"},
        {ReclaimReason::Admin, "admin"},
        {ReclaimReason::OwnerArrived, "owner-arrived"},
};

} // namespace

std::string_view state_name(SliceState s) noexcept
{
	return name_of(state_names, s, "?");
}

std::string_view reason_name(ReclaimReason r) noexcept
{
	return name_of(reason_names, r, "?");
}

std::optional<SliceState> state_from_name(std::string_view name) noexcept
{
	return value_of(state_names, name);
}

std::optional<ReclaimReason> reason_from_name(std::string_view name) noexcept
{
	return value_of(reason_names, name);
}

void SliceLending::owner_assigned(Instant now, uint32_t job, std::string_view partition,
                                  std::optional<Instant> job_end, bool whole)
{
	const bool lent = state_ == SliceState::Lent || state_ == SliceState::Reclaiming;
	if (lent && owner_ != 0 && !owner_gone_)
		return; // a unit is never allocated twice: the old owner must be released first
	if (!lent)
		set(state_, SliceState::OwnedBusy);
	set(owner_, job);
	set(owner_lends_, policy_->owner_lends(partition, whole));
	set(owner_end_, job_end);
	set(idle_since_, std::nullopt);
	set(busy_streak_, 0);
	set(owner_gone_, false);
	// A borrower is on the slice the new owner got (lent while free, or
	// its lender ended): the owner counts as busy, so the loan goes back.
	if (state_ == SliceState::Lent)
		start_reclaim(now, ReclaimReason::OwnerArrived);
}

void SliceLending::owner_released(Instant now, bool free_lent)
{
	switch (state_) {
	case SliceState::Lent:
		// The slice is free now. Where free slices are lent, the loan goes
		// on as the free slice's (an owner placed there later takes it
		// back: owner_assigned); elsewhere it is taken back.
		if (free_lent) {
			set(owner_, uint32_t{0});
			set(owner_lends_, true);
			set(owner_end_, std::nullopt);
			set(idle_since_, std::nullopt);
			set(busy_streak_, 0);
			break;
		}
		set(owner_gone_, true);
		start_reclaim(now, ReclaimReason::LenderEnded);
		break;
	case SliceState::Reclaiming:
		set(owner_gone_, true);
		break;
	default:
		set(state_, SliceState::Free);
		set(owner_, uint32_t{0});
		set(idle_since_, std::nullopt);
		break;
	}
}

void SliceLending::sample(Instant now, double busy_percent)
{
	const bool idle = busy_percent < policy_->idle_below_percent;
	const bool busy = busy_percent > policy_->busy_above_percent;
	// Counted up to busy_samples, enough for the decision below: a busy
	// owner's slice stops changing (and its node's snapshot rows stay
	// shared) once the streak is there. A larger value (a restored state,
	// a lower busy_samples since) is kept as it is.
	set(busy_streak_,
	    busy ? std::min(busy_streak_ + 1, std::max(busy_streak_, policy_->busy_samples)) : 0);
	switch (state_) {
	case SliceState::OwnedBusy:
		if (!idle) {
			set(idle_since_, std::nullopt);
		} else {
			if (!idle_since_)
				set(idle_since_, now);
			if (now - *idle_since_ >= policy_->idle_window)
				set(state_, SliceState::Idle);
		}
		break;
	case SliceState::Idle:
		if (!idle) { // not lent: any use ends the idle streak
			set(state_, SliceState::OwnedBusy);
			set(idle_since_, std::nullopt);
		}
		break;
	case SliceState::Lent:
		// Between the thresholds the loan goes on (hysteresis): the
		// borrower's work must not flap on the lender's noise.
		if (busy_streak_ >= policy_->busy_samples)
			start_reclaim(now, ReclaimReason::LenderBusy);
		break;
	default:
		break;
	}
}

void SliceLending::telemetry_lost(Instant now)
{
	set(busy_streak_, 0);
	if (state_ == SliceState::Lent)
		start_reclaim(now, ReclaimReason::TelemetryLost);
	else if (state_ == SliceState::Idle || state_ == SliceState::OwnedBusy) {
		set(state_, SliceState::OwnedBusy);
		set(idle_since_, std::nullopt);
	}
}

void SliceLending::admin_reclaim(Instant now)
{
	if (state_ == SliceState::Lent)
		start_reclaim(now, ReclaimReason::Admin);
}

bool SliceLending::lendable(Instant now) const
{
	if (cooldown_until_ && now < *cooldown_until_)
		return false;
	// A free slice: lent at once when the policy lends free slices (an
	// owner placed there later takes it back: owner_assigned).
	if (state_ == SliceState::Free)
		return policy_->free_slices;
	if (state_ != SliceState::Idle || !owner_lends_)
		return false;
	if (owner_end_ && *owner_end_ - now < policy_->min_loan)
		return false;
	return true;
}

bool SliceLending::lend(Instant now, uint32_t borrower)
{
	if (!lendable(now) || borrower == 0)
		return false;
	begin_loan(now, borrower);
	return true;
}

void SliceLending::begin_loan(Instant now, uint32_t borrower)
{
	set(state_, SliceState::Lent);
	set(borrower_, borrower);
	set(lent_at_, now);
	set(busy_streak_, 0);
	set(reason_, std::nullopt);
	set(deadline_, std::nullopt);
}

void SliceLending::start_reclaim(Instant now, ReclaimReason why)
{
	set(state_, SliceState::Reclaiming);
	set(reason_, why);
	set(deadline_, now + policy_->grace);
	set(overdue_reported_, false);
}

void SliceLending::borrower_gone(Instant now)
{
	if (state_ == SliceState::Lent) {
		// The borrower finished on its own: the lender is still idle (a
		// free slice is free again).
		set(state_, owner_ ? SliceState::Idle : SliceState::Free);
	} else if (state_ == SliceState::Reclaiming) {
		const bool no_lender = owner_gone_ || owner_ == 0; // its owner ended, or it was lent free
		// The cooldown keeps a lender that wanted its slice back from
		// lending it again at once; a slice left with no lender has none
		// to protect, unless an admin or a lost report took the loan back.
		if (!no_lender || reason_ == ReclaimReason::Admin || reason_ == ReclaimReason::TelemetryLost)
			set(cooldown_until_, now + policy_->cooldown);
		if (no_lender) {
			set(state_, SliceState::Free);
			set(owner_, uint32_t{0});
		} else {
			set(state_, SliceState::OwnedBusy);
		}
		set(idle_since_, std::nullopt);
	} else {
		return;
	}
	set(borrower_, uint32_t{0});
	set(owner_gone_, false);
	set(deadline_, std::nullopt);
}

void SliceLending::adopt_loan(Instant now, uint32_t borrower)
{
	if (borrower == 0 ||
	    ((state_ == SliceState::Lent || state_ == SliceState::Reclaiming) && borrower_ == borrower))
		return;
	begin_loan(now, borrower);
}

SliceLending::Memento SliceLending::memento() const
{
	return Memento{
	        state_,       owner_,     borrower_,   owner_lends_, owner_gone_,     overdue_reported_,
	        busy_streak_, owner_end_, idle_since_, lent_at_,     cooldown_until_, reason_,
	        deadline_};
}

void SliceLending::restore(const Memento &m)
{
	state_ = m.state;
	owner_ = m.owner;
	borrower_ = m.borrower;
	owner_lends_ = m.owner_lends;
	owner_gone_ = m.owner_gone;
	overdue_reported_ = m.overdue_reported;
	busy_streak_ = m.busy_streak;
	owner_end_ = m.owner_end;
	idle_since_ = m.idle_since;
	lent_at_ = m.lent_at;
	cooldown_until_ = m.cooldown_until;
	reason_ = m.reason;
	deadline_ = m.deadline;
	changed_ = true;
}

bool SliceLending::tick(Instant now)
{
	if (state_ == SliceState::Lent && now - lent_at_ >= policy_->max_loan)
		start_reclaim(now, ReclaimReason::MaxLoan);
	if (state_ == SliceState::Reclaiming && deadline_ && now > *deadline_ && !overdue_reported_) {
		set(overdue_reported_, true);
		return true;
	}
	return false;
}

} // namespace flexslurm
