// Telemetry backends for idle reclaim: the admin's file format, NVML through
// a stub library behind the real dlopen() path, jobs from cgroup paths, and
// the processes of a job in a fake /proc.
#include "suites.hpp"

#include "core/util/log.hpp"
#include "core/model/limits.hpp"
#include "core/io/telemetry.hpp"

#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

using namespace flexslurm;

namespace
{

// ---- log capture ----

std::vector<std::pair<LogLevel, std::string>> &log_lines()
{
	static std::vector<std::pair<LogLevel, std::string>> lines;
	return lines;
}

void recording_sink(LogLevel level, const char *message)
{
	log_lines().emplace_back(level, message);
}

// Check runs each test in its own process, so the sink does not outlive it.
void record_log()
{
	log_lines().clear();
	set_log_sink(recording_sink);
}

std::vector<std::string> logged(LogLevel level)
{
	std::vector<std::string> out;
	for (const auto &[l, m] : log_lines())
		if (l == level)
			out.push_back(m);
	return out;
}

// ---- files ----

class TempDir
{
public:
	TempDir()
	{
		char tmpl[] = "/tmp/flexslurm-telemetry-XXXXXX";
		ck_assert_ptr_nonnull(mkdtemp(tmpl));
		path_ = tmpl;
	}
	TempDir(const TempDir &) = delete;
	TempDir &operator=(const TempDir &) = delete;
	~TempDir()
	{
		std::error_code ignored;
		std::filesystem::remove_all(path_, ignored);
	}
	const std::string &path() const { return path_; }

private:
	std::string path_;
};

void write_file(const std::string &path, const std::string &text)
{
	std::filesystem::create_directories(std::filesystem::path(path).parent_path());
	std::ofstream out(path, std::ios::trunc);
	out << text;
	ck_assert(static_cast<bool>(out));
}

// A fake /proc entry: its cgroup file, and a comm file unless comm is empty.
// Where the tests' slurmstepd runs from (what slurmd would say).
const std::string stepd_path = "/opt/flexslurm-test/sbin/slurmstepd";

SlurmMarks test_marks(const std::string &node = "")
{
	return SlurmMarks::for_node(node, stepd_path);
}

// proc/<pid>: cgroup, comm, status (all four uids `uid`), exe (a link to `exe`, if given).
void fake_process(const std::string &proc, long pid, const std::string &cgroup, const std::string &comm,
                  unsigned uid = 1000, const std::string &exe = "/usr/bin/python3")
{
	const std::string dir = proc + "/" + std::to_string(pid);
	write_file(dir + "/cgroup", cgroup);
	if (!comm.empty())
		write_file(dir + "/comm", comm + "\n");
	const std::string u = std::to_string(uid);
	write_file(dir + "/status", "Name:\t" + comm + "\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t" + u +
	                                    "\t" + u + "\t" + u + "\t" + u + "\nGid:\t0\t0\t0\t0\n");
	if (!exe.empty())
		ck_assert_int_eq(symlink(exe.c_str(), (dir + "/exe").c_str()), 0);
}

// A real slurmstepd as /proc shows it: root's, running slurmd's slurmstepd.
void fake_stepd(const std::string &proc, long pid, const std::string &cgroup)
{
	fake_process(proc, pid, cgroup, "slurmstepd", 0, stepd_path);
}

// A fake MPS process: exe link, status (PPid, Uid) and environ.
void fake_mps(const std::string &proc, long pid, const std::string &exe, long ppid, int uid,
              const std::string &environ_text)
{
	const std::string dir = proc + "/" + std::to_string(pid);
	write_file(dir + "/cgroup", "0::/system.slice/slurmd.service\n");
	write_file(dir + "/status", "Name:\t" + exe.substr(0, 15) + "\nPPid:\t" + std::to_string(ppid) +
	                                    "\nUid:\t" + std::to_string(uid) + "\t" + std::to_string(uid) +
	                                    "\t" + std::to_string(uid) + "\t" + std::to_string(uid) + "\n");
	write_file(dir + "/environ", environ_text);
	std::filesystem::create_symlink("/usr/local/nvidia/bin/" + exe, dir + "/exe");
}

std::string v1_cgroup(uint32_t job)
{
	return "12:devices:/slurm/uid_1000/job_" + std::to_string(job) +
	       "/step_0/task_0\n"
	       "11:memory:/slurm/uid_1000/job_" +
	       std::to_string(job) + "/step_0/task_0\n1:name=systemd:/system.slice/slurmd.service\n";
}

// Two NVIDIA devices (vendor indices 0 and 2: the middle one's node is
// missing) and one AMD device.
SliceLayout test_layout()
{
	auto l = SliceLayout::deserialize("flexslurm-layout 1\n"
	                                  "nvidia\t0\tt4\t/d/nvidia0\t195:0\t0\t4\t25\t0\t\n"
	                                  "nvidia\t2\tt4\t/d/nvidia2\t195:2\t4\t4\t25\t0\t\n"
	                                  "amd\t0\tmi210\t/d/dri/renderD128\t226:128\t8\t4\t25\t0\t\n");
	ck_assert_msg(static_cast<bool>(l), "%s", l.error().c_str());
	return *l;
}

std::vector<DeviceSample> sample_ok(TelemetryBackend &backend)
{
	auto s = backend.sample();
	ck_assert_msg(static_cast<bool>(s), "%s", s.error().c_str());
	return *s;
}

constexpr uint64_t MiB = 1ULL << 20;

} // namespace

