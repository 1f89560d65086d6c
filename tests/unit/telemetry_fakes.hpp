// SPDX-License-Identifier: GPL-2.0-or-later
// Fakes shared by the telemetry tests (test_telemetry, test_nvml,
// test_job_cgroup, test_process_control): log capture, temporary
// directories, a fake /proc, and a small layout.
#pragma once

#include "log_capture.hpp"
#include "suites.hpp"

#include "core/io/job_cgroup.hpp"
#include "core/io/telemetry.hpp"
#include "core/model/slice_layout.hpp"
#include "core/util/log.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace
{

using namespace flexslurm;

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

inline void write_file(const std::string &path, const std::string &text)
{
	std::filesystem::create_directories(std::filesystem::path(path).parent_path());
	std::ofstream out(path, std::ios::trunc);
	out << text;
	ck_assert(static_cast<bool>(out));
}

// A fake /proc entry: its cgroup file, and a comm file unless comm is empty.
// Where the tests' slurmstepd runs from (what slurmd would say).
const std::string stepd_path = "/opt/flexslurm-test/sbin/slurmstepd";

inline SlurmMarks test_marks(const std::string &node = "")
{
	return SlurmMarks::for_node(node, stepd_path);
}

// proc/<pid>: cgroup, comm, status (all four uids `uid`), exe (a link to `exe`, if given).
inline void fake_process(const std::string &proc, long pid, const std::string &cgroup,
                         const std::string &comm, unsigned uid = 1000,
                         const std::string &exe = "/usr/bin/python3")
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
inline void fake_stepd(const std::string &proc, long pid, const std::string &cgroup)
{
	fake_process(proc, pid, cgroup, "slurmstepd", 0, stepd_path);
}

// A fake MPS process: exe link, status (PPid, Uid) and environ.
inline void fake_mps(const std::string &proc, long pid, const std::string &exe, long ppid, int uid,
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

inline std::string v1_cgroup(uint32_t job)
{
	return "12:devices:/slurm/uid_1000/job_" + std::to_string(job) +
	       "/step_0/task_0\n"
	       "11:memory:/slurm/uid_1000/job_" +
	       std::to_string(job) + "/step_0/task_0\n1:name=systemd:/system.slice/slurmd.service\n";
}

// Two NVIDIA devices (vendor indices 0 and 2: the middle one's node is
// missing) and one AMD device.
inline SliceLayout test_layout()
{
	auto l = SliceLayout::deserialize("flexslurm-layout 1\n"
	                                  "nvidia\t0\tt4\t/d/nvidia0\t195:0\t0\t4\t25\t0\t\n"
	                                  "nvidia\t2\tt4\t/d/nvidia2\t195:2\t4\t4\t25\t0\t\n"
	                                  "amd\t0\tmi210\t/d/dri/renderD128\t226:128\t8\t4\t25\t0\t\n");
	ck_assert_msg(static_cast<bool>(l), "%s", l.error().c_str());
	return *l;
}

inline std::vector<DeviceSample> sample_ok(TelemetryBackend &backend)
{
	auto s = backend.sample();
	ck_assert_msg(static_cast<bool>(s), "%s", s.error().c_str());
	return *s;
}

constexpr uint64_t MiB = 1ULL << 20;

// One job's use in a sample is exactly this.
#define check_job_use(use, job_id, busy, bytes)                                                              \
	do {                                                                                                 \
		const JobUse u_ = (use);                                                                     \
		ck_assert_uint_eq(u_.job, job_id);                                                           \
		ck_assert(u_.busy_percent == (busy));                                                        \
		ck_assert_uint_eq(u_.memory_bytes, bytes);                                                   \
	} while (0)

} // namespace
