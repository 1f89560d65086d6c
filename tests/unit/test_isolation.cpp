// SPDX-License-Identifier: GPL-2.0-or-later
// Isolation at launch: which nodes a job keeps, the plugstack arguments,
// and the private device directory itself (in a child, as root).
#include "suites.hpp"
#include "slice_env_fixture.hpp"

#include "core/io/command.hpp"
#include "core/io/isolation.hpp"
#include "core/io/job_state.hpp"
#include "core/model/limits.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

using namespace flexslurm;

// The per-job directory is root's, made without following links: a link
// planted where it goes is removed, its target untouched.
START_TEST(job_state_is_root_owned_and_follows_no_link)
{
	if (geteuid() != 0)
		return; // chown needs root; CI runs as root
	char tmpl[] = "/tmp/flexslurm-jobs-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	const std::string top = tmpl;
	chmod(top.c_str(), 0755);
	const std::string target = top + "-target";
	close(open(target.c_str(), O_CREAT | O_WRONLY, 0600));
	const JobPaths p = job_paths(top, 9);
	ck_assert_int_eq(mkdir(p.dir.c_str(), 0777), 0);
	ck_assert_int_eq(symlink(target.c_str(), p.mps_log.c_str()), 0);
	ck_assert_int_eq(symlink(target.c_str(), p.limits.c_str()), 0);
	std::string note;
	auto r = create_job_state(top, p, {{9, 65534, {}}, "X=1\n", true}, 65534, 65534, note);
	ck_assert_msg(static_cast<bool>(r), "%s", r.error().c_str());
	ck_assert_str(note, "removed what was already at " + p.dir);
	struct stat st {
	};
	ck_assert_int_eq(stat(target.c_str(), &st), 0);
	ck_assert_uint_eq(st.st_uid, 0);
	ck_assert_uint_eq(st.st_size, 0);
	ck_assert_int_eq(lstat(p.mps_log.c_str(), &st), 0);
	ck_assert(S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 0777) == 0700);
	ck_assert_int_eq(lstat(p.mps_pipe.c_str(), &st), 0);
	ck_assert(S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 0777) == 0755);
	ck_assert_int_eq(lstat(p.preload_cache.c_str(), &st), 0);
	ck_assert(S_ISREG(st.st_mode) && st.st_uid == 65534 && (st.st_mode & 0777) == 0600);
	ck_assert_str(*read_root_file(p.limits, 100), "flexslurm-limits 1\njob 9 uid 65534\n");
	ck_assert(!read_root_file(p.preload_cache, 100)); // the user's: not trusted
	ck_assert(!read_root_file(p.limits, 5));
	// the limits file's reader: the job's own, decoded
	auto mine = read_job_limits(p, 9, 65534);
	ck_assert_msg(static_cast<bool>(mine), "%s", mine.error().c_str());
	ck_assert(*mine == (JobLimits{9, 65534, {}}));
	ck_assert_str(read_job_limits(p, 10, 65534).error(), "the file is another job's");
	ck_assert_str(read_job_limits(p, 9, 0).error(), "the file is another job's");
	ck_assert_str(read_job_limits(job_paths(top, 11), 11, 0).error(),
	              "cannot open " + job_paths(top, 11).limits + ": No such file or directory");
	// a job_dir others may write is refused
	chmod(top.c_str(), 0777);
	ck_assert(!create_job_state(top, job_paths(top, 10), {{10, 0, {}}, "", false}, 0, 0, note));
	remove_job_state(p);
	ck_assert_int_ne(lstat(p.dir.c_str(), &st), 0);
	ck_assert_int_eq(stat(target.c_str(), &st), 0);
	rmdir(top.c_str());
	unlink(target.c_str());
}
END_TEST

START_TEST(commands_run_bounded)
{
	auto ok = run_command({"/bin/sh", "-c", "read a; [ \"$a\" = quit ] && [ \"$X\" = 1 ]"}, {"X=1"},
	                      "quit\n", 5000);
	ck_assert_msg(static_cast<bool>(ok), "%s", ok.error().c_str());
	ck_assert_int_eq(*ok, 0);
	ck_assert_int_eq(*run_command({"/bin/false"}, {}, "", 5000), 1);
	ck_assert_str(run_command({"/nonexistent/mps-control"}, {}, "", 5000).error(),
	              "cannot execute /nonexistent/mps-control");
	ck_assert_str(run_command({"/bin/sleep", "5"}, {}, "", 200).error(),
	              "/bin/sleep did not finish within 200 ms");
	// a program that does not read its input must not raise SIGPIPE here
	ck_assert_int_eq(*run_command({"/bin/true"}, {}, std::string(1 << 20, 'x'), 5000), 0);
}
END_TEST

