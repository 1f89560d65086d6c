// SPDX-License-Identifier: GPL-2.0-or-later
// The controller's ledger of idle reclaim (LoanBook), driven by a fake clock
// and controller (loan_book_scene.hpp): what may be lent, when a loan is
// taken back, and the totals. The state file and restarts are in
// test_loan_book_restart.cpp, the random sequences in test_loan_book_random.cpp.
#include "loan_book_scene.hpp"

using namespace loan_book_scene;

// --- LoanBook: what may be lent ----------------------------------------------------

// A GPU held whole (gres/gpu) owns all its slices; they lend one by one,
// when the policy lets whole devices lend (lending.whole_devices: true).
START_TEST(a_device_held_whole_lends_its_slices)
{
	for (bool whole_devices : {true, false}) {
		LendingPolicy p = short_policy();
		p.whole_devices = whole_devices;
		Controller c(p);
		c.add_node("n1", {0, 0, 1, 1});
		for (int u : {0, 1}) {
			c.own("n1", u, 100); // device 0 held whole by job 100
			c.records.at("n1").owners[u].whole = true;
		}
		c.own("n1", 2, 101); // a slice of device 1
		c.telemetry["n1"] = [&](long) {
			return std::vector<DeviceReport>{per_job_use(0, {{100, 0, 0}}),
			                                 per_job_use(1, {{101, 0, 0}})};
		};
		ck_assert_str(c.run(0, 9), "");
		ck_assert_str(c.run(10, 10), "10: lendable\n");
		ck_assert_str(c.lendable("n1", 10), whole_devices ? "0,1,2" : "2");
	}
}
END_TEST

START_TEST(lendable_only_when_idle_long_enough_with_memory_and_fresh_reports)
{
	Controller c;
	// Slices 0-2 on device 0, 3-5 on device 1.
	c.add_node("n1", {0, 0, 0, 1, 1, 1});
	c.own("n1", 0, 100);                  // idle
	c.own("n1", 1, 102);                  // busy
	c.own("n1", 2, 104, "gpu", at(14));   // idle, but ends within min_loan of the window
	c.own("n1", 3, 101, "interactive");   // idle, in a partition that never lends
	c.own("n1", 5, 105, "gpu", at(1000)); // idle, ends much later
	bool device0_memory = true;           // slice 4: nobody's
	c.telemetry["n1"] = [&](long) {
		return std::vector<DeviceReport>{
		        per_job_use(0, {{100, 1, 0}, {102, 60, 0}, {104, 0, 0}}, device0_memory ? 2048 : 0),
		        per_job_use(1, {{101, 0, 0}, {105, 2, 0}})};
	};
	ck_assert_str(c.run(0, 9), "");
	ck_assert_str(c.lendable("n1", 9), "");
	ck_assert_str(c.run(10, 11), "10: lendable\n"); // the scheduler runs once, not every tick
	ck_assert_str(c.lendable("n1", 11), "0,5");

	// No memory left on device 0 for a borrower: not lendable there.
	device0_memory = false;
	ck_assert_str(c.run(12, 15), "");
	ck_assert_str(c.lendable("n1", 15), "5");
	device0_memory = true;
	ck_assert_str(c.run(16, 20), "20: lendable\n");
	ck_assert_str(c.lendable("n1", 20), "0,5");

	// The agent falls silent: lendable while its last report is at most
	// telemetry_timeout old, not after, even before a tick notices.
	c.telemetry.erase("n1");
	ck_assert_str(c.run(21, 35), "");
	ck_assert_str(c.lendable("n1", 35), "0,5");
	ck_assert_str(c.lendable("n1", 36), "");
	ck_assert_str(c.run(36, 36), "");
	// Heard again: the tick at 36 counted the silence as use, so the idle
	// window starts over.
	c.telemetry["n1"] = [&](long) {
		return std::vector<DeviceReport>{per_job_use(0, {{100, 0, 0}, {102, 60, 0}}),
		                                 per_job_use(1, {{105, 0, 0}})};
	};
	ck_assert_str(c.run(37, 45), "");
	ck_assert_str(c.lendable("n1", 45), "");
	ck_assert_str(c.run(46, 50), "50: lendable\n");
	ck_assert_str(c.lendable("n1", 50), "0,5");
	ck_assert_str(c.lendable("n2", 50), ""); // a node the records do not show
}
END_TEST

