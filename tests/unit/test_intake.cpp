// SPDX-License-Identifier: GPL-2.0-or-later
// Idle reclaim's trust gate: the intake's checks in their order with a
// fake Munge, replays across agent restarts, and its log throttling.
#include "wire_scene.hpp"

#include <string>
#include <utility>
#include <vector>

using namespace flexslurm;
using namespace wire_scene;

START_TEST(drop_reason_names)
{
	const std::vector<std::pair<DropReason, std::string>> names = {
	        {DropReason::BadCredential, "bad-credential"},
	        {DropReason::Replayed, "replayed"},
	        {DropReason::WrongUid, "wrong-uid"},
	        {DropReason::Malformed, "malformed"},
	        {DropReason::Oversized, "oversized"},
	        {DropReason::UnknownNode, "unknown-node"},
	        {DropReason::WrongAddress, "wrong-address"},
	        {DropReason::Stale, "stale"},
	        {DropReason::Flood, "flood"},
	};
	ck_assert_uint_eq(names.size(), drop_reason_count);
	for (const auto &[r, name] : names)
		ck_assert_str(std::string(drop_reason_name(r)), name);
	ck_assert(valid_node_name("a") && valid_node_name(std::string(64, 'Z')) &&
	          valid_node_name("n-1.x_2"));
	ck_assert(!valid_node_name("") && !valid_node_name(std::string(65, 'a')) && !valid_node_name("a b") &&
	          !valid_node_name("a,b") && !valid_node_name("a[1-2]"));
}
END_TEST

