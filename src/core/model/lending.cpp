#include "core/model/lending.hpp"

#include <algorithm>

namespace flexslurm
{

bool LendingPolicy::partition_lends(std::string_view partition) const
{
	return std::find(never_lend_partitions.begin(), never_lend_partitions.end(), partition) ==
	       never_lend_partitions.end();
}

std::string_view state_name(SliceState s) noexcept
{
	switch (s) {
	case SliceState::Free:
		return "free";
	case SliceState::OwnedBusy:
		return "owned-busy";
	case SliceState::Idle:
		return "idle";
	case SliceState::Lent:
		return "lent";
	case SliceState::Reclaiming:
		return "reclaiming";
	}
	return "?";
}

std::string_view reason_name(ReclaimReason r) noexcept
{
	switch (r) {
	case ReclaimReason::LenderBusy:
		return "lender-busy";
	case ReclaimReason::LenderEnded:
		return "lender-ended";
	case ReclaimReason::MaxLoan:
		return "max-loan";
	case ReclaimReason::TelemetryLost:
		return "telemetry-lost";
	case ReclaimReason::Admin:
		return "admin";
	}
	return "?";
}

void SliceLending::owner_assigned(Instant now, uint32_t job, std::string_view partition,
                                  std::optional<Instant> job_end)
{
	if (state_ == SliceState::Lent || state_ == SliceState::Reclaiming)
		return; // a unit is never allocated twice: the old owner must be released first
	state_ = SliceState::OwnedBusy;
	owner_ = job;
	owner_lends_ = policy_->partition_lends(partition);
	owner_end_ = job_end;
	idle_since_.reset();
	busy_streak_ = 0;
	(void)now;
}

void SliceLending::owner_released(Instant now)
{
	switch (state_) {
	case SliceState::Lent:
		owner_gone_ = true;
		start_reclaim(now, ReclaimReason::LenderEnded);
		break;
	case SliceState::Reclaiming:
		owner_gone_ = true;
		break;
	default:
		state_ = SliceState::Free;
		owner_ = 0;
		idle_since_.reset();
		break;
	}
}

void SliceLending::sample(Instant now, double busy_percent)
{
	const bool idle = busy_percent < policy_->idle_below_percent;
	const bool busy = busy_percent > policy_->busy_above_percent;
	busy_streak_ = busy ? busy_streak_ + 1 : 0;
	switch (state_) {
	case SliceState::OwnedBusy:
		if (!idle) {
			idle_since_.reset();
		} else {
			if (!idle_since_)
				idle_since_ = now;
			if (now - *idle_since_ >= policy_->idle_window)
				state_ = SliceState::Idle;
		}
		break;
	case SliceState::Idle:
		if (!idle) { // not lent: any use ends the idle streak
			state_ = SliceState::OwnedBusy;
			idle_since_.reset();
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
	busy_streak_ = 0;
	if (state_ == SliceState::Lent)
		start_reclaim(now, ReclaimReason::TelemetryLost);
	else if (state_ == SliceState::Idle || state_ == SliceState::OwnedBusy) {
		state_ = SliceState::OwnedBusy;
		idle_since_.reset();
	}
}

void SliceLending::admin_reclaim(Instant now)
{
	if (state_ == SliceState::Lent)
		start_reclaim(now, ReclaimReason::Admin);
}

bool SliceLending::lendable(Instant now) const
{
	if (state_ != SliceState::Idle || !owner_lends_)
		return false;
	if (cooldown_until_ && now < *cooldown_until_)
		return false;
	if (owner_end_ && *owner_end_ - now < policy_->min_loan)
		return false;
	return true;
}

bool SliceLending::lend(Instant now, uint32_t borrower)
{
	if (!lendable(now) || borrower == 0)
		return false;
	state_ = SliceState::Lent;
	borrower_ = borrower;
	lent_at_ = now;
	busy_streak_ = 0;
	reason_.reset();
	deadline_.reset();
	return true;
}

void SliceLending::start_reclaim(Instant now, ReclaimReason why)
{
	state_ = SliceState::Reclaiming;
	reason_ = why;
	deadline_ = now + policy_->grace;
	overdue_reported_ = false;
}

void SliceLending::borrower_gone(Instant now)
{
	if (state_ == SliceState::Lent) {
		// The borrower finished on its own: the lender is still idle.
		state_ = SliceState::Idle;
	} else if (state_ == SliceState::Reclaiming) {
		cooldown_until_ = now + policy_->cooldown;
		if (owner_gone_) {
			state_ = SliceState::Free;
			owner_ = 0;
		} else {
			state_ = SliceState::OwnedBusy;
		}
		idle_since_.reset();
	} else {
		return;
	}
	borrower_ = 0;
	owner_gone_ = false;
	deadline_.reset();
}

void SliceLending::adopt_loan(Instant now, uint32_t borrower)
{
	if (borrower == 0 ||
	    ((state_ == SliceState::Lent || state_ == SliceState::Reclaiming) && borrower_ == borrower))
		return;
	state_ = SliceState::Lent;
	borrower_ = borrower;
	lent_at_ = now;
	busy_streak_ = 0;
	reason_.reset();
	deadline_.reset();
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
}

bool SliceLending::tick(Instant now)
{
	if (state_ == SliceState::Lent && now - lent_at_ >= policy_->max_loan)
		start_reclaim(now, ReclaimReason::MaxLoan);
	if (state_ == SliceState::Reclaiming && deadline_ && now > *deadline_ && !overdue_reported_) {
		overdue_reported_ = true;
		return true;
	}
	return false;
}

} // namespace flexslurm
