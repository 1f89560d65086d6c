// SPDX-License-Identifier: GPL-2.0-or-later
// LendingServer as slurmctld runs it: job totals, clock steps, DNS, loans
// committed during a read, a backup controller, reconfigure.
#include "lending_server_scene.hpp"

using namespace lending_server_scene;
START_TEST(totals_cleaned_by_job_liveness_with_a_node_never_registered)
{
	Rig rig;
	rig.ctl.add_node("n2", {}, false); // configured, never registered
	rig.lend();
	rig.ctl.jobs.erase(borrower);
	rig.ctl.leave("n1", 0);
	rig.run(1);
	for (uint32_t b = 1000; b < 6000; ++b) { // 5,000 borrowers, one after the other
		rig.ctl.jobs[b];
		rig.server->committed(b, {{"n1", 0}});
		rig.ctl.hold("n1", 0, b);
		rig.run(1);
		rig.ctl.leave("n1", 0);
		rig.ctl.jobs.erase(b); // ended and purged
		rig.server->tick();
	}
	rig.run(31);                                      // a quiet change: saved within 30 s
	ck_assert_uint_eq(rig.server->totals_count(), 1); // the lender, still running
	ck_assert(has(rig.state(), "\ntotal 100 "));
	ck_assert(!has(rig.state(), "\ntotal 5999 "));
	// What the controller was asked about is what had totals.
	ck_assert(rig.ctl.asked.back() == std::vector<uint32_t>{lender});
	rig.ctl.jobs.erase(lender);
	rig.ctl.records.at("n1").owners.clear();
	rig.run(2);
	ck_assert_uint_eq(rig.server->totals_count(), 0);
}
END_TEST

// The status file's TICK line: the last 600 ticks' read and act times; the
// act times only of ticks that took the write lock. Also in the log every
// 600 ticks.
START_TEST(tick_times_in_the_status_file_and_the_log)
{
	RecentTimes r(3);
	ck_assert(r.quantile(0.5) == 0);
	for (double v : {5.0, 1.0, 3.0, 9.0}) // 5 falls out of the ring
		r.add(v);
	ck_assert(r.size() == 3 && r.count() == 4);
	ck_assert(r.quantile(0.5) == 3.0 && r.quantile(0.99) == 9.0 && r.quantile(0) == 1.0);

	Rig rig;
	rig.lend();
	rig.run(11); // the status is rewritten every 10 s
	const std::string status = rig.status();
	const size_t tick = status.find("\nTICK ticks=");
	ck_assert_msg(tick != std::string::npos, "%s", status.c_str());
	ck_assert(tick > status.find("RECLAIMS IN FLIGHT\n") && tick < status.find("HISTORY\n"));
	// Only the ticks that took the write lock: here each (a running borrower's
	// total is written every second).
	auto act_ticks = [&] {
		const std::string s = rig.status();
		return std::stoi(s.substr(s.find(" act_ticks=") + 11));
	};
	const int before = act_ticks();
	ck_assert_int_gt(before, 0);
	rig.run(11);
	ck_assert_int_gt(act_ticks(), before);
	ck_assert_uint_eq(count_logged("lending: TICK ticks=600 "), 0);
	rig.run(600);
	ck_assert_uint_eq(count_logged("lending: TICK ticks=600 "), 1);

	// The times are those the controller held its locks for, when it says
	// (the wait for them is apart): the 600 ticks of the ring all say 250 ms.
	rig.ctl.held_ms = 250;
	rig.run(610);
	const std::string held = rig.status();
	ck_assert_msg(held.find(" read_p50_ms=250.00 read_p99_ms=250.00 ") != std::string::npos, "%s",
	              held.c_str());
	ck_assert_msg(held.find(" act_p50_ms=250.00 act_p99_ms=250.00 wait_p99_ms=0.00\n") !=
	                      std::string::npos,
	              "%s", held.c_str());
}
END_TEST