START_TEST(intake_checks_in_order)
{
	record_log();
	take_logged(LogLevel::Error);
	FakeMunge munge;
	ReportIntake intake(rules(), munge.opener());
	const std::string p1 = "10.0.0.1";
	const std::string p9 = "10.0.0.9"; // the checks before the address one do not look at the peer
	const long t = 1000;

	auto ok = intake.take(munge.seal(report("n1", 1, 1, t)), p1, at(t));
	ck_assert(ok && ok->node == "n1" && ok->seq == 1 && ok->devices.size() == 1);
	ck_assert_uint_eq(intake.accepted(), 1);
	ck_assert_uint_eq(take_logged(LogLevel::Error).size(), 0);

	struct Case {
		std::string frame, peer;
		DropReason reason;
		std::string line;
	};
	const std::vector<Case> cases = {
	        {std::string(max_message_bytes + 1, 'c'), p9, DropReason::Oversized,
	         "reclaim: dropped report from 10.0.0.9 (?): oversized: frame of 65537 bytes is over the 65536-byte limit"},
	        {"garbage", p9, DropReason::BadCredential,
	         "reclaim: dropped report from 10.0.0.9 (?): bad-credential: Invalid credential format"},
	        // A wrong uid is refused before its payload is even parsed.
	        {munge.seal("hello", 1000), p9, DropReason::WrongUid,
	         "reclaim: dropped report from 10.0.0.9 (?): wrong-uid: credential of uid 1000, which may not report"},
	        {munge.seal("hello\n", 64030), p9, DropReason::Malformed,
	         "reclaim: dropped report from 10.0.0.9 (?): malformed: line 1: not a flexslurm-report message (expected \"flexslurm-report 2\")"},
	        // Unknown beats a wrong address and staleness.
	        {munge.seal(report("n9", 1, 9, 0)), p9, DropReason::UnknownNode,
	         "reclaim: dropped report from 10.0.0.9 (n9): unknown-node: not a node of this cluster"},
	        {munge.seal(report("n2", 1, 9, 0)), p1, DropReason::WrongAddress,
	         "reclaim: dropped report from 10.0.0.1 (n2): wrong-address: the node does not have address 10.0.0.1"},
	        {munge.seal(report("n1", 1, 9, t - 61)), p1, DropReason::Stale,
	         "reclaim: dropped report from 10.0.0.1 (n1): stale: sent at 939, now is 1000 (max_age 60 s)"},
	        {munge.seal(report("n1", 1, 9, t + 61)), p1, DropReason::Stale,
	         "reclaim: dropped report from 10.0.0.1 (n1): stale: sent at 1061, now is 1000 (max_age 60 s)"},
	        {munge.seal(report("n1", 1, 9, INT64_MIN)), p1, DropReason::Stale,
	         "reclaim: dropped report from 10.0.0.1 (n1): stale: sent at -9223372036854775808, now is 1000 (max_age 60 s)"},
	        // Munge's replay cache, even for a newer seq; then (epoch, seq) not newer.
	        {munge.seal(report("n1", 1, 9, t), 0, true), p1, DropReason::Replayed,
	         "reclaim: dropped report from 10.0.0.1 (n1): replayed: munge says the credential was replayed"},
	        {munge.seal(report("n1", 1, 1, t)), p1, DropReason::Replayed,
	         "reclaim: dropped report from 10.0.0.1 (n1): replayed: epoch 1 seq 1 is not newer than the last accepted (epoch 1 seq 1)"},
	        {munge.seal(report("n1", 0, 99, t)), p1, DropReason::Replayed,
	         "reclaim: dropped report from 10.0.0.1 (n1): replayed: epoch 0 seq 99 is not newer than the last accepted (epoch 1 seq 1)"},
	        {munge.seal(report("n1", 1, 4, t + 4)), p1, DropReason::Flood,
	         "reclaim: dropped report from 10.0.0.1 (n1): flood: 4 reports within 5 s (at most 3)"},
	};
	uint64_t expected[drop_reason_count] = {};
	for (const Case &c : cases) {
		if (c.reason == DropReason::Flood) { // two more within the window first: 3 are fine
			ck_assert(intake.take(munge.seal(report("n1", 1, 2, t + 1)), p1, at(t + 1)));
			ck_assert(intake.take(munge.seal(report("n1", 1, 3, t + 2)), p1, at(t + 2)));
		}
		const auto got = intake.take(c.frame, c.peer, at(c.reason == DropReason::Flood ? t + 4 : t));
		ck_assert_msg(!got, "accepted: %s", c.line.c_str());
		++expected[static_cast<size_t>(c.reason)];
		const auto lines = take_logged(LogLevel::Error);
		ck_assert_uint_eq(lines.size(), 1);
		ck_assert_str(lines[0], c.line);
	}
	for (size_t i = 0; i < drop_reason_count; ++i)
		ck_assert_uint_eq(intake.dropped(static_cast<DropReason>(i)), expected[i]);
	ck_assert_uint_eq(intake.accepted(), 3);

	// Edges that pass: sent exactly max_age ago, or max_age ahead; min_interval after.
	ck_assert(intake.take(munge.seal(report("n1", 1, 5, t + 5 - 60)), p1, at(t + 5)));
	ck_assert(intake.take(munge.seal(report("n1", 1, 6, t + 10 + 60)), p1, at(t + 10)));
	// seq 6 again.
	ck_assert(!intake.take(munge.seal(report("n1", 1, 6, t + 20)), p1, at(t + 20)));
	ck_assert_uint_eq(intake.dropped(DropReason::Replayed), 4);
	// Other nodes have their own sequence and clock.
	ck_assert(intake.take(munge.seal(report("n2", 7, 1, t + 20)), "10.0.0.2", at(t + 20)));
	ck_assert(!intake.take("throw", p1, at(t + 30))); // the opener's exception stays inside
	ck_assert(contains(take_logged(LogLevel::Error).back(), "opener exploded"));
	ck_assert_uint_eq(intake.accepted(), 6);

	// Without callbacks nobody is known; without uids nobody may report.
	ReportIntake bare(IntakeRules{}, munge.opener());
	ck_assert(!bare.take(munge.seal(report("n1", 1, 1, t)), p1, at(t)));
	ck_assert_uint_eq(bare.dropped(DropReason::WrongUid), 1);
	IntakeRules uids_only;
	uids_only.allowed_uids = {0};
	ReportIntake no_nodes(uids_only, munge.opener());
	ck_assert(!no_nodes.take(munge.seal(report("n1", 1, 1, t)), p1, at(t)));
	ck_assert_uint_eq(no_nodes.dropped(DropReason::UnknownNode), 1);
	take_logged(LogLevel::Error);
}
END_TEST

