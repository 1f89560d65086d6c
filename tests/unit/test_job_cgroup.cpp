// SPDX-License-Identifier: GPL-2.0-or-later
// Which Slurm job a process belongs to, from its cgroup paths, and what
// slurmd's own cgroup teaches about where Slurm puts them.
#include "telemetry_fakes.hpp"

using namespace flexslurm;

// ---- jobs from cgroups ----

START_TEST(job_of_cgroup_text_reads_slurm_paths)
{
	ck_assert_uint_eq(job_of_cgroup_text(v1_cgroup(42)).value_or(0), 42);
	ck_assert_uint_eq(job_of_cgroup_text("4:cpuset:/slurm_n1/uid_0/job_42/step_batch\n").value_or(0), 42);
	ck_assert_uint_eq(job_of_cgroup_text("4:cpuset,cpuacct:/slurm/uid_0/job_42\n").value_or(0), 42);
	ck_assert_uint_eq(job_of_cgroup_text("0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0\n")
	                          .value_or(0),
	                  42);
	ck_assert_uint_eq(
	        job_of_cgroup_text("0::/system.slice/n1_slurmstepd.scope/job_7/step_extern/user/task_special")
	                .value_or(0),
	        7);
	// hierarchies outside Slurm's beside one inside
	ck_assert_uint_eq(
	        job_of_cgroup_text("2:cpu:/\n5:devices:/slurm/uid_1/job_9/step_0\n6:pids:/").value_or(0), 9);
	// this node's layouts (multiple slurmd: the node's name in them)
	const SlurmMarks n1 = test_marks("n1");
	ck_assert_uint_eq(job_of_cgroup_text("4:memory:/slurm_n1/uid_0/job_3/step_0\n", n1).value_or(0), 3);
	ck_assert_uint_eq(
	        job_of_cgroup_text("0::/system.slice/n1_slurmstepd.scope/job_3/step_0\n", n1).value_or(0), 3);
	ck_assert(!job_of_cgroup_text("4:memory:/slurm_n2/uid_0/job_3/step_0\n", n1));
	ck_assert(!job_of_cgroup_text("0::/system.slice/n2_slurmstepd.scope/job_3/step_0\n", n1));
	// an admin's own CgroupPrepend, no trailing newline
	SlurmMarks batch = test_marks();
	batch.v1_roots.push_back("/batch");
	ck_assert(!job_of_cgroup_text("3:memory:/batch/uid_5/job_4294967295"));
	ck_assert_uint_eq(job_of_cgroup_text("3:memory:/batch/uid_5/job_4294967295", batch).value_or(0),
	                  4294967295u);
}
END_TEST

START_TEST(slurmd_cgroup_teaches_the_v2_scope)
{
	// slurmd in a container (26.05 prefixes the init process's cgroup) and with CgroupSlice=batch.slice
	SlurmMarks m = test_marks("n1");
	const std::string in_container =
	        "0::/docker.slice/docker-1f.scope/system.slice/slurmstepd.scope/job_3/step_0\n";
	ck_assert(!job_of_cgroup_text(in_container, m));
	m.learn_from_slurmd_cgroup("0::/docker.slice/docker-1f.scope/system.slice/slurmstepd.scope/slurmd\n");
	ck_assert_uint_eq(job_of_cgroup_text(in_container, m).value_or(0), 3);
	m.learn_from_slurmd_cgroup("0::/batch.slice/n1_slurmstepd.scope/slurmd\n");
	ck_assert_uint_eq(
	        job_of_cgroup_text("0::/batch.slice/n1_slurmstepd.scope/job_4/step_batch\n", m).value_or(0),
	        4);
	// a user's scope under the learned one's name elsewhere: still not Slurm's
	ck_assert(!job_of_cgroup_text(
	        "0::/user.slice/docker.slice/docker-1f.scope/system.slice/slurmstepd.scope/job_3\n", m));
	// nothing to learn: slurmd not in a slurmstepd scope, v1, or a pattern
	const size_t known = m.v2_scopes.size();
	m.learn_from_slurmd_cgroup("0::/system.slice/slurmd.service\n");
	m.learn_from_slurmd_cgroup("4:memory:/system.slice/slurmstepd.scope/slurmd\n");
	m.learn_from_slurmd_cgroup("0::/system.slice/*slurmstepd.scope/slurmd\n");
	m.learn_from_slurmd_cgroup("0::/slurmd\n");
	ck_assert_uint_eq(m.v2_scopes.size(), known);
	// and from a file
	TempDir proc;
	write_file(proc.path() + "/self/cgroup", "0::/batch.slice/slurmstepd.scope/slurmd\n");
	const SlurmMarks from_file = SlurmMarks::for_this_slurmd("n1", stepd_path, proc.path());
	ck_assert_uint_eq(
	        job_of_cgroup_text("0::/batch.slice/slurmstepd.scope/job_8\n", from_file).value_or(0), 8);
}
END_TEST