START_TEST(wall_clock_steps_move_no_timer)
{
	for (const long step : {3600L, -3600L}) {
		Rig rig;
		rig.lend();
		// A step of the wall clock: no loan is taken back for it (max loan,
		// telemetry age), and nothing is lendable sooner or later for it.
		rig.wall += step;
		rig.run(30);
		ck_assert_str(rig.ctl.take_calls(), "");
		ck_assert_uint_eq(rig.server->active_reclaims(), 0);
		ck_assert_uint_eq(count_logged("the wall clock moved by " + std::to_string(step) + " s"), 1);
		// A reclaim, and another step in the grace: the requeue comes on
		// time, 20 s after the signal.
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 20), "t+10: signal 200");
		rig.run(5);
		rig.wall -= step;
		ck_assert_str(until_called(rig, 30), "t+15: requeue 200");
		// The state file is in wall clock time, as the wall clock is now;
		// the history as it was then.
		ck_assert(has(rig.state(), "\nsaved " + std::to_string(rig.wall) + "\n"));
		ck_assert(has(rig.state(), " deadline=" + std::to_string(rig.wall) + "\n"));
		ck_assert(has(rig.state(), "\nhistory " + std::to_string(rig.wall - 20 + step) +
		                                   " reclaim JobId=200 from n1"));
	}
}
END_TEST

START_TEST(a_failed_dns_lookup_is_tried_again)
{
	Rig rig;
	rig.ctl.dns.erase("h-n1");
	rig.run(1);
	ck_assert_str(resolves(rig), "resolve h-n1");
	ck_assert_uint_eq(
	        count_logged("cannot resolve h-n1 (node n1): its reports are refused until it resolves"), 1);
	ck_assert_str(rig.report(), "-"); // refused: unknown node
	rig.run(29);
	ck_assert_str(resolves(rig), ""); // not at every tick
	rig.run(1);
	ck_assert_str(resolves(rig), "resolve h-n1"); // after 30 s
	rig.run(59);
	ck_assert_str(resolves(rig), "");
	rig.ctl.dns["h-n1"] = {"10.0.0.1"};
	rig.run(1);
	ck_assert_str(resolves(rig), "resolve h-n1"); // after 60 s more
	ck_assert_str(rig.report(), "");              // heard now
	rig.run(120);
	ck_assert_str(resolves(rig), ""); // resolved: kept
	ck_assert_uint_eq(count_logged("h-n1 (node n1) resolves now"), 1);
}
END_TEST

// The scheduler starts a borrower between the tick's read of the job
// records and its decisions: the records are read again, the loan stays.
START_TEST(a_loan_committed_during_a_read_is_kept)
{
	Rig rig;
	rig.run(15);
	ck_assert(rig.server->lendable("n1") == std::set<int>{0});
	const size_t reads = rig.ctl.asked.size();
	rig.ctl.after_read = [&] {
		rig.ctl.jobs[borrower];
		rig.server->committed(borrower, {{"n1", 0}});
		rig.ctl.hold("n1", 0, borrower);
	};
	rig.run(1);
	ck_assert_uint_eq(rig.ctl.asked.size(), reads + 2);
	ck_assert_uint_eq(count_logged("n1 slice 0 of JobId=100 lent to JobId=200"), 1);
	ck_assert_uint_eq(count_logged("loan found in the job records"), 0);
	ck_assert(has(rig.status(), "n1 0 0 lent JobId=100 JobId=200 0s\n"));
	ck_assert(rig.server->lendable("n1").empty());
}
END_TEST

START_TEST(a_backup_controller_does_nothing)
{
	Rig rig;
	rig.ctl.primary = false;
	rig.run(20);
	ck_assert(rig.ctl.asked.empty());
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], 0);
}
END_TEST

// The devices' identities: from n1's last report to an admin's "devices"
// answer; a report without them forgets them; others are refused.
START_TEST(device_identities_from_the_reports)
{
	Rig rig;
	const AdminRequest devices{AdminRequest::Kind::Devices, 0};
	ck_assert_str(rig.admin(devices, 0), "DEVICES\nend\n");
	rig.identities = {{0, "GPU-5eed0c00-1000-400c-8000-f1e55000c000", "0000:3b:00.0"},
	                  {1, "", "0000:af:00.0"}};
	rig.run(5);
	ck_assert_str(
	        rig.admin(devices, 0),
	        "DEVICES\nn1 0 GPU-5eed0c00-1000-400c-8000-f1e55000c000 0000:3b:00.0\nn1 1 - 0000:af:00.0\nend\n");
	ck_assert_str(rig.admin(devices, 1000), "error: only root and SlurmUser may use flexslurm-lending\n");
	rig.identities.clear();
	rig.run(5);
	ck_assert_str(rig.admin(devices, 0), "DEVICES\nend\n");
}
END_TEST