START_TEST(intake_replay_and_restart)
{
	record_log();
	FakeMunge munge;
	ReportIntake intake(rules(), munge.opener());
	const std::string p1 = "10.0.0.1";
	long t = 5000;
	auto send = [&](uint64_t epoch, uint64_t seq) {
		t += 10;
		return intake.take(munge.seal(report("n1", epoch, seq, t)), p1, at(t)).has_value();
	};
	ck_assert(send(100, 1));
	ck_assert(send(100, 2));
	ck_assert(send(100, 5)); // gaps are fine (lost reports)
	ck_assert(!send(100, 5));
	ck_assert(!send(100, 4));
	ck_assert(!send(99, 1000)); // an older agent's report
	ck_assert(send(101, 1));    // the agent restarted: a higher epoch starts seq over
	ck_assert(!send(100, 6));   // and the old epoch is over
	ck_assert(!send(101, 1));
	ck_assert(send(101, 2));
	ck_assert_uint_eq(intake.dropped(DropReason::Replayed), 5);
	ck_assert_uint_eq(intake.accepted(), 5);

	// Flood: at most flood_burst reports from a node within min_interval.
	ck_assert(intake.take(munge.seal(report("n2", 1, 1, t)), "10.0.0.2", at(t)));
	ck_assert(intake.take(munge.seal(report("n2", 1, 2, t)), "10.0.0.2", at(t)));
	ck_assert(intake.take(munge.seal(report("n2", 1, 3, t + 1)), "10.0.0.2", at(t + 1)));
	ck_assert(!intake.take(munge.seal(report("n2", 1, 4, t + 4)), "10.0.0.2", at(t + 4)));
	ck_assert(!intake.take(munge.seal(report("n2", 1, 5, t + 4)), "10.0.0.2", at(t + 4)));
	ck_assert(intake.take(munge.seal(report("n2", 1, 6, t + 5)), "10.0.0.2", at(t + 5)));
	// A clock stepped back is not a flood.
	ck_assert(intake.take(munge.seal(report("n2", 1, 7, t - 30)), "10.0.0.2", at(t - 30)));
	ck_assert_uint_eq(intake.dropped(DropReason::Flood), 2);

	// The per-node table is bounded: the least recently heard node is forgotten.
	IntakeRules small = rules();
	small.max_nodes = 2;
	ReportIntake bounded(small, munge.opener());
	const std::string n1_first = munge.seal(report("n1", 1, 1, t));
	ck_assert(bounded.take(n1_first, p1, at(t)));
	ck_assert(bounded.take(munge.seal(report("n2", 1, 1, t)), "10.0.0.2", at(t + 1)));
	ck_assert(bounded.take(munge.seal(report("n3", 1, 1, t)), "10.0.0.3", at(t + 2)));
	ck_assert(bounded.take(n1_first, p1, at(t + 3))); // n1 forgotten: only munge's cache would catch it
	ck_assert(!bounded.take(munge.seal(report("n3", 1, 1, t)), "10.0.0.3", at(t + 10)));
	take_logged(LogLevel::Error);
}
END_TEST

START_TEST(intake_log_is_throttled_per_peer)
{
	record_log();
	take_logged(LogLevel::Error);
	FakeMunge munge;
	ReportIntake intake(rules(), munge.opener());
	for (long s = 0; s < 10; ++s)
		intake.take("bad", "10.9.9.9", at(s));
	ck_assert_uint_eq(take_logged(LogLevel::Error).size(), 10);
	for (long s = 10; s < 30; ++s)
		intake.take("bad", "10.9.9.9", at(s));
	ck_assert_uint_eq(take_logged(LogLevel::Error).size(), 0); // the 11th and later in that minute
	intake.take("bad", "10.8.8.8", at(30));                    // another peer has its own budget
	ck_assert_uint_eq(take_logged(LogLevel::Error).size(), 1);
	intake.take("bad", "10.9.9.9", at(68)); // a minute has not passed since the last line (9)
	ck_assert_uint_eq(take_logged(LogLevel::Error).size(), 0);
	intake.take("bad", "10.9.9.9", at(69));
	auto lines = take_logged(LogLevel::Error);
	ck_assert_uint_eq(lines.size(), 1);
	ck_assert_str(
	        lines[0],
	        "reclaim: dropped report from 10.9.9.9 (?): bad-credential: Invalid credential format (21 more drops from this peer not logged since 60 s)");
	// Still as busy: one line a minute.
	for (long s = 70; s < 129; ++s)
		intake.take("bad", "10.9.9.9", at(s));
	ck_assert_uint_eq(take_logged(LogLevel::Error).size(), 0);
	for (long s = 129; s < 129 + 5; ++s)
		intake.take("bad", "10.9.9.9", at(s));
	lines = take_logged(LogLevel::Error);
	ck_assert_uint_eq(lines.size(), 1);
	ck_assert(contains(lines[0], "(59 more drops from this peer not logged since 60 s)"));
	// Calmer (fewer than 10 since that line): a line each again.
	intake.take("bad", "10.9.9.9", at(200));
	lines = take_logged(LogLevel::Error);
	ck_assert_uint_eq(lines.size(), 1);
	ck_assert(contains(lines[0], "(4 more drops"));
	intake.take("bad", "10.9.9.9", at(201));
	intake.take("bad", "10.9.9.9", at(202));
	ck_assert_uint_eq(take_logged(LogLevel::Error).size(), 2);
	ck_assert_uint_eq(intake.dropped(DropReason::BadCredential), 10 + 20 + 1 + 2 + 59 + 5 + 3);
}
END_TEST

Suite *report_intake_suite()
{
	Suite *s = suite_create("report_intake");
	TCase *intake = tcase_create("intake");
	tcase_add_test(intake, drop_reason_names);
	tcase_add_test(intake, intake_checks_in_order);
	tcase_add_test(intake, intake_replay_and_restart);
	tcase_add_test(intake, intake_log_is_throttled_per_peer);
	suite_add_tcase(s, intake);
	return s;
}
