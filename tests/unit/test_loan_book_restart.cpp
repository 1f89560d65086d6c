// SPDX-License-Identifier: GPL-2.0-or-later
// LoanBook across a controller restart: the state file round trip, reclaims
// interrupted at each step, and what the job records say afterwards.
#include "loan_book_scene.hpp"

using namespace loan_book_scene;

namespace
{

// n1: job 100 lends slice 0 to 200 (reclaimed at 20, deadline 40, signalled)
// and slice 2 to 201 (still lent); the scene at 25.
struct MidReclaim {
	Controller c;
	double busy0 = 0;

	MidReclaim()
	{
		c.add_node("n1", {0, 0, 1, 1});
		c.own("n1", 0, 100);
		c.own("n1", 2, 100);
		c.telemetry["n1"] = [this](long) {
			return std::vector<DeviceReport>{device_use(0, busy0), device_use(1, 0)};
		};
		ck_assert_str(c.run(0, 10), "10: lendable\n");
		c.lend(10, "n1", 0, 200);
		c.lend(10, "n1", 2, 201);
		busy0 = 70;
		ck_assert_str(c.run(11, 25), "20: signal 200:lender-busy\n");
		c.book.signalled(200, at(20));
	}
};

} // namespace

START_TEST(state_file_round_trip_continues_loans_and_reclaims)
{
	MidReclaim before;
	const std::string text = before.c.book.serialize(at(25));
	ck_assert(text.rfind("flexslurm-lending 1\nsaved 25\n", 0) == 0);

	Controller after; // a restarted controller: same records, same agents, new book
	after.records = before.c.records;
	after.telemetry["n1"] = before.c.telemetry["n1"];
	std::string why;
	ck_assert_msg(after.book.restore(text, why), "%s", why.c_str());
	ck_assert_str(after.book.serialize(at(25)), text);
	ck_assert_uint_eq(after.book.active_reclaims(), 1);
	ck_assert_uint_eq(after.book.totals().at(100).lent_slice_seconds, 30);
	ck_assert_uint_eq(after.book.totals().at(201).borrowed_slice_seconds, 15);
	ck_assert_str(after.orders("n1", 25), "n1#1 200@20");

	// The reclaim keeps its deadline (no second signal), the loan of slice 2
	// goes on, and the records hold no loan the book does not know.
	ck_assert_str(after.run(26, 39), "");
	ck_assert_str(after.orders("n1", 30), "n1#1 200@15");
	ck_assert(after.book.take_events().empty());
	ck_assert_str(after.run(40, 40), "40: requeue 200\n");
	after.book.requeued(200, at(40));
	after.hold("n1", 0, 200, true);
	ck_assert(after.book.status(at(40)).find("n1 2 1 lent JobId=100 JobId=201 30s\n") !=
	          std::string::npos);
	ck_assert_uint_eq(after.book.totals().at(201).borrowed_slice_seconds, 30);

	// Once more, requeued: no second requeue, the stop still counts down.
	const std::string requeued = after.book.serialize(at(41));
	Controller again;
	again.records = after.records;
	again.telemetry["n1"] = after.telemetry["n1"];
	ck_assert_msg(again.book.restore(requeued, why), "%s", why.c_str());
	ck_assert_str(again.book.serialize(at(41)), requeued);
	ck_assert_str(again.run(42, 50), "");
	ck_assert_str(again.orders("n1", 42), "n1#1 200@3");
	again.leave("n1", 0);
	ck_assert_str(again.run(51, 51), "");
	ck_assert_uint_eq(again.book.active_reclaims(), 0);
	ck_assert(contains(again.book.take_events(), "requeue 20 s, device free 31 s"));
}
END_TEST

