// SPDX-License-Identifier: GPL-2.0-or-later
// The processes of jobs in a fake /proc: slurmstepd told apart, the
// processes of a job, the hard-stop killer, MPS servers named by their job.
#include "telemetry_fakes.hpp"

#include "core/io/process_control.hpp"
#include "core/model/limits.hpp"

#include <signal.h>
#include <sys/wait.h>

#include <optional>

using namespace flexslurm;

// ---- slurmstepd, the processes of a job, the hard stop ----

START_TEST(slurmstepd_is_told_by_its_executable_and_root)
{
	TempDir proc;
	const std::string cg = v1_cgroup(42);
	fake_stepd(proc.path(), 101, cg);
	fake_process(proc.path(), 102, cg, "slurmstepd");                        // a user's renamed process
	fake_process(proc.path(), 103, cg, "slurmstepd", 1000, stepd_path);      // a user running the file
	fake_process(proc.path(), 104, cg, "slurmstepd", 0, "/usr/bin/python3"); // root's, another file
	fake_process(proc.path(), 105, cg, "slurmstepd", 0, stepd_path + " (deleted)"); // after an upgrade
	fake_process(proc.path(), 106, cg, "slurmstepd", 0, "");                        // exe unreadable
	write_file(proc.path() + "/107/status", "Uid:\t0\t0\t0\t1000\n");               // one uid not root's
	ck_assert_int_eq(symlink(stepd_path.c_str(), (proc.path() + "/107/exe").c_str()), 0);
	const SlurmMarks m = test_marks();
	ck_assert(is_slurmstepd(proc.path(), 101, m));
	ck_assert(!is_slurmstepd(proc.path(), 102, m));
	ck_assert(!is_slurmstepd(proc.path(), 103, m));
	ck_assert(!is_slurmstepd(proc.path(), 104, m));
	ck_assert(is_slurmstepd(proc.path(), 105, m));
	ck_assert(!is_slurmstepd(proc.path(), 106, m));
	ck_assert(!is_slurmstepd(proc.path(), 107, m));
	ck_assert(!is_slurmstepd(proc.path(), 108, m)); // no such process
	// slurmstepd's path not known: root's process named slurmstepd
	SlurmMarks unknown = m;
	unknown.stepd_path.clear();
	ck_assert(is_slurmstepd(proc.path(), 101, unknown));
	ck_assert(!is_slurmstepd(proc.path(), 102, unknown));
	ck_assert(is_slurmstepd(proc.path(), 104, unknown));
}

START_TEST(pids_of_job_scans_a_fake_proc)
{
	record_log();
	TempDir proc;
	fake_process(proc.path(), 100, v1_cgroup(42), "python");
	fake_stepd(proc.path(), 101, "0::/system.slice/slurmstepd.scope/job_42/step_0/slurm\n");
	fake_process(proc.path(), 102, "0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0\n",
	             "a.out");
	fake_process(proc.path(), 103, v1_cgroup(7), "python");
	fake_process(proc.path(), 104, "0::/user.slice/user-0.slice\n", "bash");
	fake_process(proc.path(), 105, v1_cgroup(42), "");           // no comm: gone, or cannot tell
	fake_process(proc.path(), 106, v1_cgroup(42), "slurmstepd"); // a borrower naming itself slurmstepd
	fake_process(
	        proc.path(), 107,
	        "0::/user.slice/user-1000.slice/user@1000.service/app.slice/x-slurmstepd.scope/job_42/t\n",
	        "python"); // a user's own cgroup named like Slurm's: not job 42's
	fake_process(proc.path(), getpid(), v1_cgroup(42), "unit_tests");
	write_file(proc.path() + "/self/cgroup", v1_cgroup(42));
	write_file(proc.path() + "/7x/cgroup", v1_cgroup(42));
	const SlurmMarks m = test_marks();
	auto pids = pids_of_job(42, proc.path(), m);
	ck_assert_uint_eq(pids.size(), 3);
	ck_assert_int_eq(pids[0], 100);
	ck_assert_int_eq(pids[1], 102);
	ck_assert_int_eq(pids[2], 106);
	ck_assert_uint_eq(pids_of_job(7, proc.path(), m).size(), 1);
	ck_assert(pids_of_job(8, proc.path(), m).empty());
	ck_assert(pids_of_job(42, "/nonexistent/proc", m).empty());
	ck_assert_str(logged(LogLevel::Error).at(0),
	              "telemetry: cannot list /nonexistent/proc: No such file or directory");
}
END_TEST