START_TEST(totals_in_a_job_comment)
{
	ck_assert_str(totals_comment("", {120, 0}), "flexslurm: lent 120 slice-s");
	ck_assert_str(totals_comment("site note", {0, 30}), "site note; flexslurm: borrowed 30 slice-s");
	ck_assert_str(totals_comment("site note; flexslurm: borrowed 30 slice-s", {5, 40}),
	              "site note; flexslurm: lent 5 slice-s, borrowed 40 slice-s");
	ck_assert_str(totals_comment("flexslurm: lent 1 slice-s; other", {2, 0}),
	              "other; flexslurm: lent 2 slice-s");
	ck_assert(has_totals("other; flexslurm: lent 2 slice-s"));
	ck_assert(!has_totals("site note"));
	ck_assert(!has_totals(""));
}
END_TEST

// Failover: a controller that is no longer in control closes the report
// port, writes nothing and forgets what it knew; when control comes back
// it reads the state file afresh (another controller ran the cluster
// meanwhile) and listens again.
START_TEST(standby_then_in_control_reads_the_state_again)
{
	Rig rig;
	rig.use_listener();
	rig.lend();
	rig.run(1);
	ck_assert_uint_eq(rig.listened.size(), 1);
	ck_assert(port_open(rig.listener_port));
	ck_assert(has(rig.state(), "borrower=200"));
	const int writes = rig.writes["flexslurm_lending.state"];

	rig.ctl.primary = false;
	rig.run(1);
	ck_assert_uint_eq(count_logged("lending: not in control: report port closed, standing by"), 1);
	ck_assert(!port_open(rig.listener_port));
	ck_assert(rig.server->lendable("n1").empty());
	ck_assert_uint_eq(rig.server->totals_count(), 0);
	rig.lender_busy = 70; // nothing is reclaimed by a controller standing by
	rig.run(30);
	ck_assert_str(rig.ctl.take_calls(), "");
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], writes);
	ck_assert_uint_eq(rig.listened.size(), 1);

	// Meanwhile the controller in control started a reclaim (its file).
	{
		std::ofstream out(rig.dir + "/flexslurm_lending.state");
		out << "flexslurm-lending 1\nsaved " << rig.wall << "\n"
		    << "reclaim 200 reason=lender-busy t0=" << rig.wall - 5 << " deadline=" << rig.wall + 10
		    << " signalled=1 requeued=- nodes=n1 run=0 again=0\nend\n";
	}
	rig.ctl.primary = true;
	rig.run(1);
	ck_assert_uint_eq(count_logged("lending: in control: reading the state file"), 2);
	ck_assert_uint_eq(count_logged("(1 reclaim(s) in flight)"), 1);
	ck_assert_uint_eq(rig.server->active_reclaims(), 1);
	ck_assert_uint_eq(rig.listened.size(), 2);
	ck_assert(port_open(rig.listener_port));
	// Written again at once: this controller's view of the reclaim.
	ck_assert(has(rig.state(), "reclaim 200 reason=lender-busy"));
	ck_assert_int_gt(rig.writes["flexslurm_lending.state"], writes);
	// No second signal; the restored deadline holds.
	ck_assert_str(until_called(rig, 20), "t+9: requeue 200");
}
END_TEST