// Issue 13 item 4. slurmctld killed just after it requeued a borrower
// restarts from job state saved before the requeue: the record shows the
// reclaimed run still running, or (the agent's hard stop came while the
// controller was down) ended FAILED. The reclaim is done only when the
// record shows the borrower pending or ended by itself, off the device; a
// requeue the record does not show is made again.
namespace
{

BorrowerRecord record(BorrowerRecord::Stage stage, uint32_t run, std::optional<long> end = std::nullopt)
{
	BorrowerRecord r;
	r.stage = stage;
	r.run = run;
	if (end)
		r.end = at(*end);
	return r;
}

// MidReclaim with job records: 200 (deadline 40) requeued at 40, the
// ledger saved at 41, the controller killed before Slurm saved the requeue.
// Returns the restarted controller, its book restored, records as saved.
std::unique_ptr<Controller> restarted_after_requeue()
{
	using Stage = BorrowerRecord::Stage;
	MidReclaim before;
	before.c.jobs = std::map<uint32_t, BorrowerRecord>{{200, record(Stage::Running, 0)},
	                                                   {201, record(Stage::Running, 0)}};
	ck_assert_str(before.c.run(26, 40), "40: requeue 200\n");
	before.c.book.requeued(200, at(40));
	const std::string saved = before.c.book.serialize(at(41));
	ck_assert(
	        saved.find(
	                "reclaim 200 reason=lender-busy t0=20 deadline=40 signalled=1 requeued=40 nodes=n1 run=0 again=0\n") !=
	        std::string::npos);
	auto after = std::make_unique<Controller>();
	after->records = before.c.records;  // the job state on disk: 200 still holds slice 0
	after->telemetry["n1"] = [](long) { // the lender idle again
		return std::vector<DeviceReport>{device_use(0, 0), device_use(1, 0)};
	};
	after->jobs = before.c.jobs;
	std::string why;
	ck_assert_msg(after->book.restore(saved, why), "%s", why.c_str());
	return after;
}

} // namespace

START_TEST(a_requeue_the_job_record_does_not_show_is_made_again)
{
	using Stage = BorrowerRecord::Stage;
	// Killed after the requeue, the record still running: requeued again.
	auto c = restarted_after_requeue();
	ck_assert_str(c->run(45, 45), "45: requeue 200\n");
	ck_assert(contains(
	        c->book.take_events(),
	        "reclaim JobId=200: its job record still shows it running, not requeued (the controller restarted before saving the requeue): requeued again"));
	c->book.requeued(200, at(45));
	(*c->jobs)[200] = record(Stage::Leaving, 1);
	c->hold("n1", 0, 200, true);
	ck_assert_str(c->run(46, 47), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 1); // on the device until its processes are gone
	ck_assert_str(c->orders("n1", 47), "n1#1 200@0");
	(*c->jobs)[200] = record(Stage::Pending, 1);
	c->leave("n1", 0);
	ck_assert_str(c->run(48, 48), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 0);
	ck_assert(contains(c->book.take_events(), "reclaim JobId=200 done (lender-busy)"));

	// The hard stop ended it FAILED while the controller was down: the
	// ended job is requeued (Slurm requeues a finished batch job too).
	c = restarted_after_requeue();
	(*c->jobs)[200] = record(Stage::Failed, 0, 46);
	c->leave("n1", 0);
	ck_assert_str(c->run(47, 47), "47: requeue-ended 200\n");
	ck_assert(contains(c->book.take_events(), "reclaim JobId=200: ended FAILED after its deadline"));
	c->book.requeued(200, at(47));
	(*c->jobs)[200] = record(Stage::Pending, 1);
	ck_assert_str(c->run(48, 48), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 0);

	// Requeued and already running again: a new run, the reclaim is done
	// and the new run is a loan of its own.
	c = restarted_after_requeue();
	(*c->jobs)[200] = record(Stage::Running, 1);
	ck_assert_str(c->run(45, 50), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 0);
	ck_assert(c->book.status(at(50)).find("n1 0 0 lent JobId=100 JobId=200") != std::string::npos);

	// Ended by itself (completed, cancelled), or FAILED before its
	// deadline: done, nothing requeued.
	for (const BorrowerRecord &r :
	     {record(Stage::Ended, 0, 46), record(Stage::Failed, 0, 39), record(Stage::Pending, 1)}) {
		c = restarted_after_requeue();
		(*c->jobs)[200] = r;
		c->leave("n1", 0);
		ck_assert_str(c->run(45, 45), "");
		ck_assert_uint_eq(c->book.active_reclaims(), 0);
	}

	// No record any more: done.
	c = restarted_after_requeue();
	c->jobs->erase(200);
	c->leave("n1", 0);
	ck_assert_str(c->run(45, 45), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 0);

	// A borrower that cannot be requeued (stopped instead) is never tried
	// again, whatever its record says; nor is one requeued over and over.
	c = restarted_after_requeue();
	ck_assert_str(c->run(45, 45), "45: requeue 200\n");
	c->book.gave_up(200, at(45));
	ck_assert_str(c->run(46, 60), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 1);
	c = restarted_after_requeue();
	for (long t = 45; t < 60; ++t)
		if (c->run(t, t) == std::to_string(t) + ": requeue 200\n")
			c->book.requeued(200, at(t)); // and the record never shows it
	ck_assert(c->book.serialize(at(60)).find(" run=0 again=3\n") != std::string::npos);
	ck_assert_str(c->run(60, 70), "");
}
END_TEST

