// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/process_control.hpp"

#include "core/io/file_io.hpp"
#include "core/model/limits.hpp"
#include "core/util/log.hpp"
#include "core/util/text.hpp"
#include "core/util/unique_fd.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>

namespace flexslurm
{
namespace
{

constexpr size_t max_proc_file = 64 * 1024;

// proc_root/<pid>/<name>, whole, if it is there and within `limit` bytes.
std::optional<std::string> read_proc(const std::string &proc_root, const std::string &pid, const char *name,
                                     size_t limit = max_proc_file)
{
	auto text = read_file_bounded(proc_root + "/" + pid + "/" + name, limit);
	if (!text)
		return std::nullopt;
	return std::move(*text);
}

std::optional<std::string> read_comm(const std::string &proc_root, int pid)
{
	auto comm = read_proc(proc_root, std::to_string(pid), "comm", 4096);
	if (!comm)
		return std::nullopt;
	while (!comm->empty() && comm->back() == '\n')
		comm->pop_back();
	return comm;
}

// Every uid (real, effective, saved, filesystem) of proc_root/<pid>/status is 0.
bool runs_as_root(const std::string &proc_root, int pid)
{
	const auto status = read_proc(proc_root, std::to_string(pid), "status");
	if (!status)
		return false;
	const std::string_view text = *status;
	size_t at = text.rfind("\nUid:", std::string_view::npos);
	if (text.substr(0, 4) == "Uid:")
		at = 0;
	else if (at == std::string_view::npos)
		return false;
	else
		++at;
	const size_t end = text.find('\n', at);
	const std::string_view line =
	        text.substr(at + 4, end == std::string_view::npos ? std::string_view::npos : end - at - 4);
	const auto uids = words(line, " \t");
	return uids.size() == 4 && std::all_of(uids.begin(), uids.end(), [](auto u) { return u == "0"; });
}

// Where proc_root/<pid>/exe leads.
std::optional<std::string> read_exe(const std::string &proc_root, const std::string &pid)
{
	char target[4096];
	const std::string link = proc_root + "/" + pid + "/exe";
	const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
	if (n <= 0)
		return std::nullopt;
	return std::string(target, static_cast<size_t>(n));
}

// The value of `key` in a /proc/<pid>/status text ("PPid:\t12" -> "12").
std::string_view status_field(std::string_view status, std::string_view key)
{
	for (std::string_view line : split(status, '\n'))
		if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ':') {
			line.remove_prefix(key.size() + 1);
			while (!line.empty() && (line.front() == '\t' || line.front() == ' '))
				line.remove_prefix(1);
			return line;
		}
	return {};
}

// The file name of what proc_root/<pid> runs ("" if unreadable).
std::string exe_name(const std::string &proc_root, const std::string &pid)
{
	const auto path = read_exe(proc_root, pid);
	return path ? path->substr(path->rfind('/') + 1) : "";
}

// The process is the job's, and neither its slurmstepd nor this process.
bool is_job_process(const std::string &proc_root, int pid, uint32_t job, const SlurmMarks &marks)
{
	if (pid == getpid() || job_of_pid(proc_root, pid, marks) != job)
		return false;
	// Unreadable: gone (or cannot be told apart): left alone.
	if (!read_comm(proc_root, pid))
		return false;
	return !is_slurmstepd(proc_root, pid, marks);
}

// Every pid under proc_root, in directory order; the error says why it cannot be listed.
Result<std::vector<int>> list_pids(const std::string &proc_root)
{
	std::unique_ptr<DIR, int (*)(DIR *)> dir(opendir(proc_root.c_str()), closedir);
	if (!dir)
		return Result<std::vector<int>>::failure(std::strerror(errno));
	std::vector<int> pids;
	while (const dirent *entry = readdir(dir.get())) {
		int pid = 0;
		if (parse_number<int>(entry->d_name, pid, 1, std::numeric_limits<int>::max()))
			pids.push_back(pid);
	}
	return pids;
}

// Whether the job now running under `job` is the one a stop ordered at
// `ordered_at` was meant for: one of its slurmstepds was already there.
// No slurmstepd left to tell by: taken as the same job (its processes
// outlived their step).
bool same_incarnation(uint32_t job, const std::string &proc_root, const SlurmMarks &marks,
                      uint64_t ordered_at)
{
	const auto pids = list_pids(proc_root);
	if (!pids)
		return true;
	bool any = false;
	for (const int pid : *pids) {
		if (job_of_pid(proc_root, pid, marks) != job || !is_slurmstepd(proc_root, pid, marks))
			continue;
		const auto started = process_start_ticks(proc_root, pid);
		if (!started)
			continue;
		any = true;
		if (*started <= ordered_at)
			return true;
	}
	return !any;
}

} // namespace

std::optional<uint32_t> job_of_pid(const std::string &proc_root, int pid, const SlurmMarks &marks)
{
	const auto cgroup = read_proc(proc_root, std::to_string(pid), "cgroup");
	if (!cgroup)
		return std::nullopt;
	return job_of_cgroup_text(*cgroup, marks);
}