// ---- file backend ----

START_TEST(file_backend_reads_each_device_file)
{
	record_log();
	TempDir dir;
	write_file(dir.path() + "/nvidia0", "# written by the site's collector\n"
	                                    "busy 3\n"
	                                    "\n"
	                                    "memory_mib 1024   # whole device\n");
	write_file(dir.path() + "/renderD128", "  busy\t55.5 # inline comment\r\n");
	// nvidia2 has no file: absent, quietly
	auto backend = make_file_backend(test_layout(), dir.path());
	ck_assert_str(std::string(backend->name()), "file");
	auto samples = sample_ok(*backend);
	ck_assert_uint_eq(samples.size(), 2);
	ck_assert_int_eq(samples[0].device, 0);
	ck_assert(samples[0].busy_percent == 3.0);
	ck_assert_uint_eq(samples[0].memory_used_bytes, 1024 * MiB);
	ck_assert(!samples[0].per_job);
	ck_assert(samples[0].jobs.empty());
	ck_assert_int_eq(samples[1].device, 2);
	ck_assert(samples[1].busy_percent == 55.5);
	ck_assert_uint_eq(samples[1].memory_used_bytes, 0);
	ck_assert(logged(LogLevel::Error).empty());
	const auto debug = logged(LogLevel::Debug);
	ck_assert_uint_eq(debug.size(), 1);
	ck_assert_str(debug[0],
	              "telemetry: " + dir.path() + "/nvidia2: no such file; the device counts as busy");
}
END_TEST

START_TEST(file_backend_job_lines_make_a_per_job_sample)
{
	record_log();
	TempDir dir;
	write_file(dir.path() + "/nvidia2", "busy 40\n"
	                                    "memory_mib 2048\n"
	                                    "job 12 busy 0 memory_mib 512\n"
	                                    "job 13 memory_mib 1536 busy 40\n"
	                                    "job 14\n");
	auto samples = sample_ok(*make_file_backend(test_layout(), dir.path()));
	ck_assert_uint_eq(samples.size(), 1);
	const DeviceSample &s = samples[0];
	ck_assert_int_eq(s.device, 1);
	ck_assert(s.per_job);
	ck_assert_uint_eq(s.jobs.size(), 3);
	ck_assert_uint_eq(s.jobs[0].job, 12);
	ck_assert(s.jobs[0].busy_percent == 0.0);
	ck_assert_uint_eq(s.jobs[0].memory_bytes, 512 * MiB);
	ck_assert_uint_eq(s.jobs[1].job, 13);
	ck_assert(s.jobs[1].busy_percent == 40.0);
	ck_assert_uint_eq(s.jobs[1].memory_bytes, 1536 * MiB);
	ck_assert_uint_eq(s.jobs[2].job, 14);
	ck_assert(s.jobs[2].busy_percent == 0.0 && s.jobs[2].memory_bytes == 0);
	ck_assert(logged(LogLevel::Error).empty());
}
END_TEST