// Killed between the signal and the requeue: the restarted controller
// requeues at the deadline; if the agent's hard stop ended the borrower
// first (a slow restart), the ended job is requeued.
START_TEST(a_reclaim_interrupted_before_its_requeue_still_ends_pending)
{
	using Stage = BorrowerRecord::Stage;
	MidReclaim before;
	const std::string saved = before.c.book.serialize(at(25));
	for (bool hard_stopped : {false, true}) {
		Controller c;
		c.records = before.c.records;
		c.telemetry["n1"] = before.c.telemetry["n1"];
		c.jobs = std::map<uint32_t, BorrowerRecord>{{200, record(Stage::Running, 0)},
		                                            {201, record(Stage::Running, 0)}};
		std::string why;
		ck_assert_msg(c.book.restore(saved, why), "%s", why.c_str());
		if (!hard_stopped) {
			ck_assert_str(c.run(30, 40), "40: requeue 200\n");
			continue;
		}
		(*c.jobs)[200] = record(Stage::Failed, 0, 45);
		c.leave("n1", 0);
		ck_assert_str(c.run(46, 46), "46: requeue-ended 200\n");
		c.book.requeued(200, at(46));
		(*c.jobs)[200] = record(Stage::Pending, 1);
		ck_assert_str(c.run(47, 47), "");
		ck_assert_uint_eq(c.book.active_reclaims(), 0);
	}
	// A state written before the run was kept (8 fields) still restores.
	std::string old = saved;
	const size_t at_run = old.find(" run=0 again=0");
	ck_assert(at_run != std::string::npos);
	old.erase(at_run, std::string(" run=0 again=0").size());
	LoanBook book(short_policy(), telemetry_timeout, hard_stop_after);
	std::string why;
	ck_assert_msg(book.restore(old, why), "%s", why.c_str());
	ck_assert_uint_eq(book.active_reclaims(), 1);
}
END_TEST

// Reconfigure: the new policy applies to what happens from now on.
START_TEST(new_policy_applies_from_now_on)
{
	IdleLender s;
	s.c.lend(10, "n1", 0, 200);
	LendingPolicy p = short_policy();
	p.grace = 7s;
	s.c.book.set_policy(p, Seconds(15), Seconds(2));
	s.lender_busy = 80;
	const std::string ticks = s.c.run(11, 30);
	ck_assert_msg(ticks.find("signal 200:lender-busy") != std::string::npos, "%s", ticks.c_str());
	const long signalled = std::stol(ticks.substr(0, ticks.find(':')));
	ck_assert_msg(ticks.find(std::to_string(signalled + 7) + ": requeue 200") != std::string::npos, "%s",
	              ticks.c_str());
	ck_assert_str(s.c.orders("n1", signalled), "n1#1 200@9");
}
END_TEST