START_TEST(per_job_telemetry_tells_the_borrower_from_the_lender)
{
	// The backend attributes use: the borrower's 90 % is not the lender waking up.
	IdleLender attributed;
	Controller &a = attributed.c;
	a.lend(10, "n1", 0, 200);
	a.telemetry["n1"] = [](long) {
		return std::vector<DeviceReport>{per_job_use(0, {{100, 2, 0}, {200, 90, 0}}),
		                                 device_use(1, 0)};
	};
	ck_assert_str(a.run(11, 60), "");
	ck_assert(a.book.status(at(60)).find("n1 0 0 lent JobId=100 JobId=200 50s\n") != std::string::npos);
	// ... but the lender's own 30 % is.
	a.telemetry["n1"] = [](long) {
		return std::vector<DeviceReport>{per_job_use(0, {{100, 30, 0}, {200, 90, 0}}),
		                                 device_use(1, 0)};
	};
	ck_assert_str(a.run(61, 70), "70: signal 200:lender-busy\n");

	// Whole-device figures only: the device's use is all there is to go on.
	IdleLender whole_device;
	Controller &w = whole_device.c;
	w.lend(10, "n1", 0, 200);
	w.telemetry["n1"] = [](long) {
		return std::vector<DeviceReport>{device_use(0, 90), device_use(1, 0)};
	};
	ck_assert_str(w.run(11, 20), "20: signal 200:lender-busy\n");

	// Before any loan, another job's use of the device keeps the slice from
	// looking idle without attribution, and does not with it.
	for (const bool per_job : {false, true}) {
		Controller c;
		c.add_node("n1", {0, 0});
		c.own("n1", 0, 100);
		c.own("n1", 1, 101);
		c.telemetry["n1"] = [per_job](long) {
			return std::vector<DeviceReport>{per_job ? per_job_use(0, {{100, 0, 0}, {101, 70, 0}})
			                                         : device_use(0, 70)};
		};
		ck_assert_str(c.run(0, 10), per_job ? "10: lendable\n" : "");
		ck_assert_str(c.lendable("n1", 10), per_job ? "0" : "");
	}
}
END_TEST

