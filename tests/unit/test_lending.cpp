// SPDX-License-Identifier: GPL-2.0-or-later
// The lending state machine of one slice, driven by a fake clock: scripted
// scenarios, then long random sequences checked against the invariants the
// reclaim design rests on.
#include "suites.hpp"

#include "core/io/config.hpp"
#include "core/model/lending.hpp"

#include <random>
#include <string>

using namespace flexslurm;
using namespace std::chrono_literals;

namespace
{

Instant at(long s)
{
	return Instant(Seconds(s));
}

// 10 min idle window, reclaim after 2 samples above 20 %, grace 60 s.
LendingPolicy policy()
{
	LendingPolicy p;
	p.never_lend_partitions = {"interactive"};
	return p;
}

// Feeds one sample every 5 s from `from` to `to`.
void samples(SliceLending &s, long from, long to, double busy)
{
	for (long t = from; t <= to; t += 5)
		s.sample(at(t), busy);
}

} // namespace

START_TEST(idle_for_the_window_then_lent_then_reclaimed_when_busy)
{
	const LendingPolicy p = policy();
	SliceLending s(p);
	s.owner_assigned(at(0), 100, "gpu", at(7200));
	ck_assert(s.state() == SliceState::OwnedBusy);
	samples(s, 0, 595, 1.0);
	ck_assert(s.state() == SliceState::OwnedBusy); // 595 s idle: not yet
	ck_assert(!s.lendable(at(595)));
	s.sample(at(600), 1.0);
	ck_assert(s.state() == SliceState::Idle);
	ck_assert(s.lendable(at(600)));
	ck_assert(s.lend(at(600), 200));
	ck_assert(s.state() == SliceState::Lent);
	ck_assert_uint_eq(s.borrower(), 200);
	s.sample(at(605), 15.0); // between the thresholds: the loan goes on
	s.sample(at(610), 50.0);
	ck_assert(s.state() == SliceState::Lent); // one busy sample is not enough
	s.sample(at(615), 60.0);
	ck_assert(s.state() == SliceState::Reclaiming);
	ck_assert(*s.reclaim_reason() == ReclaimReason::LenderBusy);
	ck_assert(*s.reclaim_deadline() == at(675));
	ck_assert(!s.tick(at(675)));
	ck_assert(s.tick(at(676))); // overdue: hard stop, reported once
	ck_assert(!s.tick(at(680)));
	s.borrower_gone(at(681));
	ck_assert(s.state() == SliceState::OwnedBusy);
	ck_assert_uint_eq(s.borrower(), 0);
	// cooldown: idle again for the window, but not lendable before 681 + 300
	samples(s, 700, 1300, 0.0);
	ck_assert(s.state() == SliceState::Idle);
	ck_assert(s.lendable(at(1300)));
	s.borrower_gone(at(1301)); // no borrower: nothing happens
	ck_assert(s.state() == SliceState::Idle);
}
END_TEST

START_TEST(what_is_never_lent)
{
	const LendingPolicy p = policy();
	SliceLending unowned(p);
	ck_assert(!unowned.lend(at(0), 7)); // an unallocated slice is for normal jobs
	SliceLending busy(p);
	busy.owner_assigned(at(0), 1, "gpu", std::nullopt);
	samples(busy, 0, 3600, 30.0);
	ck_assert(!busy.lend(at(3600), 7));
	SliceLending optout(p);
	optout.owner_assigned(at(0), 1, "interactive", std::nullopt);
	samples(optout, 0, 900, 0.0);
	ck_assert(optout.state() == SliceState::Idle);
	ck_assert(!optout.lend(at(900), 7));
	SliceLending kept(p); // a GPU held whole lends only with whole_devices: true ...
	kept.owner_assigned(at(0), 1, "gpu", std::nullopt, true);
	samples(kept, 0, 600, 0.0);
	ck_assert(kept.state() == SliceState::Idle);
	ck_assert(!kept.lend(at(600), 7));
	LendingPolicy with_whole = policy();
	with_whole.whole_devices = true;
	SliceLending whole(with_whole);
	whole.owner_assigned(at(0), 1, "gpu", std::nullopt, true);
	samples(whole, 0, 600, 0.0);
	ck_assert(whole.lend(at(600), 7));
	SliceLending sliced(p); // ... slices always
	sliced.owner_assigned(at(0), 1, "gpu", std::nullopt);
	samples(sliced, 0, 600, 0.0);
	ck_assert(sliced.lend(at(600), 7));
	SliceLending ending(p);
	ending.owner_assigned(at(0), 1, "gpu", at(700)); // ends within min_loan of being idle
	samples(ending, 0, 600, 0.0);
	ck_assert(!ending.lend(at(600), 7));
	SliceLending cooling(p);
	cooling.owner_assigned(at(0), 1, "gpu", std::nullopt);
	samples(cooling, 0, 600, 0.0);
	ck_assert(cooling.lend(at(600), 7));
	cooling.admin_reclaim(at(610));
	cooling.borrower_gone(at(620));
	samples(cooling, 625, 1225, 0.0);
	ck_assert(cooling.state() == SliceState::Idle);
	ck_assert(!cooling.lend(at(919), 8)); // 620 + 300 cooldown
	ck_assert(cooling.lend(at(1225), 8));
}
END_TEST