START_TEST(state_file_refused_leaves_the_book_empty)
{
	MidReclaim scene;
	const std::string good = scene.c.book.serialize(at(25));
	const std::string empty_book =
	        LoanBook(short_policy(), telemetry_timeout, hard_stop_after).serialize(at(25));
	auto replaced = [&](const std::string &from, const std::string &to) {
		std::string t = good;
		const size_t pos = t.find(from);
		ck_assert_msg(pos != std::string::npos, "%s", from.c_str());
		return t.replace(pos, from.size(), to);
	};
	const std::vector<std::pair<std::string, std::string>> bad = {
	        {"", "line 0: truncated (no end marker)"},
	        {"garbage\n", "line 1: not a flexslurm lending state (or another version)"},
	        {replaced("flexslurm-lending 1\n", "flexslurm-lending 2\n"),
	         "line 1: not a flexslurm lending state (or another version)"},
	        {good.substr(0, good.size() - 4), "truncated (no end marker)"},
	        {good.substr(0, good.size() / 2), ""},
	        {good + "slice n9 0 0\n", "text after the end marker"},
	        {replaced("state=reclaiming", "state=sleepy"), "malformed slice"},
	        {replaced(" deadline=40 signalled=1", " deadline=soon signalled=1"), "malformed reclaim"},
	        {replaced("total 100 ", "total x100 "), "malformed total"},
	        {replaced("saved 25\n", "saved 25\nborrowed n1 0\n"), "unknown line \"borrowed n1 0\""},
	        {replaced("saved 25\n", "saved 25\n\n"), "empty line"},
	        // Corrupted values that would overflow into an immediate kill order.
	        {replaced(" deadline=40 signalled=1", " deadline=9223372036854775807 signalled=1"),
	         "malformed reclaim"},
	        {replaced(" deadline=40 signalled=1", " deadline=4102444801 signalled=1"),
	         "malformed reclaim"},
	        {replaced("saved 25\n", "saved 9223372036854775807\n"), "bad time"},
	        // Found by tests/fuzz/fuzz_loan_book: node names no report can carry,
	        // which made orders the node refuses; devices no report can name.
	        {replaced("nodes=n1 ", "nodes=n1,,n\xff "), "malformed reclaim (bad node name)"},
	        {replaced("slice n1 0 0 ", "slice n/1 0 0 "), "bad node name"},
	        {replaced("slice n1 0 0 ", "slice n1 0 256 "), "bad slice or device number"},
	};
	for (const auto &[text, reason] : bad) {
		LoanBook book(short_policy(), telemetry_timeout, hard_stop_after);
		std::string why;
		ck_assert_msg(!book.restore(text, why), "accepted: %s", text.c_str());
		ck_assert_msg(!why.empty() && why.rfind("line ", 0) == 0, "%s", why.c_str());
		ck_assert_msg(why.find(reason) != std::string::npos, "%s (wanted %s)", why.c_str(),
		              reason.c_str());
		ck_assert_str(book.serialize(at(25)), empty_book);
		ck_assert_uint_eq(book.active_reclaims(), 0);
		ck_assert(book.totals().empty());
		ck_assert(book.orders_for("n1", 1, at(25)).stops.empty());
		ck_assert(book.lendable_units("n1", at(25)).empty());
	}
	LoanBook book(short_policy(), telemetry_timeout, hard_stop_after);
	std::string why;
	ck_assert(book.restore("flexslurm-lending 1\nsaved 5\nend\n", why));
	ck_assert_str(book.serialize(at(5)), "flexslurm-lending 1\nsaved 5\nend\n");
}
END_TEST

// Found by tests/fuzz/fuzz_loan_book: a restored reclaim whose deadline is
// further off than a stop order carries (still before 2100, so restore took
// it) gave an order of 2300000020 s, which parse_orders on the node refuses:
// every stop order of that node was lost. The order carries the longest
// delay instead; and a deadline before its reclaim started is corrupt.
START_TEST(restored_far_deadline_gives_orders_the_node_accepts)
{
	LoanBook book(short_policy(), telemetry_timeout, hard_stop_after);
	std::string why;
	ck_assert_msg(
	        book.restore(
	                "flexslurm-lending 1\nsaved 1700000000\n"
	                "reclaim 202 reason=admin t0=1700000000 deadline=4000000000 signalled=0 requeued=- nodes=n1\n"
	                "end\n",
	                why),
	        "%s", why.c_str());
	const Orders o = book.orders_for("n1", 1, at(1700000000));
	ck_assert_uint_eq(o.stops.size(), 1);
	ck_assert_int_eq(o.stops[0].in_seconds, max_stop_delay_seconds);
	ck_assert(parse_orders(encode_orders(o)));

	LoanBook bad(short_policy(), telemetry_timeout, hard_stop_after);
	ck_assert(!bad.restore(
	        "flexslurm-lending 1\nsaved 1700000000\n"
	        "reclaim 202 reason=admin t0=1700000000 deadline=1699999999 signalled=0 requeued=- nodes=n1\n"
	        "end\n",
	        why));
	ck_assert_msg(why.find("line 3: malformed reclaim") == 0, "%s", why.c_str());
	ck_assert_uint_eq(bad.active_reclaims(), 0);
}
END_TEST