// A controller killed right after a requeue restarts from job state saved
// before it: the record still shows the reclaimed run running, and it is
// requeued again; one the hard stop ended FAILED meanwhile is requeued
// from its end.
START_TEST(a_requeue_lost_with_a_restart_is_made_again)
{
	std::string dir;
	{
		Rig rig;
		dir = rig.dir;
		rig.lend();
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 20), "t+10: signal 200");
		ck_assert_str(until_called(rig, 30), "t+20: requeue 200");
		ck_assert(has(rig.state(), " run=0 again=0"));
		ck_assert(!has(rig.state(), "requeued=-"));
	}
	{
		// The restarted controller, 100 s later: the record shows run 0
		// running.
		Rig rig(dir);
		rig.wall += 100;
		rig.ctl.hold("n1", 0, borrower);
		rig.ctl.jobs[borrower].start_time = rig.wall - 100;
		rig.lender_busy = 70;
		rig.run(1);
		ck_assert_uint_eq(count_logged("(1 reclaim(s) in flight)"), 1);
		ck_assert_uint_eq(
		        count_logged(
		                "reclaim JobId=200: its job record still shows it running, not requeued"),
		        1);
		ck_assert_str(rig.ctl.take_calls(), "requeue 200, resolve h-n1"); // in the same tick
		// Requeued now: it leaves, and comes back as run 1, pending.
		rig.ctl.leave("n1", 0);
		rig.ctl.jobs[borrower].run = 1;
		rig.run(1);
		ck_assert_uint_eq(rig.server->active_reclaims(), 0);
		ck_assert_uint_eq(count_logged("reclaim JobId=200 done (lender-busy)"), 1);
	}
	clear_log();
	std::string again_dir;
	{
		Rig rig;
		again_dir = rig.dir;
		rig.lend();
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 20), "t+10: signal 200");
		ck_assert_str(until_called(rig, 30), "t+20: requeue 200");
	}
	{
		// The hard stop ended it FAILED while the controller was down.
		Rig rig(again_dir);
		rig.wall += 100;
		rig.ctl.jobs[borrower].running = false;
		rig.ctl.jobs[borrower].record =
		        BorrowerRecord{BorrowerRecord::Stage::Failed, 0, Instant(Seconds(rig.wall - 1))};
		rig.run(1);
		ck_assert_uint_eq(count_logged("reclaim JobId=200: ended FAILED after its deadline"), 1);
		ck_assert_str(rig.ctl.take_calls(), "requeue ended 200, resolve h-n1");
		rig.run(1); // pending, run 1: done
		ck_assert_uint_eq(rig.server->active_reclaims(), 0);
		ck_assert_uint_eq(count_logged("reclaim JobId=200 done (lender-busy)"), 1);
	}
}
END_TEST

// select_p_reconfigure: a new grace for the reclaims started after it, a
// new port listened on at the next tick.
START_TEST(reconfigure_changes_the_grace_and_the_port)
{
	Rig rig;
	rig.use_listener();
	rig.lend();
	ck_assert_uint_eq(rig.listened.size(), 1);
	ServerSettings s = short_settings(rig.dir);
	s.policy.grace = 40s;
	s.port = 7001;
	rig.server->reconfigure(s);
	ck_assert_uint_eq(count_logged("lending: settings reloaded (grace 40 s, idle window 10 s)"), 1);
	rig.run(1);
	ck_assert_uint_eq(rig.listened.size(), 2);
	ck_assert_uint_eq(rig.listened.back(), 7001);
	ck_assert(port_open(rig.listener_port));
	rig.lender_busy = 70;
	ck_assert_str(until_called(rig, 20), "t+9: signal 200");
	ck_assert(has(rig.status(), "deadline in 40s"));
	ck_assert_str(until_called(rig, 60), "t+40: requeue 200");
}
END_TEST

Suite *lending_server_ops_suite()
{
	Suite *s = suite_create("lending_server_ops");
	TCase *tc = tcase_create("lending_server_ops");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, totals_cleaned_by_job_liveness_with_a_node_never_registered);
	tcase_add_test(tc, tick_times_in_the_status_file_and_the_log);
	tcase_add_test(tc, wall_clock_steps_move_no_timer);
	tcase_add_test(tc, a_failed_dns_lookup_is_tried_again);
	tcase_add_test(tc, a_loan_committed_during_a_read_is_kept);
	tcase_add_test(tc, a_backup_controller_does_nothing);
	tcase_add_test(tc, totals_in_a_job_comment);
	tcase_add_test(tc, standby_then_in_control_reads_the_state_again);
	tcase_add_test(tc, a_requeue_lost_with_a_restart_is_made_again);
	tcase_add_test(tc, reconfigure_changes_the_grace_and_the_port);
	tcase_add_test(tc, device_identities_from_the_reports);
	suite_add_tcase(s, tc);
	return s;
}