// lending.free_slices: a free slice is lent at once; an owner placed on it
// takes the loan over, counts as busy, and the loan goes back within the
// grace (owner-arrived); a reclaim already under way keeps its deadline.
START_TEST(free_slices_are_lent_and_taken_over_by_an_owner)
{
	LendingPolicy p = policy();
	SliceLending off(p);
	ck_assert(!off.lendable(at(0)) && !off.lend(at(0), 7)); // off by default
	p.free_slices = true;
	SliceLending s(p);
	ck_assert(s.lendable(at(0)));
	ck_assert(s.lend(at(0), 200));
	ck_assert(s.state() == SliceState::Lent && s.owner() == 0 && s.borrower() == 200);
	s.owner_released(at(1), true); // the records show no owner: nothing to release
	ck_assert(s.state() == SliceState::Lent);
	s.borrower_gone(at(5)); // ended by itself: the slice is free again, not "idle"
	ck_assert(s.state() == SliceState::Free && s.owner() == 0);
	ck_assert(s.lend(at(6), 201));
	s.owner_assigned(at(10), 100, "gpu", std::nullopt);
	ck_assert(s.state() == SliceState::Reclaiming);
	ck_assert(*s.reclaim_reason() == ReclaimReason::OwnerArrived);
	ck_assert(*s.reclaim_deadline() == at(70));
	ck_assert_uint_eq(s.owner(), 100);
	ck_assert_uint_eq(s.borrower(), 201);
	ck_assert(!s.owner_gone());
	s.owner_assigned(at(11), 100, "gpu", std::nullopt); // the same owner again: no change
	ck_assert(*s.reclaim_deadline() == at(70));
	ck_assert(s.tick(at(71))); // overdue: hard stop, as for any loan
	s.borrower_gone(at(72));
	ck_assert(s.state() == SliceState::OwnedBusy && s.owner() == 100 && s.borrower() == 0);
	samples(s, 80, 680, 0.0); // the owner's own idle window, as any owner's
	ck_assert(s.state() == SliceState::Idle && s.lendable(at(680)));

	// An owner in a partition that never lends takes it back too, and keeps it.
	SliceLending never(p);
	ck_assert(never.lend(at(0), 202));
	never.owner_assigned(at(3), 101, "interactive", std::nullopt);
	ck_assert(never.state() == SliceState::Reclaiming);
	never.borrower_gone(at(4));
	samples(never, 5, 1000, 0.0);
	ck_assert(never.state() == SliceState::Idle && !never.lendable(at(1000)));

	// A free loan at max_loan: the owner placed during the grace keeps its
	// deadline; without an owner the slice is free again after the cooldown.
	SliceLending max(p);
	ck_assert(max.lend(at(0), 203));
	ck_assert(!max.tick(at(3600)));
	ck_assert(*max.reclaim_reason() == ReclaimReason::MaxLoan);
	max.owner_assigned(at(3610), 102, "gpu", std::nullopt);
	ck_assert(*max.reclaim_reason() == ReclaimReason::MaxLoan && *max.reclaim_deadline() == at(3660));
	ck_assert_uint_eq(max.owner(), 102);
	SliceLending alone(p);
	ck_assert(alone.lend(at(0), 204));
	alone.telemetry_lost(at(10));
	ck_assert(*alone.reclaim_reason() == ReclaimReason::TelemetryLost);
	alone.borrower_gone(at(20));
	ck_assert(alone.state() == SliceState::Free && alone.owner() == 0);
	ck_assert(!alone.lendable(at(319)) && alone.lendable(at(320))); // cooldown 300 s

	// A lender ends while lent and a new owner gets the slice in the grace:
	// the loan is the new owner's; the reclaim goes on.
	SliceLending handed(p);
	handed.owner_assigned(at(0), 100, "gpu", std::nullopt);
	samples(handed, 0, 600, 0.0);
	ck_assert(handed.lend(at(600), 205));
	handed.owner_released(at(610));
	ck_assert(handed.owner_gone() && *handed.reclaim_reason() == ReclaimReason::LenderEnded);
	handed.owner_assigned(at(611), 103, "gpu", std::nullopt);
	ck_assert(!handed.owner_gone() && handed.owner() == 103);
	ck_assert(*handed.reclaim_reason() == ReclaimReason::LenderEnded &&
	          *handed.reclaim_deadline() == at(670));
	handed.borrower_gone(at(620));
	ck_assert(handed.state() == SliceState::OwnedBusy && handed.owner() == 103);

	// A lender ends where free slices are lent: the loan goes on as the
	// free slice's, from when it was lent (max_loan counts from then); the
	// next owner takes it back as from any free slice.
	SliceLending goes_on(p);
	goes_on.owner_assigned(at(0), 100, "gpu", at(5000));
	samples(goes_on, 0, 600, 0.0);
	ck_assert(goes_on.lend(at(600), 207));
	goes_on.owner_released(at(700), true);
	ck_assert(goes_on.state() == SliceState::Lent && goes_on.owner() == 0);
	ck_assert(goes_on.borrower() == 207 && !goes_on.owner_gone());
	ck_assert(*goes_on.lent_since() == at(600) && !goes_on.reclaim_reason());
	const SliceLending::Memento free_loan = goes_on.memento();
	ck_assert(!free_loan.owner_end && !free_loan.idle_since && free_loan.owner_lends);
	goes_on.owner_released(at(701), true); // the next ticks: nothing more to release
	ck_assert(goes_on.memento() == free_loan);
	goes_on.owner_assigned(at(710), 104, "gpu", std::nullopt);
	ck_assert(*goes_on.reclaim_reason() == ReclaimReason::OwnerArrived);
	ck_assert(*goes_on.reclaim_deadline() == at(770));
	SliceLending long_loan(p);
	long_loan.owner_assigned(at(0), 100, "gpu", std::nullopt);
	samples(long_loan, 0, 600, 0.0);
	ck_assert(long_loan.lend(at(600), 208));
	long_loan.owner_released(at(700), true);
	ck_assert(!long_loan.tick(at(600 + 3599)) && long_loan.state() == SliceState::Lent);
	long_loan.tick(at(600 + 3600));
	ck_assert(*long_loan.reclaim_reason() == ReclaimReason::MaxLoan);

	// With free slices not lent (turned off since, or a loan the records
	// show on a free slice), such a loan is taken back at once.
	SliceLending adopted(policy());
	adopted.adopt_loan(at(0), 206);
	adopted.owner_released(at(1));
	ck_assert(adopted.state() == SliceState::Reclaiming);
	ck_assert(*adopted.reclaim_reason() == ReclaimReason::LenderEnded);
	adopted.borrower_gone(at(2));
	ck_assert(adopted.state() == SliceState::Free);
}
END_TEST