START_TEST(file_backend_skips_malformed_files_with_one_error_each)
{
	std::string many_jobs = "busy 1\n";
	for (int j = 1; j <= 1025; ++j)
		many_jobs += "job " + std::to_string(j) + "\n";
	const std::pair<std::string, std::string> cases[] = {
	        {"busy abc\n", "line 1: busy \"abc\" is not a number"},
	        {"busy 3x\n", "line 1: busy \"3x\" is not a number"},
	        {"# load\nbusy 101\n", "line 2: busy \"101\" is out of range (0..100)"},
	        {"busy -1\n", "line 1: busy \"-1\" is out of range (0..100)"},
	        {"busy nan\n", "line 1: busy \"nan\" is not a finite number"},
	        {"busy 1e999\n", "line 1: busy \"1e999\" is not a finite number"},
	        {"busy 3\ntemperature 40\n",
	         "line 2: unknown keyword \"temperature\" (allowed: busy, memory_mib, job)"},
	        {"busy 3\nmemory_mib 1.5\n", "line 2: memory_mib \"1.5\" is not a whole number of MiB"},
	        {"busy 3\nmemory_mib 99999999999999999\n",
	         "line 2: memory_mib \"99999999999999999\" is too large"},
	        {"busy 3\nbusy 4\n", "line 2: busy given twice"},
	        {"busy\n", "line 1: busy needs a value"},
	        {"busy 3 4\n", "line 1: unexpected \"4\" after busy"},
	        {"memory_mib 5\n", "no \"busy\" line (it is required)"},
	        {"busy 1\njob 0\n", "line 2: job \"0\" is not a job id"},
	        {"busy 1\njob 4294967296\n", "line 2: job \"4294967296\" is not a job id"},
	        {"busy 1\njob 5 gpu 1\n", "line 2: unknown job field \"gpu\" (allowed: busy, memory_mib)"},
	        {"busy 1\njob 5 busy\n", "line 2: job 5: busy needs a value"},
	        {"busy 1\njob 5 busy 150\n", "line 2: busy \"150\" is out of range (0..100)"},
	        {"busy 1\njob 5\njob 5 busy 2\n", "line 3: job 5 listed twice"},
	        {many_jobs, "line 1026: more than 1024 job lines"},
	        {std::string(70 * 1024, '#'), "larger than 64 KiB"},
	};
	for (const auto &[text, problem] : cases) {
		record_log();
		TempDir dir;
		write_file(dir.path() + "/nvidia0", text);
		write_file(dir.path() + "/nvidia2", "busy 7\n");
		auto backend = make_file_backend(test_layout(), dir.path());
		auto samples = sample_ok(*backend);
		ck_assert_uint_eq(samples.size(), 1); // nvidia0 skipped, nvidia2 read
		ck_assert_int_eq(samples[0].device, 1);
		auto errors = logged(LogLevel::Error);
		ck_assert_uint_eq(errors.size(), 1);
		ck_assert_str(errors[0], "telemetry: " + dir.path() + "/nvidia0: " + problem +
		                                 "; the device counts as busy");
		// The same problem on the next sample: not another error line.
		samples = sample_ok(*backend);
		ck_assert_uint_eq(samples.size(), 1);
		ck_assert_uint_eq(logged(LogLevel::Error).size(), 1);
	}
}
END_TEST

START_TEST(file_backend_reports_a_fixed_file_again_when_it_breaks)
{
	record_log();
	TempDir dir;
	write_file(dir.path() + "/nvidia0", "busy x\n");
	auto backend = make_file_backend(test_layout(), dir.path());
	ck_assert(sample_ok(*backend).empty());
	write_file(dir.path() + "/nvidia0", "busy 5\n");
	ck_assert_uint_eq(sample_ok(*backend).size(), 1);
	write_file(dir.path() + "/nvidia0", "busy x\n");
	ck_assert(sample_ok(*backend).empty());
	ck_assert_uint_eq(logged(LogLevel::Error).size(), 2);
}
END_TEST

START_TEST(file_backend_without_its_directory_fails)
{
	auto backend = make_file_backend(test_layout(), "/nonexistent/flexslurm-telemetry");
	auto s = backend->sample();
	ck_assert(!s);
	ck_assert_str(s.error(), "telemetry: cannot read directory /nonexistent/flexslurm-telemetry: No such "
	                         "file or directory");
}
END_TEST

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
	        "0::/user.slice/docker.slice/docker-1f.scope/system.slice/slurmstepd.scope/"
	        "job_3\n",
	        m));
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
END_TEST

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
END_TEST

// ---- NVML through the stub ----