// Under MPS a job's kernels run in its MPS server: NVML's utilization samples
// name the server, its memory lists the clients (seen on an H200 with driver
// 580, docs/releases.md), and the server lives outside the job's cgroup. The
// SPANK job prolog starts one control daemon per job, as root, with
// CUDA_MPS_PIPE_DIRECTORY = <job_dir>/<job>/mps-pipe, and the server is its
// child. Only root's nvidia-cuda-mps-control is believed: a daemon a user
// starts, or a user's environment, never names a job.
std::optional<uint32_t> job_of_mps_server(const std::string &proc_root, int pid)
{
	const std::string self = std::to_string(pid);
	if (exe_name(proc_root, self) != "nvidia-cuda-mps-server")
		return std::nullopt;
	const auto status = read_proc(proc_root, self, "status");
	if (!status)
		return std::nullopt;
	const std::string parent(status_field(*status, "PPid"));
	int ppid = 0;
	if (!parse_number<int>(parent, ppid, 2, std::numeric_limits<int>::max()) ||
	    exe_name(proc_root, parent) != "nvidia-cuda-mps-control")
		return std::nullopt;
	const auto parent_status = read_proc(proc_root, parent, "status");
	if (!parent_status)
		return std::nullopt;
	const auto uids = split(status_field(*parent_status, "Uid"), '\t');
	if (uids.size() != 4 || uids[0] != "0" || uids[1] != "0")
		return std::nullopt;
	const auto env_text = read_proc(proc_root, parent, "environ");
	if (!env_text)
		return std::nullopt;
	constexpr std::string_view key = "CUDA_MPS_PIPE_DIRECTORY=";
	for (std::string_view var : split(*env_text, '\0'))
		if (var.starts_with(key))
			return job_of_mps_pipe(var.substr(key.size()));
	return std::nullopt;
}

bool is_slurmstepd(const std::string &proc_root, int pid, const SlurmMarks &marks)
{
	if (!runs_as_root(proc_root, pid))
		return false;
	if (marks.stepd_path.empty()) {
		const auto comm = read_comm(proc_root, pid);
		return comm && *comm == "slurmstepd";
	}
	const auto exe = read_exe(proc_root, std::to_string(pid));
	// An executable replaced since it started (a Slurm upgrade) reads "<path> (deleted)".
	return exe && (*exe == marks.stepd_path || *exe == marks.stepd_path + " (deleted)");
}

std::vector<int> pids_of_job(uint32_t job, const std::string &proc_root, const SlurmMarks &marks)
{
	std::vector<int> pids;
	const auto all = list_pids(proc_root);
	if (!all) {
		log_error("telemetry: cannot list " + proc_root + ": " + all.error());
		return pids;
	}
	for (const int pid : *all)
		if (is_job_process(proc_root, pid, job, marks))
			pids.push_back(pid);
	std::sort(pids.begin(), pids.end());
	return pids;
}

std::optional<uint64_t> process_start_ticks(const std::string &proc_root, int pid)
{
	const auto stat = read_proc(proc_root, std::to_string(pid), "stat", 4096);
	if (!stat)
		return std::nullopt;
	// "pid (comm) state ppid ...": comm may hold spaces and ')', so fields
	// count from the last ')'; starttime is field 22, the 20th after it.
	const size_t close = stat->rfind(')');
	if (close == std::string::npos)
		return std::nullopt;
	std::vector<std::string_view> fields;
	for (std::string_view f : split(std::string_view(*stat).substr(close + 1), ' '))
		if (!f.empty())
			fields.push_back(f);
	uint64_t ticks = 0;
	if (fields.size() < 20 ||
	    !parse_number<uint64_t>(fields[19], ticks, 0, std::numeric_limits<uint64_t>::max()))
		return std::nullopt;
	return ticks;
}

uint64_t boot_ticks_now()
{
	timespec ts{};
	clock_gettime(CLOCK_BOOTTIME, &ts);
	const long hz = sysconf(_SC_CLK_TCK);
	const uint64_t per_second = hz > 0 ? static_cast<uint64_t>(hz) : 100;
	return static_cast<uint64_t>(ts.tv_sec) * per_second +
	       static_cast<uint64_t>(ts.tv_nsec) * per_second / 1000000000u;
}

int kill_job_processes(uint32_t job, const std::string &proc_root, const SlurmMarks &marks,
                       uint64_t ordered_at)
{
	if (ordered_at && !same_incarnation(job, proc_root, marks, ordered_at)) {
		log_info("telemetry: job " + std::to_string(job) +
		         " started after its stop was ordered: another job with the same id, left alone");
		return 0;
	}
	int signalled = 0;
	for (int pid : pids_of_job(job, proc_root, marks)) {
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)
		// Pin the process first, then check it again: if the pid was reused
		// since the scan, the check fails; if it is reused after, the pidfd
		// still names the process that was checked.
		UniqueFd pinned(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
		if (pinned.get() >= 0) {
			if (!is_job_process(proc_root, pid, job, marks))
				continue;
			if (syscall(SYS_pidfd_send_signal, pinned.get(), SIGKILL, nullptr, 0) == 0)
				++signalled;
			else if (errno != ESRCH)
				log_error("telemetry: cannot kill pid " + std::to_string(pid) + " of job " +
				          std::to_string(job) + ": " + std::strerror(errno));
			continue;
		}
		if (errno == ESRCH)
			continue; // already gone
			          // No pidfd (kernel before 5.3): the check above is the best there is.
#endif
		if (kill(pid, SIGKILL) == 0)
			++signalled;
		else if (errno != ESRCH)
			log_error("telemetry: cannot kill pid " + std::to_string(pid) + " of job " +
			          std::to_string(job) + ": " + std::strerror(errno));
	}
	if (signalled > 0)
		log_info("telemetry: killed " + std::to_string(signalled) + " processes of job " +
		         std::to_string(job));
	return signalled;
}

} // namespace flexslurm