// A restarted controller must not count its own downtime against the
// agents: the first tick after a restart runs before the listener accepts
// reports, and a restart longer than telemetry_timeout (or one without a
// state file) must not take back every loan. Every agent gets a full
// telemetry_timeout from the first sync to be heard again.
START_TEST(a_restart_gives_the_agents_a_full_timeout)
{
	MidReclaim before;
	const std::string text = before.c.book.serialize(at(25));
	{ // Down from 25 to 60 (more than telemetry_timeout).
		Controller after;
		after.records = before.c.records;
		std::string why;
		ck_assert_msg(after.book.restore(text, why), "%s", why.c_str());
		ck_assert_str(after.run(60, 60), "60: requeue 200\n"); // overdue since 40: at once
		after.book.requeued(200, at(60));
		after.hold("n1", 0, 200, true);
		// Slice 2's loan goes on while its agent may yet be heard ...
		ck_assert_str(after.run(61, 75), "");
		// ... and is lost once unheard for a full timeout after the restart.
		ck_assert_str(after.run(76, 76), "76: signal 201:telemetry-lost\n");
	}
	{ // No state file at all: the records still say who borrows what.
		Controller after;
		after.records = before.c.records;
		ck_assert_str(after.run(60, 75), "");
		ck_assert(after.book.status(at(75)).find("n1 2 1 lent JobId=100 JobId=201 15s\n") !=
		          std::string::npos);
		ck_assert_str(after.run(76, 76), "76: signal 200:telemetry-lost 201:telemetry-lost\n");
	}
	{ // The node has not registered since the restart: Slurm's records show no
	  // devices and no holders there yet. Its loans and reclaims stay as saved.
		Controller after;
		after.records = before.c.records;
		after.records.at("n1") = NodeRecords{};
		after.records.at("n1").node = "n1";
		after.records.at("n1").known = false;
		std::string why;
		ck_assert_msg(after.book.restore(text, why), "%s", why.c_str());
		ck_assert_str(after.run(60, 60), "60: requeue 200\n");
		after.book.requeued(200, at(60));
		ck_assert_str(after.run(61, 65), "");
		ck_assert_uint_eq(after.book.active_reclaims(), 1); // not "gone": just not known yet
		ck_assert(after.book.status(at(65)).find("n1 2 1 lent JobId=100 JobId=201") !=
		          std::string::npos);
		after.records = before.c.records; // it registers: the records say who holds what
		after.hold("n1", 0, 200, true);
		ck_assert_str(after.run(66, 66), "");
		ck_assert_uint_eq(after.book.active_reclaims(), 1);
		after.leave("n1", 0); // the requeued borrower's processes are gone
		ck_assert_str(after.run(67, 67), "");
		ck_assert_uint_eq(after.book.active_reclaims(), 0);
	}
}
END_TEST

// --- LoanBook: random sequences against the invariants -----------------------------

Suite *loan_book_restart_suite()
{
	Suite *s = suite_create("loan_book_restart");
	TCase *tc = tcase_create("loan_book_restart");
	tcase_add_test(tc, state_file_round_trip_continues_loans_and_reclaims);
	tcase_add_test(tc, a_requeue_the_job_record_does_not_show_is_made_again);
	tcase_add_test(tc, a_reclaim_interrupted_before_its_requeue_still_ends_pending);
	tcase_add_test(tc, new_policy_applies_from_now_on);
	tcase_add_test(tc, state_file_refused_leaves_the_book_empty);
	tcase_add_test(tc, restored_far_deadline_gives_orders_the_node_accepts);
	tcase_add_test(tc, a_restart_gives_the_agents_a_full_timeout);
	suite_add_tcase(s, tc);
	return s;
}