namespace
{

struct StubNvml {
	void *library = nullptr;
	void (*configure)(int) = nullptr;
	void (*fail_init)(int) = nullptr;
	void (*set_process_stride)(int) = nullptr;
	void (*set_device)(int, const char *, unsigned, unsigned long long, unsigned long long) = nullptr;
	void (*fail_device)(int, int) = nullptr;
	void (*add_process)(int, unsigned, unsigned long long, unsigned) = nullptr;
	unsigned long long (*last_seen)(int) = nullptr;
	int (*init_depth)() = nullptr;

	// The backend's dlopen() of the same path gets this same copy.
	StubNvml()
	{
		library = dlopen(STUB_NVML, RTLD_NOW | RTLD_LOCAL);
		ck_assert_msg(library != nullptr, "%s", dlerror());
		resolve(configure, "stub_nvml_configure");
		resolve(fail_init, "stub_nvml_fail_init");
		resolve(set_process_stride, "stub_nvml_set_process_stride");
		resolve(set_device, "stub_nvml_set_device");
		resolve(fail_device, "stub_nvml_fail_device");
		resolve(add_process, "stub_nvml_add_process");
		resolve(last_seen, "stub_nvml_last_seen");
		resolve(init_depth, "stub_nvml_init_depth");
	}
	StubNvml(const StubNvml &) = delete;
	StubNvml &operator=(const StubNvml &) = delete;
	~StubNvml() { dlclose(library); }

	template <class F>
	void resolve(F &f, const char *name)
	{
		f = reinterpret_cast<F>(dlsym(library, name));
		ck_assert_msg(f != nullptr, "stub lacks %s", name);
	}

	// NVML's index order is not PCI order: 0 is the last device on the bus.
	void three_devices()
	{
		configure(3);
		set_device(0, "0000:af:00.0", 70, 7 * MiB, 16384 * MiB);
		set_device(1, "0000:18:00.0", 10, 1 * MiB, 16384 * MiB);
		set_device(2, "0000:3b:00.0", 30, 3 * MiB, 16384 * MiB);
	}
};

std::unique_ptr<TelemetryBackend> nvml_backend(const std::string &proc_root = "/proc")
{
	auto backend = make_nvml_backend(test_layout(), STUB_NVML, proc_root);
	ck_assert_msg(static_cast<bool>(backend), "%s", backend.error().c_str());
	return std::move(*backend);
}

} // namespace

START_TEST(nvml_matches_devices_in_pci_order)
{
	record_log();
	StubNvml stub;
	stub.three_devices();
	{
		auto backend = nvml_backend();
		ck_assert_str(std::string(backend->name()), "nvml");
		ck_assert_int_eq(stub.init_depth(), 1);
		auto samples = sample_ok(*backend);
		// PCI order 18, 3b, af: vendor index 0 is NVML's 1, vendor index 2 is NVML's 0; AMD absent.
		ck_assert_uint_eq(samples.size(), 2);
		ck_assert_int_eq(samples[0].device, 0);
		ck_assert(samples[0].busy_percent == 10.0);
		ck_assert_uint_eq(samples[0].memory_used_bytes, 1 * MiB);
		ck_assert(samples[0].per_job); // NVML answered: no process, no job
		ck_assert(samples[0].jobs.empty());
		ck_assert_int_eq(samples[1].device, 1);
		ck_assert(samples[1].busy_percent == 70.0);
		ck_assert_uint_eq(samples[1].memory_used_bytes, 7 * MiB);
	}
	ck_assert_int_eq(stub.init_depth(), 0); // nvmlShutdown on destruction
	ck_assert(logged(LogLevel::Error).empty());
}
END_TEST

START_TEST(nvml_device_beyond_nvmls_count_is_absent)
{
	record_log();
	StubNvml stub;
	stub.configure(2);
	stub.set_device(0, "0000:3b:00.0", 30, 0, 1024 * MiB);
	stub.set_device(1, "0000:18:00.0", 10, 0, 1024 * MiB);
	auto samples = sample_ok(*nvml_backend());
	ck_assert_uint_eq(samples.size(), 1);
	ck_assert_int_eq(samples[0].device, 0);
	ck_assert(samples[0].busy_percent == 10.0);
	auto errors = logged(LogLevel::Error);
	ck_assert_uint_eq(errors.size(), 1);
	ck_assert_str(errors[0],
	              "telemetry: NVML sees 2 NVIDIA devices, none for /d/nvidia2 (vendor index 2); it "
	              "counts as busy");
}
END_TEST