// lending.free_slices: free slices of a device with memory to lend, on a
// node that reports, are lendable; a slice Slurm has just given an owner
// is not; an owner placed on a lent free slice takes the loan over and the
// borrower is requeued at the grace, as from a busy lender.
START_TEST(free_slices_lent_then_taken_back_by_a_new_owner)
{
	LendingPolicy p = short_policy();
	p.free_slices = true;
	Controller c(p);
	c.add_node("n1", {0, 0, 1, 1});
	c.telemetry["n1"] = [](long) {
		return std::vector<DeviceReport>{device_use(0, 0),
		                                 device_use(1, 0, 0)}; // device 1: no memory to lend
	};
	ck_assert_str(c.lendable("n1", 0), ""); // no report yet
	ck_assert_str(c.run(0, 0), "0: lendable\n");
	ck_assert_str(c.lendable("n1", 0), "0,1");
	ck_assert_str(units_text(c.book.lendable_units("n1", at(0), [](int u) { return u == 0; })), "1");
	c.book.take_events();
	c.lend(1, "n1", 0, 200);
	ck_assert(contains(c.book.take_events(), "n1 slice 0 (free) lent to JobId=200"));
	ck_assert_str(c.run(1, 9), "");
	ck_assert_str(c.lendable("n1", 9), "1");
	ck_assert(c.book.status(at(9)).find("n1 0 0 lent free JobId=200 8s\n") != std::string::npos);

	// A job is placed on slice 0: the loan is its, it counts as busy.
	c.own("n1", 0, 100);
	ck_assert_str(c.run(10, 10), "10: signal 200:owner-arrived\n");
	ck_assert(contains(c.book.take_events(),
	                   "reclaim JobId=200 from n1 slice 0 of JobId=100: owner-arrived, grace 20 s"));
	ck_assert(c.book.status(at(15)).find("n1 0 0 reclaiming JobId=100 JobId=200 14s\n") !=
	          std::string::npos);
	ck_assert_str(c.orders("n1", 15), "n1#1 200@20"); // hard stop at t0 + G + 5 s
	ck_assert_str(c.run(11, 29), "");
	ck_assert_str(c.run(30, 30), "30: requeue 200\n");
	c.book.requeued(200, at(30));
	c.leave("n1", 0);
	ck_assert_str(c.run(31, 31), "");
	ck_assert(contains(c.book.take_events(), "reclaim JobId=200 done (owner-arrived)"));
	ck_assert(c.book.status(at(31)).find("n1 0 0 owned-busy JobId=100 - -\n") != std::string::npos);
	ck_assert_uint_eq(c.book.counters().loans, 1);
	ck_assert_uint_eq(c.book.counters().reclaims[static_cast<size_t>(ReclaimReason::OwnerArrived)], 1);
	ck_assert(c.book.totals().count(0) == 0); // a free slice's loan is nobody's lending
	ck_assert_str(c.lendable("n1", 31), "1");

	// The node falls silent: its free slices are not lent either.
	c.telemetry.erase("n1");
	ck_assert_str(c.run(32, 50), "");
	ck_assert_str(c.lendable("n1", 50), "");

	// A node in a partition that never lends lends no free slice (a job of
	// that partition placed there would share its slice for the grace).
	Controller parts(p);
	for (const char *n : {"n1", "n2"}) {
		parts.add_node(n, {0, 0});
		parts.telemetry[n] = [](long) { return std::vector<DeviceReport>{device_use(0, 0)}; };
	}
	parts.records.at("n1").partitions = {"gpu", "batch"};
	parts.records.at("n2").partitions = {"gpu", "interactive"};
	ck_assert_str(parts.run(0, 0), "0: lendable\n");
	ck_assert_str(parts.lendable("n1", 0), "0,1");
	ck_assert_str(parts.lendable("n2", 0), "");

	// A lender ends while lent: where free slices are lent, the loan goes on
	// as the free slice's (no reclaim, and nobody's lending from then); on
	// a node in a partition that never lends it is taken back, and the
	// slice it leaves free has no cooldown.
	for (const char *partition : {"batch", "interactive"}) {
		const bool lends_free = std::string(partition) == "batch";
		Controller e(p);
		e.add_node("n1", {0, 0});
		e.records.at("n1").partitions = {"gpu", partition};
		e.own("n1", 0, 100);
		e.own("n1", 1, 100);
		e.telemetry["n1"] = [](long) {
			return std::vector<DeviceReport>{per_job_use(0, {{100, 0, 0}})};
		};
		ck_assert_str(e.run(0, 10), "10: lendable\n");
		e.lend(10, "n1", 0, 200);
		ck_assert_str(e.run(11, 14), "");
		e.release("n1", 0);
		e.release("n1", 1);
		const std::string out = e.run(15, 20);
		const std::string status = e.book.status(at(20));
		const size_t ended =
		        e.book.counters().reclaims[static_cast<size_t>(ReclaimReason::LenderEnded)];
		if (lends_free) {
			ck_assert_msg(out.find("signal") == std::string::npos, "%s", out.c_str());
			ck_assert_msg(status.find("n1 0 0 lent free JobId=200 10s\n") != std::string::npos,
			              "%s", status.c_str());
			ck_assert_uint_eq(ended, 0);
			ck_assert(e.book.totals().count(0) == 0); // nobody's lending
			ck_assert_str(e.lendable("n1", 20), "1");
			continue;
		}
		ck_assert_msg(out.find("15: signal 200:lender-ended\n") == 0, "%s", out.c_str());
		ck_assert_uint_eq(ended, 1);
		ck_assert_str(e.lendable("n1", 20), "");
		e.leave("n1", 0);
		ck_assert_str(e.run(21, 21), "");
		ck_assert_uint_eq(e.book.active_reclaims(), 0);
		// No cooldown on the slice left free: lendable the moment free
		// slices are (here: once the node leaves the never-lend partition).
		e.records.at("n1").partitions = {"gpu"};
		ck_assert_str(e.run(22, 22), "22: lendable\n");
		ck_assert_str(e.lendable("n1", 22), "0,1");
	}

	// An idle owner's slice stays lendable whatever Slurm shows allocated.
	IdleLender lender;
	ck_assert_str(units_text(lender.c.book.lendable_units("n1", at(10), [](int) { return true; })), "0");
}
END_TEST