START_TEST(other_reclaim_triggers)
{
	const LendingPolicy p = policy();
	auto lent = [&]() {
		SliceLending s(p);
		s.owner_assigned(at(0), 1, "gpu", std::nullopt);
		samples(s, 0, 600, 0.0);
		ck_assert(s.lend(at(600), 9));
		return s;
	};
	SliceLending a = lent();
	ck_assert(!a.tick(at(600 + 3599)));
	ck_assert(a.state() == SliceState::Lent);
	a.tick(at(600 + 3600));
	ck_assert(*a.reclaim_reason() == ReclaimReason::MaxLoan);
	SliceLending b = lent();
	b.owner_released(at(700));
	ck_assert(*b.reclaim_reason() == ReclaimReason::LenderEnded);
	b.borrower_gone(at(710));
	ck_assert(b.state() == SliceState::Free); // back to the pool, not to the gone lender
	ck_assert(!b.memento().cooldown_until);   // no lender left to protect
	SliceLending c = lent();
	c.telemetry_lost(at(700));
	ck_assert(*c.reclaim_reason() == ReclaimReason::TelemetryLost);
	SliceLending d = lent();
	d.borrower_gone(at(650)); // the borrower finished on its own
	ck_assert(d.state() == SliceState::Idle);
	ck_assert(d.lend(at(651), 10));
	ck_assert_str(std::string(state_name(SliceState::Reclaiming)), "reclaiming");
	ck_assert_str(std::string(reason_name(ReclaimReason::MaxLoan)), "max-loan");
}
END_TEST