namespace
{

void check_per_job_attribution(int process_stride)
{
	record_log();
	StubNvml stub;
	stub.three_devices();
	stub.set_process_stride(process_stride);
	TempDir proc;
	fake_process(proc.path(), 1001, v1_cgroup(42), "python");
	fake_process(proc.path(), 1002, "0::/system.slice/slurmstepd.scope/job_42/step_1/user/task_0\n",
	             "python");
	fake_process(proc.path(), 2001, v1_cgroup(7), "train");
	fake_process(proc.path(), 3001, "0::/user.slice/user-0.slice/session-1.scope\n", "nvtop");
	// NVML's device 1 is the layout's nvidia0; 4001 has exited since NVML saw it
	stub.add_process(1, 1001, 512 * MiB, 30);
	stub.add_process(1, 1002, 256 * MiB, 20);
	stub.add_process(1, 2001, 1024 * MiB, 0);
	stub.add_process(1, 3001, 64 * MiB, 5);
	stub.add_process(1, 4001, 8 * MiB, 90);
	auto backend = nvml_backend(proc.path());
	auto samples = sample_ok(*backend);
	ck_assert_uint_eq(samples.size(), 2);
	const DeviceSample &s = samples[0];
	ck_assert_int_eq(s.device, 0);
	ck_assert(s.per_job);
	ck_assert_uint_eq(s.jobs.size(), 2);
	ck_assert_uint_eq(s.jobs[0].job, 7);
	ck_assert(s.jobs[0].busy_percent == 0.0);
	ck_assert_uint_eq(s.jobs[0].memory_bytes, 1024 * MiB);
	ck_assert_uint_eq(s.jobs[1].job, 42);
	ck_assert(s.jobs[1].busy_percent == 50.0);
	ck_assert_uint_eq(s.jobs[1].memory_bytes, 768 * MiB);
	ck_assert_uint_eq(stub.last_seen(1), 0);

	// Nothing ran since: memory still held, no SM use, and the backend
	// asked only for samples newer than the last one it read.
	samples = sample_ok(*backend);
	ck_assert_uint_eq(samples[0].jobs.size(), 2);
	ck_assert(samples[0].jobs[1].busy_percent == 0.0);
	ck_assert_uint_eq(samples[0].jobs[1].memory_bytes, 768 * MiB);
	ck_assert_uint_gt(stub.last_seen(1), 0);
	ck_assert(logged(LogLevel::Error).empty());
}

} // namespace

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

START_TEST(nvml_attributes_use_to_jobs)
{
	check_per_job_attribution(24);
}
END_TEST

// R535 drivers write 32-byte process entries through the same _v3 symbol.
START_TEST(nvml_attributes_use_to_jobs_with_larger_process_entries)
{
	check_per_job_attribution(32);
}
END_TEST

// Under MPS NVML's utilization samples name the job's MPS server and its
// memory lists the clients (as seen on an H200, driver 580).
START_TEST(nvml_attributes_mps_server_use_to_its_job)
{
	using namespace std::string_literals;
	StubNvml stub;
	stub.three_devices();
	stub.set_process_stride(24);
	TempDir proc;
	fake_mps(proc.path(), 500, "nvidia-cuda-mps-control", 1, 0,
	         "CUDA_MPS_PIPE_DIRECTORY=/run/flexslurm/jobs/42/mps-pipe\0"s);
	fake_mps(proc.path(), 501, "nvidia-cuda-mps-server", 500, 1000, "");
	fake_process(proc.path(), 1001, "0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0\n",
	             "python3");
	stub.add_process(1, 501, 66 * MiB, 90);
	stub.add_process(1, 1001, 758 * MiB, 0);
	auto backend = nvml_backend(proc.path());
	auto samples = sample_ok(*backend);
	const DeviceSample &s = samples[0];
	ck_assert(s.per_job);
	ck_assert_uint_eq(s.jobs.size(), 1);
	ck_assert_uint_eq(s.jobs[0].job, 42);
	ck_assert(s.jobs[0].busy_percent == 90.0);
	ck_assert_uint_eq(s.jobs[0].memory_bytes, (66 + 758) * MiB);
}
END_TEST