// --- LoanBook: a loan and its reclaim ----------------------------------------------

START_TEST(reclaim_when_the_lender_is_busy_again)
{
	IdleLender lender;
	Controller &c = lender.c;
	LoanBook &book = c.book;
	book.take_events();
	c.lend(10, "n1", 0, 200);
	ck_assert_str(c.lendable("n1", 10), "");
	auto events = book.take_events();
	ck_assert_uint_eq(events.size(), 1);
	ck_assert_str(events[0], "n1 slice 0 of JobId=100 lent to JobId=200");
	// The records show the borrower on the unit: the loan goes on, and is
	// no "loan found" either.
	ck_assert_str(c.run(11, 14), "");
	ck_assert(book.take_events().empty());
	ck_assert(book.status(at(14)).find("n1 0 0 lent JobId=100 JobId=200 4s\n") != std::string::npos);

	// Busy for two samples (15 and 20): one signal, at once.
	lender.lender_busy = 80;
	ck_assert_str(c.run(15, 20), "20: signal 200:lender-busy\n");
	ck_assert_uint_eq(book.active_reclaims(), 1);
	book.signalled(200, at(20));
	events = book.take_events();
	ck_assert_uint_eq(events.size(), 1);
	ck_assert_str(events[0], "reclaim JobId=200 from n1 slice 0 of JobId=100: lender-busy, grace 20 s");
	ck_assert(book.status(at(25)).find("JobId=200 lender-busy started 5s ago, deadline in 15s\n") !=
	          std::string::npos);
	// The node's hard stop: grace + hard_stop_after from the signal, counting down.
	ck_assert_str(c.orders("n1", 20, 7), "n1#7 200@25");
	ck_assert_str(c.orders("n1", 30), "n1#1 200@15");
	ck_assert_str(c.orders("n2", 30), "n2#1"); // nothing of it runs there

	// The grace: no second signal, no requeue before the deadline, then a
	// requeue every tick until it is done.
	ck_assert_str(c.run(21, 39), "");
	ck_assert_str(c.run(40, 41), "40: requeue 200\n41: requeue 200\n");
	// Requeued: Slurm's records show it completing from then on. Still a
	// reclaim (its processes may linger), the stop still counts down to 0.
	book.requeued(200, at(41));
	c.hold("n1", 0, 200, true);
	events = book.take_events();
	ck_assert_uint_eq(events.size(), 1);
	ck_assert_str(events[0], "reclaim JobId=200: requeued 21 s after the signal");
	ck_assert_str(c.run(42, 45), "");
	ck_assert_uint_eq(book.active_reclaims(), 1);
	ck_assert_str(c.orders("n1", 44), "n1#1 200@1");
	ck_assert_str(c.orders("n1", 45), "n1#1 200@0");
	ck_assert_str(c.orders("n1", 90), "n1#1 200@0");

	// Gone from the records: done, with its latencies, and no order left.
	c.leave("n1", 0);
	ck_assert_str(c.run(46, 46), "");
	ck_assert_uint_eq(book.active_reclaims(), 0);
	events = book.take_events();
	ck_assert_uint_eq(events.size(), 1);
	ck_assert_str(
	        events[0],
	        "reclaim JobId=200 done (lender-busy): signal 0 s, requeue 21 s, device free 26 s, grace 20 s");
	ck_assert_str(c.orders("n1", 46), "n1#1");
	ck_assert(book.status(at(46)).find("n1 0 0 owned-busy JobId=100 - -\n") != std::string::npos);

	// Idle again from 50, for the window at 60, but the cooldown holds the
	// slice back until 46 + 30.
	lender.lender_busy = 0;
	ck_assert_str(c.run(47, 75), "");
	ck_assert_str(c.lendable("n1", 75), "");
	ck_assert_str(c.run(76, 76), "76: lendable\n");
	ck_assert_str(c.lendable("n1", 76), "0");
	ck_assert(book.status(at(76)).find("HISTORY\n") != std::string::npos);
	ck_assert(book.status(at(76)).find("device free 26 s") != std::string::npos);
}
END_TEST