// slurmstepd's spank prolog/epilog runs with stdin, stdout and stderr
// closed: the pipe then gets descriptor 0 and must still reach the program.
START_TEST(commands_get_their_input_when_the_caller_has_no_stdin)
{
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	auto ok = run_command({"/bin/sh", "-c", "read a; [ \"$a\" = quit ]"}, {}, "quit\n", 5000);
	ck_assert_msg(static_cast<bool>(ok), "%s", ok.error().c_str());
	ck_assert_int_eq(*ok, 0);
}
END_TEST

// As another user, the program keeps none of the caller's supplementary
// groups (slurmstepd's: root, disk, shadow ...) and none of its descriptors.
START_TEST(commands_drop_groups_and_descriptors)
{
	if (geteuid() != 0)
		return; // changing user needs root; CI runs as root
	const gid_t extra[] = {0, 6, 42};
	const bool had_groups = setgroups(3, extra) == 0;
	const int leaked = open("/dev/null", O_RDONLY); // no O_CLOEXEC: would be inherited
	ck_assert_int_ge(leaked, 3);
	const std::string check =
	        "[ \"$(id -G)\" = 65534 ] && [ ! -e /proc/$$/fd/" + std::to_string(leaked) + " ]";
	auto r = run_command({"/bin/sh", "-c", check}, {"PATH=/usr/bin:/bin"}, "", 5000, 65534, 65534);
	close(leaked);
	if (had_groups)
		setgroups(0, nullptr);
	ck_assert_msg(static_cast<bool>(r), "%s", r.error().c_str());
	ck_assert_int_eq(*r, 0);
}
END_TEST

// The private view, for real: a child unshares, and reports what it sees.
START_TEST(private_device_view_hides_only_the_hidden)
{
	if (geteuid() != 0)
		return; // mount namespaces need root; CI runs as root
	char tmpl[] = "/tmp/flexslurm-view-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	const std::string d = tmpl;
	ck_assert_int_eq(mkdir((d + "/dri").c_str(), 0755), 0);
	for (const char *f : {"/nvidia0", "/nvidia1", "/null", "/dri/renderD128", "/dri/renderD129"})
		close(open((d + f).c_str(), O_CREAT | O_WRONLY, 0644));
	ck_assert_int_eq(symlink("nvidia0", (d + "/link").c_str()), 0);

	const pid_t pid = fork();
	if (pid == 0) {
		auto r = enter_private_device_view(d, {d + "/nvidia1", d + "/dri/renderD129"});
		if (!r)
			_exit(10);
		auto exists = [&](const char *f) { return access((d + f).c_str(), F_OK) == 0; };
		const bool ok = exists("/nvidia0") && !exists("/nvidia1") && exists("/null") &&
		                exists("/dri/renderD128") && !exists("/dri/renderD129") && exists("/link");
		_exit(ok ? 0 : 11);
	}
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	// The host view is untouched.
	ck_assert_int_eq(access((d + "/nvidia1").c_str(), F_OK), 0);
	ck_assert_int_eq(access((d + "/dri/renderD129").c_str(), F_OK), 0);
	std::string cleanup = "rm -rf " + d;
	ck_assert_int_eq(std::system(cleanup.c_str()), 0);
}
END_TEST

START_TEST(cgroup_check_reports_openable_nodes)
{
	std::vector<std::string> unfenced;
	ck_assert(devices_cgroup_denies({"/nonexistent/nvidia9"}, unfenced));
	ck_assert(!devices_cgroup_denies({"/dev/null"}, unfenced)); // opens: not fenced
	ck_assert_str(paths(unfenced), "/dev/null");
}
END_TEST

Suite *isolation_suite()
{
	Suite *s = suite_create("isolation");
	TCase *tc = tcase_create("isolation");
	tcase_add_test(tc, commands_drop_groups_and_descriptors);
	tcase_add_test(tc, job_state_is_root_owned_and_follows_no_link);
	tcase_add_test(tc, commands_run_bounded);
	tcase_add_test(tc, commands_get_their_input_when_the_caller_has_no_stdin);
	tcase_add_test(tc, private_device_view_hides_only_the_hidden);
	tcase_add_test(tc, cgroup_check_reports_openable_nodes);
	suite_add_tcase(s, tc);
	return s;
}