START_TEST(kill_job_processes_kills_only_the_jobs_processes)
{
	record_log();
	auto child = []() {
		const pid_t pid = fork();
		if (pid == 0) {
			alarm(30); // never outlive a failed test for long
			for (;;)
				pause();
		}
		ck_assert_int_gt(pid, 0);
		return pid;
	};
	const pid_t worker1 = child(), worker2 = child(), stepd = child(), other = child(), forger = child();
	TempDir proc;
	fake_process(proc.path(), worker1, v1_cgroup(77), "python");
	fake_process(proc.path(), worker2, v1_cgroup(77), "python");
	fake_stepd(proc.path(), stepd, v1_cgroup(77));
	fake_process(proc.path(), other, v1_cgroup(78), "python");
	fake_process(proc.path(), forger, v1_cgroup(77), "slurmstepd"); // escapes no hard stop
	fake_process(proc.path(), 999999999, v1_cgroup(77), "ghost");   // no such process

	ck_assert_int_eq(kill_job_processes(77, proc.path(), test_marks()), 3);
	ck_assert_str(logged(LogLevel::Info).at(0), "telemetry: killed 3 processes of job 77");
	for (pid_t pid : {worker1, worker2, forger}) {
		int status = 0;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	for (pid_t pid : {stepd, other}) {
		int status = 0;
		ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0); // still running
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
}
END_TEST

// Issue 13 item 12: a stop ordered for job 77 before the controller started
// over must not kill a later job 77 (slurmctld -c): the job's slurmstepd
// tells which one is running.
START_TEST(kill_job_processes_spares_a_later_job_with_the_same_id)
{
	record_log();
	const pid_t worker = fork();
	if (worker == 0) {
		alarm(30);
		for (;;)
			pause();
	}
	ck_assert_int_gt(worker, 0);
	TempDir proc;
	fake_process(proc.path(), worker, v1_cgroup(77), "python");
	fake_stepd(proc.path(), 4242, v1_cgroup(77));
	// starttime (field 22) 5000 ticks; a comm with spaces and ')' as a user may name it
	write_file(proc.path() + "/4242/stat",
	           "4242 (slurm) stepd) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5000 0 0\n");
	ck_assert(process_start_ticks(proc.path(), 4242) == std::optional<uint64_t>(5000));
	ck_assert(!process_start_ticks(proc.path(), 999999999));
	// ordered before the job started: another job 77, left alone
	ck_assert_int_eq(kill_job_processes(77, proc.path(), test_marks(), 4000), 0);
	ck_assert_str(
	        logged(LogLevel::Info).at(0),
	        "telemetry: job 77 started after its stop was ordered: another job with the same id, left alone");
	int status = 0;
	ck_assert_int_eq(waitpid(worker, &status, WNOHANG), 0);
	// ordered while it ran: killed
	ck_assert_int_eq(kill_job_processes(77, proc.path(), test_marks(), 6000), 1);
	ck_assert_int_eq(waitpid(worker, &status, 0), worker);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert_uint_gt(boot_ticks_now(), 0);
}

// ---- MPS servers ----

START_TEST(mps_server_is_its_jobs)
{
	TempDir proc;
	using namespace std::string_literals;
	const std::string env = "PATH=/usr/bin\0CUDA_MPS_PIPE_DIRECTORY=/run/flexslurm/jobs/42/mps-pipe\0"s;
	fake_mps(proc.path(), 500, "nvidia-cuda-mps-control", 1, 0, env);
	fake_mps(proc.path(), 501, "nvidia-cuda-mps-server", 500, 1000, "");
	ck_assert(job_of_mps_server(proc.path(), 501) == std::optional<uint32_t>(42));
	ck_assert(!job_of_mps_server(proc.path(), 500)); // the daemon itself runs no kernels
	// A user's own control daemon (not root) names no job, whatever its pipe directory.
	fake_mps(proc.path(), 600, "nvidia-cuda-mps-control", 1, 1000, env);
	fake_mps(proc.path(), 601, "nvidia-cuda-mps-server", 600, 1000, "");
	ck_assert(!job_of_mps_server(proc.path(), 601));
	// Root's parent that is not the MPS control daemon; a pipe directory of another shape.
	fake_mps(proc.path(), 700, "python3", 1, 0, env);
	fake_mps(proc.path(), 701, "nvidia-cuda-mps-server", 700, 1000, "");
	ck_assert(!job_of_mps_server(proc.path(), 701));
	fake_mps(proc.path(), 800, "nvidia-cuda-mps-control", 1, 0, "CUDA_MPS_PIPE_DIRECTORY=/tmp/mps\0"s);
	fake_mps(proc.path(), 801, "nvidia-cuda-mps-server", 800, 1000, "");
	ck_assert(!job_of_mps_server(proc.path(), 801));
	// A process that is not an MPS server under root's daemon.
	fake_mps(proc.path(), 502, "python3", 500, 1000, "");
	ck_assert(!job_of_mps_server(proc.path(), 502));
	ck_assert(job_of_mps_pipe("/x/7/mps-pipe/") == std::optional<uint32_t>(7));
	ck_assert(!job_of_mps_pipe("/x/0/mps-pipe"));
	ck_assert(!job_of_mps_pipe("/x/y7/mps-pipe"));
	ck_assert(!job_of_mps_pipe("7/mps-pipe"));
}
END_TEST

Suite *process_control_suite()
{
	Suite *s = suite_create("process_control");
	TCase *tc = tcase_create("process_control");
	tcase_add_test(tc, slurmstepd_is_told_by_its_executable_and_root);
	tcase_add_test(tc, pids_of_job_scans_a_fake_proc);
	tcase_add_test(tc, kill_job_processes_kills_only_the_jobs_processes);
	tcase_add_test(tc, kill_job_processes_spares_a_later_job_with_the_same_id);
	tcase_add_test(tc, mps_server_is_its_jobs);
	suite_add_tcase(s, tc);
	return s;
}