START_TEST(other_reasons_to_take_a_loan_back)
{
	{ // The lender ends: the slice goes back to the pool once the borrower left.
		IdleLender lender;
		Controller &c = lender.c;
		c.lend(10, "n1", 0, 200);
		ck_assert_str(c.run(11, 14), "");
		c.release("n1", 0);
		ck_assert_str(c.run(15, 15), "15: signal 200:lender-ended\n");
		ck_assert(c.book.status(at(15)).find("n1 0 0 reclaiming JobId=100 JobId=200 5s\n") !=
		          std::string::npos);
		c.leave("n1", 0);
		ck_assert_str(c.run(16, 16), "");
		ck_assert_uint_eq(c.book.active_reclaims(), 0);
		ck_assert(c.book.status(at(16)).find("n1 0 ") == std::string::npos); // free
		c.own("n1", 0, 101);
		ck_assert_str(c.run(17, 17), "");
		ck_assert(c.book.status(at(17)).find("n1 0 0 owned-busy JobId=101 - -\n") !=
		          std::string::npos);
	}
	{ // max_loan
		LendingPolicy p = short_policy();
		p.max_loan = 60s;
		IdleLender lender(p);
		lender.c.lend(10, "n1", 0, 200);
		ck_assert_str(lender.c.run(11, 69), "");
		ck_assert_str(lender.c.run(70, 70), "70: signal 200:max-loan\n");
	}
	{ // The admin: only a job that borrows something.
		IdleLender lender;
		lender.c.lend(10, "n1", 0, 200);
		ck_assert(lender.c.book.admin_reclaim(at(12), 200));
		ck_assert(!lender.c.book.admin_reclaim(at(12), 999));
		ck_assert(!lender.c.book.admin_reclaim(at(12), 100)); // the lender borrows nothing
		ck_assert(!lender.c.book.admin_reclaim(at(12), 0));
		ck_assert_str(lender.c.run(12, 12), "12: signal 200:admin\n");
		ck_assert(
		        lender.c.book.admin_reclaim(at(13), 200)); // still borrowing: true, no second signal
		ck_assert_str(lender.c.run(13, 13), "");
	}
}
END_TEST

