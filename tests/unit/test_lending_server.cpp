// SPDX-License-Identifier: GPL-2.0-or-later
// The controller side of idle reclaim (LendingServer), driven second by
// second (lending_server_scene.hpp): reports become loans, loans are
// reclaimed with a grace and a hard stop, the state and status files, the
// admin's requests, a restart restoring what was in flight.
#include "lending_server_scene.hpp"

using namespace lending_server_scene;

START_TEST(report_loan_reclaim_grace_and_hard_stop)
{
	Rig rig;
	rig.run(1);
	ck_assert(has(rig.ctl.take_calls(), "resolve h-n1"));
	rig.lend();
	rig.run(1);
	ck_assert(has(rig.status(), "n1 0 0 lent JobId=100 JobId=200 1s\n"));
	ck_assert_uint_eq(count_logged("n1 slice 0 of JobId=100 lent to JobId=200"), 1);

	// The lender is busy again: after two busy samples, the signal.
	rig.lender_busy = 70;
	ck_assert_str(until_called(rig, 20), "t+8: signal 200");
	ck_assert_uint_eq(rig.server->active_reclaims(), 1);
	ck_assert(has(rig.status(), "JobId=200 lender-busy started 0s ago, deadline in 20s"));
	// The agent is told to hard-stop it after the grace and hard_stop_after.
	rig.run(4);
	ck_assert_str(rig.report(), "200@21");
	// At the deadline, the requeue; the job records then show it leaving.
	ck_assert_str(until_called(rig, 30), "t+16: requeue 200");
	ck_assert(!rig.ctl.jobs[borrower].running);
	rig.run(2);
	ck_assert_uint_eq(rig.server->active_reclaims(), 1); // still on the device
	rig.ctl.leave("n1", 0);
	rig.run(1);
	ck_assert_uint_eq(rig.server->active_reclaims(), 0);
	ck_assert_uint_eq(count_logged("reclaim JobId=200 done (lender-busy)"), 1);
	ck_assert_str(rig.report(), "");
	// What the borrower borrowed is in its record.
	ck_assert(has(rig.ctl.jobs[borrower].comment, "flexslurm: borrowed "));
	// The lender ends: its total for its record.
	const auto lent = rig.server->ended(lender);
	ck_assert(lent && lent->lent_slice_seconds > 20);
	ck_assert(!rig.server->ended(borrower));
}
END_TEST

// The metrics file (metrics.controller_textfile_dir) follows the job
// records and counts the loan, the reclaim and its latency; the answers to
// the agent say who holds each slice.
START_TEST(metrics_file_counts_a_loan_and_its_reclaim)
{
	Rig rig;
	rig.run(1);
	const std::string path = "/metrics/flexslurm_controller.prom";
	const auto line = [&](const std::string &l) {
		const std::string &text = rig.public_files[path];
		return text.find("\n" + l + "\n") != std::string::npos;
	};
	ck_assert_msg(line("flexslurm_slices_allocated{Hostname=\"n1\",device=\"0\"} 1"), "%s",
	              rig.public_files[path].c_str());
	ck_assert(line("flexslurm_slices{Hostname=\"n1\",device=\"1\"} 2"));
	ck_assert(line("flexslurm_loans_total 0"));
	rig.lend();
	rig.run(5); // a report, and the next write (every 5 s)
	ck_assert_msg(line("flexslurm_slices_lent{Hostname=\"n1\",device=\"0\"} 1"), "%s",
	              rig.public_files[path].c_str());
	ck_assert(line("flexslurm_slices_borrowed{Hostname=\"n1\",device=\"0\"} 1"));
	ck_assert(line("flexslurm_loans_total 1"));
	ck_assert(rig.last_slices == (std::vector<SliceHolders>{{0, lender, borrower}}));
	rig.lender_busy = 70;
	ck_assert_str(until_called(rig, 20), "t+9: signal 200");
	ck_assert_str(until_called(rig, 30), "t+20: requeue 200");
	rig.ctl.leave("n1", 0);
	rig.run(6);
	ck_assert_uint_eq(rig.server->active_reclaims(), 0);
	ck_assert_msg(line("flexslurm_reclaims_total{reason=\"lender-busy\"} 1"), "%s",
	              rig.public_files[path].c_str());
	ck_assert(line("flexslurm_reclaim_duration_seconds_count 1"));
	ck_assert(line("flexslurm_reclaim_duration_seconds_bucket{le=\"20\"} 0"));
	ck_assert(line("flexslurm_reclaim_duration_seconds_bucket{le=\"30\"} 1"));
	ck_assert(line("flexslurm_slices_borrowed{Hostname=\"n1\",device=\"0\"} 0"));
	ck_assert(rig.last_slices == (std::vector<SliceHolders>{{0, lender, 0}}));
}
END_TEST