START_TEST(job_of_cgroup_text_rejects_everything_else)
{
	ck_assert(!job_of_cgroup_text(""));
	ck_assert(!job_of_cgroup_text("0::/user.slice/user-1000.slice/session-3.scope\n"));
	ck_assert(!job_of_cgroup_text("0::/system.slice/slurmstepd.scope/system\n")); // slurmstepd itself
	ck_assert(!job_of_cgroup_text("0::/system.slice/slurmstepd.scope/slurmd\n"));
	ck_assert(!job_of_cgroup_text("0::/user.slice/job_5/x\n")); // not under Slurm
	ck_assert(!job_of_cgroup_text("4:memory:/slurm/job_5\n"));  // v1 without uid_
	ck_assert(!job_of_cgroup_text("4:memory:/slurm/uid_x/job_5\n"));
	ck_assert(!job_of_cgroup_text("4:memory:/slurm/uid_0/job_0/step_0\n"));
	ck_assert(!job_of_cgroup_text("4:memory:/slurm/uid_0/job_4294967296\n"));
	ck_assert(!job_of_cgroup_text("4:memory:/slurm/uid_0/job_12x\n"));
	ck_assert(!job_of_cgroup_text("4:memory:/slurm/uid_0/step_0/job_12\n"));
	ck_assert(!job_of_cgroup_text("/slurm/uid_0/job_12\n")); // not a cgroup line
	// two hierarchies naming different jobs: no answer rather than a guess
	ck_assert(!job_of_cgroup_text(
	        "4:memory:/slurm/uid_0/job_1/step_0\n5:devices:/slurm/uid_0/job_2/step_0\n"));
}
END_TEST

// What a user can make: cgroups in a tree delegated to them (systemd's user
// manager, v2 and v1 name=systemd), named like Slurm's.
START_TEST(job_of_cgroup_text_rejects_user_made_cgroups)
{
	for (const SlurmMarks &m : {test_marks(), test_marks("n1")}) {
		const std::string user = "/user.slice/user-1000.slice/user@1000.service";
		ck_assert(!job_of_cgroup_text("0::" + user + "/app.slice/x-slurmstepd.scope/job_5/step_0\n",
		                              m));
		ck_assert(!job_of_cgroup_text("0::" + user + "/app.slice/n1_slurmstepd.scope/job_5\n", m));
		ck_assert(!job_of_cgroup_text("0::" + user + "/system.slice/slurmstepd.scope/job_5/step_0\n",
		                              m));
		ck_assert(!job_of_cgroup_text("0::/system.slice/x-slurmstepd.scope/job_5\n", m));
		ck_assert(!job_of_cgroup_text("0::/system.slice/slurmstepd.scope.d/job_5\n", m));
		ck_assert(!job_of_cgroup_text("0::/x/system.slice/slurmstepd.scope/job_5\n", m));
		ck_assert(!job_of_cgroup_text("1:name=systemd:/slurm/uid_1000/job_5/step_0\n", m));
		ck_assert(!job_of_cgroup_text("1:name=systemd:" + user + "/slurm/uid_1000/job_5\n", m));
		ck_assert(!job_of_cgroup_text("4:memory:" + user + "/slurm/uid_1000/job_5\n", m));
		ck_assert(!job_of_cgroup_text("4:memory:/user.slice/slurm_n1/uid_1000/job_5\n", m));
		// each layout only on its own kind of line
		ck_assert(!job_of_cgroup_text("0::/slurm/uid_0/job_5\n", m));
		ck_assert(!job_of_cgroup_text("4:memory:/system.slice/slurmstepd.scope/job_5\n", m));
		// a forged line beside Slurm's own does not change the answer
		ck_assert_uint_eq(job_of_cgroup_text("1:name=systemd:/slurm/uid_1000/job_5\n"
		                                     "4:memory:/slurm/uid_1000/job_9/step_0\n",
		                                     m)
		                          .value_or(0),
		                  9);
	}
}
END_TEST

// /proc/<pid>/cgroup as Slurm 22.05's cgroup/v2 (IgnoreSystemd=yes, multiple
// slurmd) leaves it on a host that also mounts v1 hierarchies (the
// integration tests' --cgroup v2 leg): the job is named by the unified line
// only; the v1 lines are the ones slurmd was started in.
START_TEST(job_of_cgroup_text_reads_slurm_22_05_v2_on_a_hybrid_host)
{
	const std::string v1_lines =
	        "9:name=systemd:/\n8:pids:/\n5:devices:/\n4:memory:/process_api/3809\n1:cpu:/\n";
	ck_assert_uint_eq(
	        job_of_cgroup_text(v1_lines +
	                           "0::/system.slice/vl1_slurmstepd.scope/job_12/step_batch/user/task_0\n")
	                .value_or(0),
	        12);
	// slurmstepd of the step (told apart by is_job_process, not by its cgroup)
	ck_assert_uint_eq(
	        job_of_cgroup_text(v1_lines +
	                           "0::/system.slice/vl1_slurmstepd.scope/job_12/step_batch/slurm\n")
	                .value_or(0),
	        12);
	// slurmd and a slurmstepd parked before its job cgroup exists
	ck_assert(!job_of_cgroup_text(v1_lines + "0::/system.slice/vl1_slurmstepd.scope/slurmd\n"));
	ck_assert(!job_of_cgroup_text(v1_lines + "0::/system.slice/vl1_slurmstepd.scope/system\n"));
}

Suite *job_cgroup_suite()
{
	Suite *s = suite_create("job_cgroup");
	TCase *tc = tcase_create("job_cgroup");
	tcase_add_test(tc, job_of_cgroup_text_reads_slurm_paths);
	tcase_add_test(tc, job_of_cgroup_text_rejects_everything_else);
	tcase_add_test(tc, job_of_cgroup_text_rejects_user_made_cgroups);
	tcase_add_test(tc, slurmd_cgroup_teaches_the_v2_scope);
	tcase_add_test(tc, job_of_cgroup_text_reads_slurm_22_05_v2_on_a_hybrid_host);
	suite_add_tcase(s, tc);
	return s;
}