START_TEST(telemetry_lost_takes_loans_back)
{
	{ // A silent node: its loans go back, nothing there is lendable; other nodes go on.
		IdleLender lender;
		Controller &c = lender.c;
		c.add_node("n2", {0});
		c.own("n1", 1, 101);
		c.own("n2", 0, 300);
		c.telemetry["n1"] = [](long) {
			return std::vector<DeviceReport>{per_job_use(0, {{100, 0, 0}, {101, 0, 0}}),
			                                 device_use(1, 0)};
		};
		c.telemetry["n2"] = [](long) { return std::vector<DeviceReport>{device_use(0, 0)}; };
		ck_assert_str(c.run(11, 30), "25: lendable\n"); // idle since the reports at 15
		c.lend(30, "n1", 0, 200);
		ck_assert_str(c.lendable("n1", 30), "1");
		ck_assert_str(c.lendable("n2", 30), "0");
		c.telemetry.erase("n1"); // last heard at 30
		ck_assert_str(c.run(31, 45), "");
		ck_assert_str(c.lendable("n1", 45), "1");
		ck_assert_str(c.run(46, 46), "46: signal 200:telemetry-lost\n");
		ck_assert_str(c.lendable("n1", 46), "");
		ck_assert_str(c.lendable("n2", 46), "0");
		ck_assert(c.book.status(at(46)).find("n1 1 0 owned-busy JobId=101 - -\n") !=
		          std::string::npos);
	}
	{ // A device missing from a report counts as busy: only its loans go back.
		Controller c;
		c.add_node("n1", {0, 0, 1, 1});
		c.own("n1", 0, 100);
		c.own("n1", 2, 100);
		bool device1_readable = true;
		c.telemetry["n1"] = [&](long) {
			std::vector<DeviceReport> d{device_use(0, 0)};
			if (device1_readable)
				d.push_back(device_use(1, 0));
			return d;
		};
		ck_assert_str(c.run(0, 10), "10: lendable\n");
		ck_assert_str(c.lendable("n1", 10), "0,2");
		c.lend(10, "n1", 0, 200);
		c.lend(10, "n1", 2, 201);
		device1_readable = false;
		ck_assert_str(c.run(11, 20), "15: signal 201:telemetry-lost\n");
		ck_assert(c.book.status(at(20)).find("n1 0 0 lent JobId=100 JobId=200 10s\n") !=
		          std::string::npos);
		ck_assert(c.book.status(at(20)).find("n1 2 1 reclaiming JobId=100 JobId=201 10s\n") !=
		          std::string::npos);
	}
}
END_TEST

START_TEST(borrowers_the_records_show)
{
	{ // A borrower that leaves on its own (it requeued itself, or ended) is
	  // not requeued again, but stays a reclaim until its processes are gone.
		IdleLender lender;
		Controller &c = lender.c;
		c.lend(10, "n1", 0, 200);
		lender.lender_busy = 50;
		ck_assert_str(c.run(11, 20), "20: signal 200:lender-busy\n");
		c.hold("n1", 0, 200, true);
		ck_assert_str(c.run(21, 60), "");
		ck_assert_uint_eq(c.book.active_reclaims(), 1);
		ck_assert_str(c.orders("n1", 60), "n1#1 200@0");
		c.leave("n1", 0);
		ck_assert_str(c.run(61, 61), "");
		ck_assert_uint_eq(c.book.active_reclaims(), 0);
		ck_assert(contains(
		        c.book.take_events(),
		        "reclaim JobId=200 done (lender-busy): signal - s, requeue 1 s, device free 41 s"));
	}
	{ // A loan the book never made (placed before a restart): adopted once,
	  // never offered again while it lasts.
		IdleLender lender;
		Controller &c = lender.c;
		c.own("n1", 1, 101);
		c.telemetry["n1"] = [](long) {
			return std::vector<DeviceReport>{per_job_use(0, {{100, 0, 0}, {101, 0, 0}}),
			                                 device_use(1, 0)};
		};
		ck_assert_str(c.run(11, 25), "25: lendable\n");
		ck_assert_str(c.lendable("n1", 25), "0,1");
		c.book.take_events();
		c.hold("n1", 1, 300);
		ck_assert_str(c.run(26, 26), "");
		auto events = c.book.take_events();
		ck_assert_uint_eq(events.size(), 1);
		ck_assert_str(events[0], "loan found in the job records: n1 slice 1 lent to JobId=300");
		ck_assert_str(c.lendable("n1", 26), "0");
		ck_assert_str(c.run(27, 45), "");
		ck_assert(c.book.take_events().empty()); // found once
		ck_assert_str(c.lendable("n1", 45), "0");
		ck_assert(c.book.status(at(45)).find("n1 1 0 lent JobId=101 JobId=300 19s\n") !=
		          std::string::npos);
		// Counted from the tick before it was found (it ran already): 20 s.
		ck_assert_uint_eq(c.book.totals().at(300).borrowed_slice_seconds, 20);
		// The scheduler's own record of it, late: still one loan.
		c.book.lent(at(45), "n1", 1, 300);
		ck_assert_str(c.run(46, 47), "");
		ck_assert_uint_eq(c.book.totals().at(300).borrowed_slice_seconds, 22);
		ck_assert_str(c.lendable("n1", 47), "0");
	}
}
END_TEST