// Random events against the invariants: lent only when lendable; a lender
// busy for busy_samples samples in a row never keeps a loan; a reclaim
// reports overdue only after its deadline, once; no loan during cooldown;
// a released slice ends free.
START_TEST(a_busy_streak_stops_at_busy_samples)
{
	const LendingPolicy p = policy(); // busy_samples 2
	SliceLending s(p);
	s.owner_assigned(at(0), 100, "gpu", std::nullopt);
	s.take_changed();
	s.sample(at(5), 90.0);
	s.sample(at(10), 90.0);
	ck_assert_int_eq(s.memento().busy_streak, 2);
	s.take_changed();
	// A busy owner's further samples change nothing: its node's rows stay.
	for (long t = 15; t <= 60; t += 5)
		s.sample(at(t), 90.0);
	ck_assert(!s.take_changed());
	ck_assert_int_eq(s.memento().busy_streak, 2);
	// A larger streak from an older state file is kept, and still counts.
	SliceLending old(p);
	SliceLending::Memento m;
	m.state = SliceState::Lent;
	m.owner = 100;
	m.borrower = 200;
	m.busy_streak = 50;
	m.lent_at = at(0);
	old.restore(m);
	old.take_changed();
	old.sample(at(5), 10.0); // between the thresholds
	ck_assert_int_eq(old.memento().busy_streak, 0);
	old.restore(m);
	old.sample(at(5), 90.0);
	ck_assert_int_eq(old.memento().busy_streak, 50);
	ck_assert(old.state() == SliceState::Reclaiming);
}
END_TEST

START_TEST(random_sequences_keep_the_invariants)
{
	const LendingPolicy p = policy();
	std::mt19937 rng(20261125u + static_cast<unsigned>(_i));
	SliceLending s(p);
	long now = 0;
	int busy_run = 0;
	std::optional<long> cooldown_until;
	bool owned = false;
	for (int step = 0; step < 20000; ++step) {
		now += std::uniform_int_distribution<long>(1, 40)(rng);
		const int ev = std::uniform_int_distribution<int>(0, 99)(rng);
		const SliceState before = s.state();
		const SliceLending::Memento memento_before = s.memento();
		(void)s.take_changed();
		if (ev < 55) {
			const double busy = ev < 30 ? 0.0 : ev < 45 ? 12.0 : 80.0;
			busy_run = busy > p.busy_above_percent ? busy_run + 1 : 0;
			s.sample(at(now), busy);
			if (before == SliceState::Lent && busy_run >= p.busy_samples)
				ck_assert_msg(s.state() == SliceState::Reclaiming,
				              "busy lender kept its loan at %ld", now);
		} else if (ev < 65) {
			const bool could = s.lendable(at(now));
			const bool did = s.lend(at(now), 42);
			ck_assert(could == did);
			if (did) {
				ck_assert(owned && before == SliceState::Idle);
				ck_assert(!cooldown_until || now >= *cooldown_until);
			}
		} else if (ev < 75) {
			const bool overdue = s.tick(at(now));
			if (overdue) {
				ck_assert(s.state() == SliceState::Reclaiming);
				ck_assert(at(now) > *s.reclaim_deadline());
				ck_assert(!s.tick(at(now + 1))); // once
			}
		} else if (ev < 83) {
			// A reclaim cools the slice down unless it leaves no lender
			// (ended, or lent free) and was neither an admin's nor a lost
			// report's.
			const bool cools = before == SliceState::Reclaiming &&
			                   ((!memento_before.owner_gone && memento_before.owner != 0) ||
			                    memento_before.reason == ReclaimReason::Admin ||
			                    memento_before.reason == ReclaimReason::TelemetryLost);
			s.borrower_gone(at(now));
			if (cools)
				cooldown_until = now + p.cooldown.count();
		} else if (ev < 88) {
			if (!owned || before == SliceState::Free) {
				s.owner_assigned(at(now), 1, ev % 2 ? "gpu" : "interactive", at(now + 20000));
				owned = s.state() != SliceState::Free;
				busy_run = 0;
			}
		} else if (ev < 93) {
			s.owner_released(at(now));
			if (before != SliceState::Lent && before != SliceState::Reclaiming)
				ck_assert(s.state() == SliceState::Free);
			owned = s.state() != SliceState::Free;
		} else if (ev < 97) {
			s.telemetry_lost(at(now));
			busy_run = 0;
			ck_assert(s.state() != SliceState::Lent && s.state() != SliceState::Idle);
		} else {
			s.admin_reclaim(at(now));
			ck_assert(s.state() != SliceState::Lent);
		}
		// never a borrower on a free or unlent slice
		if (s.state() == SliceState::Free || s.state() == SliceState::OwnedBusy ||
		    s.state() == SliceState::Idle)
			ck_assert_uint_eq(s.borrower(), 0);
		else
			ck_assert_uint_eq(s.borrower(), 42);
		if (s.state() == SliceState::Free)
			owned = false;
		// The controller saves a slice again exactly when it changed.
		ck_assert_msg(s.take_changed() == !(s.memento() == memento_before),
		              "take_changed() disagrees with the memento at step %d", step);
	}
}
END_TEST