START_TEST(nvml_unreadable_device_is_absent)
{
	record_log();
	StubNvml stub;
	stub.three_devices();
	stub.fail_device(0, 1); // PCI af: the layout's nvidia2
	auto backend = nvml_backend();
	auto samples = sample_ok(*backend);
	ck_assert_uint_eq(samples.size(), 1);
	ck_assert_int_eq(samples[0].device, 0);
	samples = sample_ok(*backend);
	auto errors = logged(LogLevel::Error);
	ck_assert_uint_eq(errors.size(), 1); // not again on the second sample
	ck_assert_str(errors[0],
	              "telemetry: NVIDIA device 0000:af:00.0: nvmlDeviceGetUtilizationRates failed: GPU "
	              "is lost (NVML error 15); it counts as busy");
}
END_TEST

START_TEST(nvml_failures_are_error_values)
{
	StubNvml stub;
	stub.three_devices();
	stub.fail_init(1);
	auto failed = make_nvml_backend(test_layout(), STUB_NVML);
	ck_assert(!failed);
	ck_assert_str(failed.error(), "telemetry: nvmlInit_v2 failed: Driver Not Loaded (NVML error 9)");
	ck_assert_int_eq(stub.init_depth(), 0);

	auto missing = make_nvml_backend(test_layout(), "/nonexistent/libnvidia-ml.so.1");
	ck_assert(!missing);
	ck_assert_msg(missing.error().starts_with("telemetry: cannot load /nonexistent/libnvidia-ml.so.1: "),
	              "%s", missing.error().c_str());

	// A library that is not NVML at all.
	auto wrong = make_nvml_backend(test_layout(), "libc.so.6");
	ck_assert(!wrong);
	ck_assert_str(wrong.error(), "telemetry: libc.so.6 lacks nvmlInit_v2");
}
END_TEST

// ---- other vendors ----

START_TEST(unsupported_backend_logs_once)
{
	record_log();
	auto backend = make_unsupported_backend(Vendor::Amd);
	ck_assert(sample_ok(*backend).empty());
	ck_assert(sample_ok(*backend).empty());
	auto info = logged(LogLevel::Info);
	ck_assert_uint_eq(info.size(), 1);
	ck_assert_str(info[0],
	              "telemetry: amd devices: no telemetry backend yet (unsupported); their slices count "
	              "as busy and are never lent");
	auto ascend = make_unsupported_backend(Vendor::Ascend);
	ck_assert(sample_ok(*ascend).empty());
	ck_assert_str(logged(LogLevel::Info).back(),
	              "telemetry: ascend devices: no telemetry backend yet "
	              "(unsupported); their slices count as busy and are never lent");
}
END_TEST

Suite *telemetry_suite()
{
	Suite *s = suite_create("telemetry");
	TCase *tc = tcase_create("telemetry");
	tcase_add_test(tc, file_backend_reads_each_device_file);
	tcase_add_test(tc, file_backend_job_lines_make_a_per_job_sample);
	tcase_add_test(tc, file_backend_skips_malformed_files_with_one_error_each);
	tcase_add_test(tc, file_backend_reports_a_fixed_file_again_when_it_breaks);
	tcase_add_test(tc, file_backend_without_its_directory_fails);
	tcase_add_test(tc, job_of_cgroup_text_reads_slurm_paths);
	tcase_add_test(tc, job_of_cgroup_text_rejects_everything_else);
	tcase_add_test(tc, job_of_cgroup_text_rejects_user_made_cgroups);
	tcase_add_test(tc, slurmd_cgroup_teaches_the_v2_scope);
	tcase_add_test(tc, slurmstepd_is_told_by_its_executable_and_root);
	tcase_add_test(tc, job_of_cgroup_text_reads_slurm_22_05_v2_on_a_hybrid_host);
	tcase_add_test(tc, pids_of_job_scans_a_fake_proc);
	tcase_add_test(tc, kill_job_processes_kills_only_the_jobs_processes);
	tcase_add_test(tc, kill_job_processes_spares_a_later_job_with_the_same_id);
	tcase_add_test(tc, nvml_matches_devices_in_pci_order);
	tcase_add_test(tc, nvml_device_beyond_nvmls_count_is_absent);
	tcase_add_test(tc, mps_server_is_its_jobs);
	tcase_add_test(tc, nvml_attributes_use_to_jobs);
	tcase_add_test(tc, nvml_attributes_mps_server_use_to_its_job);
	tcase_add_test(tc, nvml_attributes_use_to_jobs_with_larger_process_entries);
	tcase_add_test(tc, nvml_unreadable_device_is_absent);
	tcase_add_test(tc, nvml_failures_are_error_values);
	tcase_add_test(tc, unsupported_backend_logs_once);
	suite_add_tcase(s, tc);
	return s;
}