// Node metrics and DCGM files off (the default): the answers are what an
// agent of the version before them reads.
START_TEST(answers_without_slice_holders_by_default)
{
	Rig rig;
	rig.slice_holders = false;
	rig.make();
	rig.lend();
	rig.run(5);
	ck_assert(has(rig.status(), "n1 0 0 lent JobId=100 JobId=200"));
	ck_assert(rig.last_slices.empty());
}
END_TEST

START_TEST(a_borrower_without_checkpoint_or_requeue)
{
	{
		Rig rig;
		rig.ctl.jobs[borrower].checkpoint = false;
		rig.lend();
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 20), "t+10: requeue 200"); // at once
		ck_assert_uint_eq(
		        count_logged("JobId=200 asked for no checkpoint signal (--signal): requeued at once"),
		        1);
	}
	{
		Rig rig;
		rig.ctl.requeue_fails = true;
		rig.lend();
		rig.ctl.jobs[borrower].start_time = rig.wall + 9; // too young for a signal
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 40), "t+30: requeue 200, kill 200");
		ck_assert_uint_eq(
		        count_logged(
		                "JobId=200 started 1s ago: no checkpoint signal, requeued at the deadline"),
		        1);
		const std::string why = "Requested operation is presently disabled";
		ck_assert_uint_eq(count_logged("error: lending: cannot requeue borrower JobId=200: " + why +
		                               "; killing it"),
		                  1);
	}
}
END_TEST

START_TEST(state_written_only_when_it_changes)
{
	Rig rig;
	rig.run(1);
	const std::string first = rig.state();
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], 1);
	rig.run(20); // the lender's idle timer runs (reports from 505): quiet, saved within 30 s
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], 1);
	ck_assert_str(rig.state(), first);
	rig.run(10);
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], 2);
	ck_assert(has(rig.state(), " idle=" + std::to_string(rig.wall - 26) + " "));
	rig.lend();
	rig.run(1); // the loan: an event, saved at once
	const int lent = rig.writes["flexslurm_lending.state"];
	ck_assert_int_eq(lent, 3);
	const int status_at_loan = rig.writes["flexslurm_lending.status"];
	ck_assert(has(rig.state(), "\ntotal 100 1 0\n"));
	rig.run(28); // only the totals grow while lent: saved every 30 s
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], lent);
	ck_assert_uint_eq(rig.server->state_writes(), static_cast<uint64_t>(lent));
	rig.run(2);
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], lent + 1);
	ck_assert(has(rig.state(), "\ntotal 100 31 0\n"));
	// The status file follows every 10 s.
	ck_assert_int_eq(rig.writes["flexslurm_lending.status"], status_at_loan + 3);
	// The file's times are wall clock times.
	ck_assert(has(rig.state(), "\nsaved " + std::to_string(rig.wall) + "\n"));
}
END_TEST

// In slurmctld a second thread formats and writes the files; what is
// pending when the server stops is written.
START_TEST(the_writer_thread_writes_the_files)
{
	Rig rig;
	rig.server->start_writer();
	rig.lend();
	rig.run(1);
	rig.server.reset(); // joins the writer after what is pending
	ck_assert(has(rig.state(), " state=lent owner=100 borrower=200 "));
	ck_assert(has(rig.status(), "n1 0 0 lent JobId=100 JobId=200 "));
}
END_TEST

