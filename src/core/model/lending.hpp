// SPDX-License-Identifier: GPL-2.0-or-later
// Idle reclaim, the policy part: when a slice that a job holds but does not
// use may be lent to a borrower, and when it must be taken back. One
// SliceLending per slice; the plugins feed it allocation events, telemetry
// samples and the clock, and act on what it says (place a borrower, requeue
// it, hard-stop it after the grace). No Slurm, no clock of its own: tests
// drive it with a fake clock.
#pragma once

#include "core/util/time.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flexslurm
{

struct LendingPolicy {
	double idle_below_percent = 5;                  // a sample under this counts as idle
	Seconds idle_window{600};                       // idle that long before a slice may be lent
	double busy_above_percent = 20;                 // hysteresis: a lender is busy again only above this
	int busy_samples = 2;                           // ... for this many samples in a row
	Seconds min_loan{120};                          // no loan if the lender's job ends sooner
	Seconds max_loan{3600};                         // a loan is taken back after this long
	Seconds cooldown{300};                          // no new loan of a slice this soon after a reclaim
	Seconds grace{60};                              // a borrower has this long to leave
	std::vector<std::string> never_lend_partitions; // lenders there never lend
	// A device a job holds whole (gres/gpu) is lent like slices. Off by default:
	// such an owner has no memory limit, so it may need what a borrower holds.
	bool whole_devices = false;
	// A free slice (no job holds it) may be lent too; an owner placed on it
	// takes it back like any lender (ReclaimReason::OwnerArrived). Off by
	// default: an owner then shares its slice with the borrower for up to
	// the grace.
	bool free_slices = false;

	bool partition_lends(std::string_view partition) const;
	// Whether the free slices of a node in these partitions are lent: with
	// free_slices, unless one of them never lends (a job placed there
	// later would share its slice with the borrower for the grace).
	bool free_slices_lent(const std::vector<std::string> &node_partitions) const;
	// Whether a job in `partition` lends what it holds; `whole`: it holds
	// the device whole (gres/gpu), not as slices.
	bool owner_lends(std::string_view partition, bool whole) const;
};

enum class SliceState {
	Free,       // no owner
	OwnedBusy,  // owned, in use (or not yet seen idle long enough)
	Idle,       // owned, idle for the window: may be lent
	Lent,       // lent to a borrower (owned, or free with policy.free_slices)
	Reclaiming, // the borrower has been told to leave
};

// OwnerArrived: an owner was placed on a slice lent while free (or while
// its lender was leaving); the loan is from that owner now, busy.
enum class ReclaimReason { LenderBusy, LenderEnded, MaxLoan, TelemetryLost, Admin, OwnerArrived };
inline constexpr size_t reclaim_reason_count = 6; // ReclaimReason's values

std::string_view state_name(SliceState s) noexcept;
std::string_view reason_name(ReclaimReason r) noexcept;
// The reverse (the state file): nullopt for a name none has.
std::optional<SliceState> state_from_name(std::string_view name) noexcept;
std::optional<ReclaimReason> reason_from_name(std::string_view name) noexcept;

class SliceLending
{
public:
	explicit SliceLending(const LendingPolicy &policy) : policy_(&policy) {}

	// Allocation events. An owner assigned to a slice that is lent with no
	// owner (a free slice, or one whose lender ended) takes the loan over:
	// it counts as busy, and the loan is taken back (OwnerArrived) unless
	// its reclaim is already under way.
	void owner_assigned(Instant now, uint32_t job, std::string_view partition,
	                    std::optional<Instant> job_end, bool whole = false);
	// `free_lent`: the node's free slices are lent (LendingPolicy::
	// free_slices_lent). Then a loan whose lender ends goes on as the free
	// slice's loan; otherwise it is taken back (LenderEnded).
	void owner_released(Instant now, bool free_lent = false);
	// The owner's use of the slice, every few seconds.
	void sample(Instant now, double busy_percent);
	// No report from the node: count as busy, take back any loan.
	void telemetry_lost(Instant now);
	// The admin takes a loan back.
	void admin_reclaim(Instant now);

	bool lendable(Instant now) const;
	// Records a loan; false (and nothing changes) if the slice is not lendable.
	bool lend(Instant now, uint32_t borrower);
	// The borrower left the device (requeued, ended, or stopped). After a
	// reclaim the slice cools down (no loan for policy.cooldown), unless it
	// is left with no lender to protect (its owner ended, or it was lent
	// free) and no admin or lost report took it back.
	void borrower_gone(Instant now);
	// Clock: starts reclaims due to max_loan; true once when a reclaim has
	// outlived the grace (the caller then hard-stops the borrower).
	bool tick(Instant now);

	// A loan Slurm's books show but this slice did not record (found after
	// a controller restart, or placed by a scheduler pass that raced a
	// tick): it is a loan now, whatever the idle history says.
	void adopt_loan(Instant now, uint32_t borrower);

	// Everything the slice knows, for the controller's state file.
	struct Memento {
		SliceState state = SliceState::Free;
		uint32_t owner = 0;
		uint32_t borrower = 0;
		bool owner_lends = true;
		bool owner_gone = false;
		bool overdue_reported = false;
		int busy_streak = 0;
		std::optional<Instant> owner_end;
		std::optional<Instant> idle_since;
		Instant lent_at{};
		std::optional<Instant> cooldown_until;
		std::optional<ReclaimReason> reason;
		std::optional<Instant> deadline;

		bool operator==(const Memento &) const = default;
	};
	Memento memento() const;
	void restore(const Memento &m);
	// Whether anything the memento shows changed since the last call (the
	// controller saves only the slices that did).
	bool take_changed() noexcept
	{
		const bool c = changed_;
		changed_ = false;
		return c;
	}

	SliceState state() const noexcept { return state_; }
	std::optional<Instant> lent_since() const noexcept
	{
		return borrower_ ? std::optional<Instant>(lent_at_) : std::nullopt;
	}
	uint32_t owner() const noexcept { return owner_; }
	// The owner ended while the slice was lent: it lends no more.
	bool owner_gone() const noexcept { return owner_gone_; }
	uint32_t borrower() const noexcept { return borrower_; }
	std::optional<ReclaimReason> reclaim_reason() const noexcept { return reason_; }
	std::optional<Instant> reclaim_deadline() const noexcept { return deadline_; }

private:
	void begin_loan(Instant now, uint32_t borrower); // lend and adopt_loan
	void start_reclaim(Instant now, ReclaimReason why);
	// Every change of a field goes through here.
	template <class T, class V>
	void set(T &field, V &&value)
	{
		if (!(field == value)) {
			field = std::forward<V>(value);
			changed_ = true;
		}
	}

	const LendingPolicy *policy_;
	SliceState state_ = SliceState::Free;
	uint32_t owner_ = 0;
	uint32_t borrower_ = 0;
	bool owner_lends_ = true;
	std::optional<Instant> owner_end_;
	std::optional<Instant> idle_since_;
	int busy_streak_ = 0;
	Instant lent_at_{};
	std::optional<Instant> cooldown_until_;
	std::optional<ReclaimReason> reason_;
	std::optional<Instant> deadline_;
	bool overdue_reported_ = false;
	bool owner_gone_ = false; // released while a borrower was still on it
	bool changed_ = true;     // since take_changed()
};

} // namespace flexslurm