START_TEST(totals_grow_while_lent)
{
	IdleLender lender;
	Controller &c = lender.c;
	c.own("n1", 1, 100); // the lender holds both slices of device 0
	c.telemetry["n1"] = [](long) {
		return std::vector<DeviceReport>{per_job_use(0, {{100, 0, 0}}), device_use(1, 0)};
	};
	ck_assert_str(c.run(11, 25), "25: lendable\n"); // slice 1: idle since the report at 15
	c.lend(25, "n1", 0, 200);
	c.lend(25, "n1", 1, 200);
	ck_assert(c.book.totals().count(200) == 0 || c.book.totals().at(200).borrowed_slice_seconds == 0);
	ck_assert_str(c.run(26, 35), "");
	ck_assert_uint_eq(c.book.totals().at(100).lent_slice_seconds, 20); // 2 slices x 10 s
	ck_assert_uint_eq(c.book.totals().at(100).borrowed_slice_seconds, 0);
	ck_assert_uint_eq(c.book.totals().at(200).borrowed_slice_seconds, 20);
	ck_assert_uint_eq(c.book.totals().at(200).lent_slice_seconds, 0);
	ck_assert_str(c.run(36, 40), "");
	ck_assert_uint_eq(c.book.totals().at(100).lent_slice_seconds, 30);
	ck_assert_uint_eq(c.book.totals().at(200).borrowed_slice_seconds, 30);
	// The borrower ends: the lender's total stays, the borrower's goes with it
	// (the plugin has written it into the job record every tick).
	c.leave("n1", 0);
	c.leave("n1", 1);
	ck_assert_str(c.run(41, 50), "41: lendable\n"); // left on its own: still idle, no cooldown
	ck_assert_uint_eq(c.book.totals().at(100).lent_slice_seconds, 30);
	ck_assert(c.book.totals().count(200) == 0);
}
END_TEST

// --- LoanBook: the state file ------------------------------------------------------

Suite *loan_book_suite()
{
	Suite *s = suite_create("loan_book");
	TCase *tc = tcase_create("loan_book");
	tcase_add_test(tc, lendable_only_when_idle_long_enough_with_memory_and_fresh_reports);
	tcase_add_test(tc, a_device_held_whole_lends_its_slices);
	tcase_add_test(tc, free_slices_lent_then_taken_back_by_a_new_owner);
	tcase_add_test(tc, per_job_telemetry_tells_the_borrower_from_the_lender);
	tcase_add_test(tc, reclaim_when_the_lender_is_busy_again);
	tcase_add_test(tc, other_reasons_to_take_a_loan_back);
	tcase_add_test(tc, telemetry_lost_takes_loans_back);
	tcase_add_test(tc, borrowers_the_records_show);
	tcase_add_test(tc, totals_grow_while_lent);
	suite_add_tcase(s, tc);
	return s;
}