START_TEST(admin_status_reclaim_and_refusals)
{
	Rig rig;
	rig.lend();
	const std::string status = rig.admin(status_request(), 0);
	ck_assert(has(status, "NODE SLICE DEVICE STATE OWNER BORROWER SINCE\n"));
	ck_assert(has(status, "n1 0 0 lent JobId=100 JobId=200 "));
	ck_assert(has(rig.admin(status_request(), 450), "RECLAIMS IN FLIGHT\n"));
	ck_assert_str(rig.admin(reclaim_request(999), 0), "error: JobId=999 borrows nothing\n");
	ck_assert_str(rig.admin(reclaim_request(borrower), 450), "reclaim of JobId=200 started\n");
	ck_assert_str(until_called(rig, 3), "t+1: signal 200");
	ck_assert(has(rig.admin(status_request(), 0), "JobId=200 admin started"));

	// Anyone else is refused, and logged without flooding the log.
	for (int i = 0; i < 100; ++i)
		ck_assert_str(rig.admin(status_request(), 1000, "10.9.9.9"),
		              "error: only root and SlurmUser may use flexslurm-lending\n");
	ck_assert_str(rig.admin(reclaim_request(borrower), 1000, "10.8.8.8"),
	              "error: only root and SlurmUser may use flexslurm-lending\n");
	ck_assert_uint_eq(count_logged("admin request from 10.9.9.9 with uid 1000 refused"), 1);
	ck_assert_uint_eq(count_logged("admin request from 10.8.8.8 with uid 1000 refused"), 1);
	rig.run(59);
	ck_assert_uint_eq(count_logged("more admin request(s) from 10.9.9.9"), 0);
	rig.run(1); // a minute later: the count
	ck_assert_uint_eq(count_logged("99 more admin request(s) from 10.9.9.9 refused in the last 60 s"), 1);
	ck_assert_uint_eq(count_logged("more admin request(s) from 10.8.8.8"), 0); // one was logged
	rig.admin(status_request(), 1000, "10.9.9.9"); // a new minute: logged again
	ck_assert_uint_eq(count_logged("admin request from 10.9.9.9 with uid 1000 refused"), 2);
}
END_TEST

START_TEST(status_answer_larger_than_a_credential_says_truncated)
{
	Rig rig;
	rig.lend();
	ck_assert_str(rig.admin(reclaim_request(borrower), 0), "reclaim of JobId=200 started\n");
	// 40 nodes x 64 slices, all owned: the status is well over one credential.
	for (int n = 2; n <= 41; ++n) {
		const std::string node = "big-node-" + std::to_string(n);
		rig.ctl.add_node(node, std::vector<int>(64, 0));
		for (int u = 0; u < 64; ++u)
			rig.ctl.own(node, u, static_cast<uint32_t>(1000 + n));
	}
	rig.run(2);
	const std::string file = rig.status();
	ck_assert_uint_gt(file.size(), max_message_bytes);
	const std::string answer = rig.admin(status_request(), 0);
	ck_assert_uint_le(answer.size(), LendingServer::max_status_answer_bytes);
	ck_assert(answer.rfind("NODE SLICE DEVICE STATE OWNER BORROWER SINCE\n", 0) == 0);
	ck_assert(has(answer, "\ntruncated: "));
	ck_assert(has(answer, " lines shown (an answer is at most 45056 bytes); the whole status is in " +
	                              rig.dir + "/flexslurm_lending.status\n"));
	// The slices that fit, then every reclaim in flight and the newest history.
	const std::string slices = answer.substr(0, answer.find("RECLAIMS IN FLIGHT\n"));
	ck_assert(file.rfind(slices, 0) == 0);
	ck_assert_uint_gt(slices.size(), 30000);
	ck_assert(has(answer, "RECLAIMS IN FLIGHT\nJobId=200 admin started "));
	ck_assert_msg(
	        has(answer, "reclaim JobId=200 from n1 slice 0 of JobId=100: admin, grace 20 s\ntruncated: "),
	        "%s", answer.substr(answer.size() - 700).c_str());
	// An answer that cannot be sealed still says so.
	rig.seal_limit = 10;
	ck_assert_str(rig.admin(status_request(), 0), "");
	ck_assert_uint_eq(count_logged("cannot seal the answer to an admin request from 10.9.9.9"), 1);
}
END_TEST