START_TEST(lending_yaml)
{
	auto c = Config::from_string("lending:\n"
	                             "  idle_below_percent: 2.5\n"
	                             "  idle_window: 15m\n"
	                             "  busy_above_percent: 30\n"
	                             "  busy_samples: 3\n"
	                             "  min_loan: 90s\n"
	                             "  max_loan: 2h\n"
	                             "  cooldown: 600\n"
	                             "  grace: 45s\n"
	                             "  never_lend_partitions: [interactive, debug]\n",
	                             "l.yaml");
	ck_assert_msg(static_cast<bool>(c), "%s", c.error().c_str());
	const LendingPolicy &p = c->lending;
	ck_assert(p.idle_below_percent == 2.5 && p.busy_above_percent == 30 && p.busy_samples == 3);
	ck_assert(p.idle_window == 900s && p.min_loan == 90s && p.max_loan == 7200s);
	ck_assert(p.cooldown == 600s && p.grace == 45s);
	ck_assert(!p.partition_lends("debug") && p.partition_lends("gpu"));
	ck_assert(!p.whole_devices && !p.owner_lends("gpu", true) && p.owner_lends("gpu", false));
	ck_assert(!p.owner_lends("debug", false));
	auto w = Config::from_string("lending:\n  whole_devices: true\n", "w.yaml");
	ck_assert_msg(static_cast<bool>(w), "%s", w.error().c_str());
	ck_assert(w->lending.whole_devices);
	ck_assert(w->lending.owner_lends("gpu", true) && w->lending.owner_lends("gpu", false));
	ck_assert(!p.free_slices && !Config::defaults().lending.free_slices);
	auto f = Config::from_string("lending:\n  free_slices: true\n", "f.yaml");
	ck_assert_msg(static_cast<bool>(f), "%s", f.error().c_str());
	ck_assert(f->lending.free_slices && !f->lending.whole_devices);
	ck_assert(Config::defaults().lending.grace == 60s);
	ck_assert(!Config::defaults().channel.enabled);
	auto ch = Config::from_string("lending:\n  enabled: true\n  port: 7000\n  report_interval: 2s\n"
	                              "  telemetry_timeout: 10s\n  hard_stop_after: 3s\n  telemetry: file\n"
	                              "  telemetry_dir: /run/t/%n\n",
	                              "c.yaml");
	ck_assert_msg(static_cast<bool>(ch), "%s", ch.error().c_str());
	ck_assert(ch->channel.enabled && ch->channel.port == 7000 && ch->channel.report_interval == 2s);
	ck_assert(ch->channel.telemetry_timeout == 10s && ch->channel.hard_stop_after == 3s);
	ck_assert(ch->channel.telemetry == TelemetrySource::File && ch->channel.telemetry_dir == "/run/t/%n");
	const char *bad[][2] = {
	        {"lending:\n  grace: soon\n",
	         "bad.yaml:2: lending.grace: \"soon\" is not a duration (allowed: a duration such as 90s, 10m, 1h or a number of seconds, at most 2147483647 s)"},
	        {"lending:\n  idle_below_percent: 120\n",
	         "bad.yaml:2: lending.idle_below_percent: \"120\" is not a percentage (allowed: a number from 0 to 100)"},
	        {"lending:\n  idle_below_percent: 10\n  busy_above_percent: 5\n",
	         "bad.yaml:3: lending.busy_above_percent: must be above idle_below_percent (allowed: busy_above_percent > idle_below_percent)"},
	        {"lending:\n  min_loan: 1h\n  max_loan: 10m\n",
	         "bad.yaml:3: lending.max_loan: shorter than min_loan (allowed: max_loan >= min_loan)"},
	        {"lending:\n  never_lend_partitions: debug\n",
	         "bad.yaml:2: lending.never_lend_partitions: must be a list (allowed: a list of partition names)"},
	        {"lending:\n  reclaim: now\n",
	         "bad.yaml:2: lending.reclaim: unknown key (allowed: enabled, idle_below_percent, idle_window, busy_above_percent, busy_samples, min_loan, max_loan, cooldown, grace, never_lend_partitions, whole_devices, free_slices, port, report_interval, telemetry_timeout, hard_stop_after, telemetry, telemetry_dir)"},
	        {"lending:\n  enabled: yes\n",
	         "bad.yaml:2: lending.enabled: \"yes\" is not a boolean (allowed: true or false)"},
	        {"lending:\n  whole_devices: 1\n",
	         "bad.yaml:2: lending.whole_devices: \"1\" is not a boolean (allowed: true or false)"},
	        {"lending:\n  free_slices: yes\n",
	         "bad.yaml:2: lending.free_slices: \"yes\" is not a boolean (allowed: true or false)"},
	        {"lending:\n  telemetry: dcgm\n",
	         "bad.yaml:2: lending.telemetry: unknown source \"dcgm\" (allowed: auto, nvml, file or none)"},
	        {"lending:\n  telemetry_dir: run/t\n",
	         "bad.yaml:2: lending.telemetry_dir: must be an absolute path (allowed: an absolute directory (may hold %n))"},
	        {"lending:\n  port: 70000\n",
	         "bad.yaml:2: lending.port: 70000 is out of range (allowed: a TCP port from 1 to 65535)"},
	        {"lending:\n  report_interval: 20s\n",
	         "bad.yaml:2: lending.telemetry_timeout: shorter than two report intervals (allowed: telemetry_timeout >= 2 x report_interval)"},
	};
	for (const auto &b : bad) {
		auto r = Config::from_string(b[0], "bad.yaml");
		ck_assert_msg(!r, "accepted: %s", b[0]);
		ck_assert_str(r.error(), b[1]);
	}
	ck_assert(!parse_duration("0s") && !parse_duration("5d") && !parse_duration("m"));
	ck_assert(*parse_duration("2h") == 7200s);
	// At most what a stop order carries: deadlines built from a duration stay
	// within what the node and the state file accept (fuzz_loan_book).
	ck_assert(*parse_duration("999999999") == 999999999s);
	ck_assert(*parse_duration("596523h") == 2147482800s);
	ck_assert(!parse_duration("2147483648") && !parse_duration("596524h") &&
	          !parse_duration("35791395m"));
	auto long_grace = Config::from_string("lending:\n  grace: 600000h\n", "long.yaml");
	ck_assert(!long_grace);
	ck_assert_msg(long_grace.error().find("long.yaml:2") == 0 &&
	                      long_grace.error().find("lending.grace") != std::string::npos &&
	                      long_grace.error().find("at most 2147483647 s") != std::string::npos,
	              "%s", long_grace.error().c_str());
}
END_TEST

Suite *lending_suite()
{
	Suite *s = suite_create("lending");
	TCase *tc = tcase_create("lending");
	tcase_add_test(tc, idle_for_the_window_then_lent_then_reclaimed_when_busy);
	tcase_add_test(tc, what_is_never_lent);
	tcase_add_test(tc, free_slices_are_lent_and_taken_over_by_an_owner);
	tcase_add_test(tc, other_reclaim_triggers);
	tcase_add_test(tc, a_busy_streak_stops_at_busy_samples);
	tcase_add_loop_test(tc, random_sequences_keep_the_invariants, 0, 5);
	tcase_add_test(tc, lending_yaml);
	suite_add_tcase(s, tc);
	return s;
}