START_TEST(a_restart_restores_reclaims_in_flight)
{
	std::string dir;
	long wall_at_save = 0;
	{
		Rig rig;
		dir = rig.dir;
		rig.lend();
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 20), "t+10: signal 200");
		rig.run(5); // 15 s of grace left
		wall_at_save = rig.wall;
	}
	// The controller restarts on another boot: a steady clock far from the
	// old one, the wall clock 5 s later.
	Rig rig(dir);
	rig.steady = 20;
	rig.wall = wall_at_save + 5;
	rig.ctl.hold("n1", 0, borrower);
	rig.ctl.jobs[borrower].start_time = rig.wall - 200;
	rig.lender_busy = 70;
	rig.run(1);
	ck_assert_uint_eq(count_logged("state restored from " + dir +
	                               "/flexslurm_lending.state (1 reclaim(s) in flight)"),
	                  1);
	ck_assert_uint_eq(rig.server->active_reclaims(), 1);
	ck_assert_str(rig.ctl.take_calls(), "resolve h-n1"); // no second signal
	// The deadline keeps its wall clock time: 15 - 5 - 1 s left.
	ck_assert_str(until_called(rig, 20), "t+9: requeue 200");
}
END_TEST

START_TEST(a_state_larger_than_16_mib_restores)
{
	const std::string dir = make_temp_dir();
	{
		std::string text = "flexslurm-lending 1\nsaved 1700000000\n";
		for (int n = 0; n < 1600 && text.size() <= (17u << 20); ++n)
			for (int u = 0; u < 64; ++u)
				text += "slice node-with-a-long-name-" + std::to_string(n) + " " +
				        std::to_string(u) + " " + std::to_string(u / 8) +
				        " state=owned-busy owner=123456 borrower=0 lends=1 gone=0 overdue=0 streak=0 end=1700003600 idle=- lent=0 cool=- reason=- deadline=-\n";
		text += "reclaim 200 reason=admin t0=1699999990 deadline=1700000010 signalled=1 requeued=- nodes=n1\n";
		text += "end\n";
		ck_assert_uint_gt(text.size(), 16u << 20);
		std::ofstream(dir + "/flexslurm_lending.state") << text;
	}
	Rig rig(dir);
	rig.wall = 1700000001;
	rig.ctl.jobs[borrower].running = false; // its record: requeued, still completing
	rig.ctl.hold("n1", 0, borrower, true);
	rig.run(1);
	ck_assert_uint_eq(count_logged("(1 reclaim(s) in flight)"), 1);
	ck_assert_uint_eq(rig.server->active_reclaims(), 1);

	// A line over the bound is refused, with the reason.
	std::ofstream(dir + "/flexslurm_lending.state")
	        << "flexslurm-lending 1\nhistory " << std::string(LendingServer::max_state_line_bytes, 'x')
	        << "\nend\n";
	Rig again(dir);
	again.run(1);
	ck_assert_uint_eq(count_logged("a line longer than 1048576 bytes; starting with no loan history"), 1);
	ck_assert_uint_eq(again.server->active_reclaims(), 0);
}
END_TEST

// Totals go with the job records, not with which nodes are registered: a
// node that never registers must not keep them forever.

Suite *lending_server_suite()
{
	Suite *s = suite_create("lending_server");
	TCase *tc = tcase_create("lending_server");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, report_loan_reclaim_grace_and_hard_stop);
	tcase_add_test(tc, a_borrower_without_checkpoint_or_requeue);
	tcase_add_test(tc, metrics_file_counts_a_loan_and_its_reclaim);
	tcase_add_test(tc, answers_without_slice_holders_by_default);
	tcase_add_test(tc, state_written_only_when_it_changes);
	tcase_add_test(tc, the_writer_thread_writes_the_files);
	tcase_add_test(tc, admin_status_reclaim_and_refusals);
	tcase_add_test(tc, status_answer_larger_than_a_credential_says_truncated);
	tcase_add_test(tc, a_restart_restores_reclaims_in_flight);
	tcase_add_test(tc, a_state_larger_than_16_mib_restores);
	suite_add_tcase(s, tc);
	return s;
}
