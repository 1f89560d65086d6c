#include "core/io/telemetry.hpp"

#include "core/model/limits.hpp"
#include "core/util/text.hpp"

#include "core/util/unique_fd.hpp"

#include "core/util/log.hpp"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <tuple>

namespace flexslurm
{
namespace
{

// ---- small utilities ---------------------------------------------------------------------------

struct FileText {
	enum class Status { Ok, Missing, TooLarge, Failed };
	Status status = Status::Failed;
	std::string text;
	std::string why; // Failed: the reason
};

// Reads a whole regular file, refusing one over `limit` bytes. /proc files
// report size 0, so the bound is enforced while reading, not from fstat.
// O_NONBLOCK: a FIFO an admin left in place must not hang slurmd.
FileText read_bounded(const std::string &path, size_t limit)
{
	FileText out;
	UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
	if (fd.get() < 0) {
		out.status = errno == ENOENT ? FileText::Status::Missing : FileText::Status::Failed;
		out.why = std::strerror(errno);
		return out;
	}
	struct stat st {
	};
	if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
		out.why = "not a regular file";
		return out;
	}
	char buffer[4096];
	for (;;) {
		const ssize_t n = read(fd.get(), buffer, sizeof buffer);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			out.why = std::strerror(errno);
			return out;
		}
		if (n == 0)
			break;
		out.text.append(buffer, static_cast<size_t>(n));
		if (out.text.size() > limit) {
			out.status = FileText::Status::TooLarge;
			out.text.clear();
			return out;
		}
	}
	out.status = FileText::Status::Ok;
	return out;
}

// Digits only (no sign, no blanks), within T's range.
template <class T>
std::optional<T> parse_decimal(std::string_view s) noexcept
{
	if (s.empty() || s.front() < '0' || s.front() > '9')
		return std::nullopt;
	T value{};
	auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
	if (ec != std::errc() || end != s.data() + s.size())
		return std::nullopt;
	return value;
}

std::vector<std::string_view> split_words(std::string_view line)
{
	std::vector<std::string_view> words;
	size_t i = 0;
	while (i < line.size()) {
		while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
			++i;
		const size_t start = i;
		while (i < line.size() && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			++i;
		if (i > start)
			words.push_back(line.substr(start, i - start));
	}
	return words;
}

// Telemetry is sampled every few seconds: a file or device that stays broken
// must not fill slurmd's log. The first report of a problem (or a changed
// one) is an error, repeats go to debug.
class ProblemLog
{
public:
	void report(const std::string &subject, const std::string &problem)
	{
		auto [it, inserted] = last_.try_emplace(subject, problem);
		if (inserted || it->second != problem) {
			it->second = problem;
			log_error(problem);
		} else {
			log_debug(problem);
		}
	}
	void clear(const std::string &subject) { last_.erase(subject); }

private:
	std::map<std::string, std::string> last_;
};

constexpr uint64_t mib = uint64_t{1} << 20;
constexpr size_t max_jobs_per_device = 1024;

// ---- file backend ------------------------------------------------------------------------------

constexpr size_t max_telemetry_file = 64 * 1024;

std::string quoted(std::string_view s)
{
	return "\"" + std::string(s) + "\"";
}

// Problems are "line N: what"; an empty string means the value is good.
std::string parse_busy(std::string_view word, double &out)
{
	double value = 0;
	auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
	if (ec == std::errc::result_out_of_range ||
	    (ec == std::errc() && end == word.data() + word.size() && !std::isfinite(value)))
		return "busy " + quoted(word) + " is not a finite number";
	if (ec != std::errc() || end != word.data() + word.size())
		return "busy " + quoted(word) + " is not a number";
	if (value < 0 || value > 100)
		return "busy " + quoted(word) + " is out of range (0..100)";
	out = value;
	return {};
}

std::string parse_memory_mib(std::string_view word, uint64_t &bytes)
{
	const auto value = parse_decimal<uint64_t>(word);
	if (!value)
		return "memory_mib " + quoted(word) + " is not a whole number of MiB";
	if (*value > std::numeric_limits<uint64_t>::max() / mib)
		return "memory_mib " + quoted(word) + " is too large";
	bytes = *value * mib;
	return {};
}

// "job J [busy X] [memory_mib N]"
std::string parse_job_line(const std::vector<std::string_view> &words, JobUse &use)
{
	if (words.size() < 2)
		return "job needs a job id";
	const auto job = parse_decimal<uint32_t>(words[1]);
	if (!job || *job == 0)
		return "job " + quoted(words[1]) + " is not a job id";
	use.job = *job;
	bool seen_busy = false, seen_memory = false;
	for (size_t i = 2; i < words.size(); i += 2) {
		const std::string_view key = words[i];
		if (key != "busy" && key != "memory_mib")
			return "unknown job field " + quoted(key) + " (allowed: busy, memory_mib)";
		bool &seen = key == "busy" ? seen_busy : seen_memory;
		if (seen)
			return "job " + std::to_string(use.job) + ": " + std::string(key) + " given twice";
		seen = true;
		if (i + 1 >= words.size())
			return "job " + std::to_string(use.job) + ": " + std::string(key) + " needs a value";
		std::string problem = key == "busy" ? parse_busy(words[i + 1], use.busy_percent)
		                                    : parse_memory_mib(words[i + 1], use.memory_bytes);
		if (!problem.empty())
			return problem;
	}
	return {};
}

// A telemetry file's contents; the error names the line and the problem.
Result<DeviceSample> parse_telemetry_text(std::string_view text)
{
	DeviceSample sample;
	bool seen_busy = false, seen_memory = false;
	std::set<uint32_t> jobs_seen;
	int line_number = 0;
	size_t start = 0;
	while (start < text.size()) {
		size_t end = text.find('\n', start);
		if (end == std::string_view::npos)
			end = text.size();
		std::string_view line = text.substr(start, end - start);
		start = end + 1;
		++line_number;
		if (const size_t hash = line.find('#'); hash != std::string_view::npos)
			line = line.substr(0, hash);
		const auto words = split_words(line);
		if (words.empty())
			continue;
		auto fail = [&](const std::string &problem) {
			return Result<DeviceSample>::failure("line " + std::to_string(line_number) + ": " +
			                                     problem);
		};
		const std::string_view key = words[0];
		std::string problem;
		if (key == "busy" || key == "memory_mib") {
			bool &seen = key == "busy" ? seen_busy : seen_memory;
			if (seen)
				return fail(std::string(key) + " given twice");
			seen = true;
			if (words.size() < 2)
				return fail(std::string(key) + " needs a value");
			if (words.size() > 2)
				return fail("unexpected " + quoted(words[2]) + " after " + std::string(key));
			problem = key == "busy" ? parse_busy(words[1], sample.busy_percent)
			                        : parse_memory_mib(words[1], sample.memory_used_bytes);
		} else if (key == "job") {
			if (sample.jobs.size() >= max_jobs_per_device)
				return fail("more than " + std::to_string(max_jobs_per_device) +
				            " job lines");
			JobUse use;
			problem = parse_job_line(words, use);
			if (problem.empty() && !jobs_seen.insert(use.job).second)
				problem = "job " + std::to_string(use.job) + " listed twice";
			if (problem.empty())
				sample.jobs.push_back(use);
		} else {
			problem = "unknown keyword " + quoted(key) + " (allowed: busy, memory_mib, job)";
		}
		if (!problem.empty())
			return fail(problem);
	}
	if (!seen_busy)
		return Result<DeviceSample>::failure("no \"busy\" line (it is required)");
	sample.per_job = !sample.jobs.empty();
	return sample;
}

class FileBackend final : public TelemetryBackend
{
public:
	FileBackend(const SliceLayout &layout, std::string dir) : dir_(std::move(dir))
	{
		const auto &devices = layout.devices();
		for (size_t i = 0; i < devices.size(); ++i) {
			const std::string &path = devices[i].device_path;
			const std::string base = path.substr(path.find_last_of('/') + 1);
			if (base.empty() || base == "." || base == "..")
				continue; // deserialize() does not let such a path through
			sources_.push_back({static_cast<int>(i), dir_ + "/" + base});
		}
	}

	std::string_view name() const noexcept override { return "file"; }

	Result<std::vector<DeviceSample>> sample() override
	{
		struct stat st {
		};
		if (stat(dir_.c_str(), &st) != 0)
			return Result<std::vector<DeviceSample>>::failure(
			        "telemetry: cannot read directory " + dir_ + ": " + std::strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return Result<std::vector<DeviceSample>>::failure("telemetry: " + dir_ +
			                                                  " is not a directory");
		std::vector<DeviceSample> samples;
		for (const Source &source : sources_) {
			FileText file = read_bounded(source.path, max_telemetry_file);
			std::string problem;
			switch (file.status) {
			case FileText::Status::Missing:
				log_debug("telemetry: " + source.path +
				          ": no such file; the device counts as busy");
				problems_.clear(source.path);
				continue;
			case FileText::Status::TooLarge:
				problem = "larger than 64 KiB";
				break;
			case FileText::Status::Failed:
				problem = "cannot read: " + file.why;
				break;
			case FileText::Status::Ok:
				if (auto parsed = parse_telemetry_text(file.text)) {
					parsed->device = source.device;
					samples.push_back(std::move(*parsed));
					problems_.clear(source.path);
					continue;
				} else {
					problem = parsed.error();
				}
				break;
			}
			problems_.report(source.path, "telemetry: " + source.path + ": " + problem +
			                                      "; the device counts as busy");
		}
		return samples;
	}

private:
	struct Source {
		int device = 0;
		std::string path;
	};
	std::string dir_;
	std::vector<Source> sources_;
	ProblemLog problems_;
};

// ---- /proc: processes and their jobs -----------------------------------------------------------

constexpr size_t max_proc_file = 64 * 1024;

std::optional<uint32_t> job_component(std::string_view component) noexcept
{
	if (component.substr(0, 4) != "job_")
		return std::nullopt;
	auto job = parse_decimal<uint32_t>(component.substr(4));
	if (!job || *job == 0)
		return std::nullopt;
	return job;
}

std::vector<std::string_view> path_components(std::string_view path)
{
	std::vector<std::string_view> out;
	size_t start = 0;
	while (start <= path.size()) {
		size_t end = path.find('/', start);
		if (end == std::string_view::npos)
			end = path.size();
		if (end > start)
			out.push_back(path.substr(start, end - start));
		start = end + 1;
	}
	return out;
}

// One path component against a pattern component with at most one '*' (any characters, or none).
bool component_matches(std::string_view pattern, std::string_view component) noexcept
{
	const size_t star = pattern.find('*');
	if (star == std::string_view::npos)
		return pattern == component;
	const std::string_view head = pattern.substr(0, star), tail = pattern.substr(star + 1);
	return component.size() >= head.size() + tail.size() && component.substr(0, head.size()) == head &&
	       component.substr(component.size() - tail.size()) == tail;
}

// The number of leading components of `path` that `anchor` names, or 0.
size_t anchored(const std::vector<std::string_view> &path, std::string_view anchor)
{
	const auto want = path_components(anchor);
	if (want.empty() || want.size() > path.size())
		return 0;
	for (size_t i = 0; i < want.size(); ++i)
		if (!component_matches(want[i], path[i]))
			return 0;
	return want.size();
}

bool is_uid_component(std::string_view c) noexcept
{
	return c.substr(0, 4) == "uid_" && parse_decimal<uint32_t>(c.substr(4)).has_value();
}

// A job's cgroup is "<v1 root>/uid_U/job_J/..." on a v1 controller line and "<v2 scope>/job_J/..." on
// the v2 line, anchored at the root: what a user makes in a cgroup tree delegated to them (under
// user.slice, or in the name=systemd hierarchy) is not Slurm's, whatever it is called.
std::optional<uint32_t> job_of_cgroup_path(std::string_view path, bool v2, const SlurmMarks &marks)
{
	const auto components = path_components(path);
	for (const std::string &anchor : v2 ? marks.v2_scopes : marks.v1_roots) {
		size_t at = anchored(components, anchor);
		if (!at)
			continue;
		if (!v2) {
			if (at >= components.size() || !is_uid_component(components[at]))
				continue;
			++at;
		}
		if (at < components.size())
			if (auto job = job_component(components[at]))
				return job;
	}
	return std::nullopt;
}

std::optional<std::string> read_comm(const std::string &proc_root, int pid)
{
	FileText comm = read_bounded(proc_root + "/" + std::to_string(pid) + "/comm", 4096);
	if (comm.status != FileText::Status::Ok)
		return std::nullopt;
	while (!comm.text.empty() && comm.text.back() == '\n')
		comm.text.pop_back();
	return comm.text;
}

// Every uid (real, effective, saved, filesystem) of proc_root/<pid>/status is 0.
bool runs_as_root(const std::string &proc_root, int pid)
{
	FileText status = read_bounded(proc_root + "/" + std::to_string(pid) + "/status", max_proc_file);
	if (status.status != FileText::Status::Ok)
		return false;
	const std::string_view text = status.text;
	size_t at = text.rfind("\nUid:", std::string_view::npos);
	if (text.substr(0, 4) == "Uid:")
		at = 0;
	else if (at == std::string_view::npos)
		return false;
	else
		++at;
	const size_t end = text.find('\n', at);
	std::string_view line =
	        text.substr(at + 4, end == std::string_view::npos ? std::string_view::npos : end - at - 4);
	int uids = 0;
	size_t i = 0;
	while (i < line.size()) {
		while (i < line.size() && (line[i] == '\t' || line[i] == ' '))
			++i;
		size_t j = i;
		while (j < line.size() && line[j] != '\t' && line[j] != ' ')
			++j;
		if (j > i) {
			if (line.substr(i, j - i) != "0")
				return false;
			++uids;
		}
		i = j;
	}
	return uids == 4;
}

std::optional<std::string> read_exe(const std::string &proc_root, int pid)
{
	char target[4096];
	const std::string link = proc_root + "/" + std::to_string(pid) + "/exe";
	const ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
	if (n <= 0)
		return std::nullopt;
	return std::string(target, static_cast<size_t>(n));
}

std::optional<uint32_t> job_of_pid(const std::string &proc_root, int pid, const SlurmMarks &marks)
{
	FileText cgroup = read_bounded(proc_root + "/" + std::to_string(pid) + "/cgroup", max_proc_file);
	if (cgroup.status != FileText::Status::Ok)
		return std::nullopt;
	return job_of_cgroup_text(cgroup.text, marks);
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

std::string exe_name(const std::string &proc_root, const std::string &pid)
{
	char target[4096];
	const ssize_t n = readlink((proc_root + "/" + pid + "/exe").c_str(), target, sizeof target - 1);
	if (n <= 0)
		return "";
	const std::string_view path(target, static_cast<size_t>(n));
	return std::string(path.substr(path.rfind('/') + 1));
}

} // namespace

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
	const FileText status = read_bounded(proc_root + "/" + self + "/status", max_proc_file);
	if (status.status != FileText::Status::Ok)
		return std::nullopt;
	const std::string parent(status_field(status.text, "PPid"));
	int ppid = 0;
	if (!parse_number<int>(parent, ppid, 2, std::numeric_limits<int>::max()) ||
	    exe_name(proc_root, parent) != "nvidia-cuda-mps-control")
		return std::nullopt;
	const FileText parent_status = read_bounded(proc_root + "/" + parent + "/status", max_proc_file);
	if (parent_status.status != FileText::Status::Ok)
		return std::nullopt;
	const auto uids = split(status_field(parent_status.text, "Uid"), '\t');
	if (uids.size() != 4 || uids[0] != "0" || uids[1] != "0")
		return std::nullopt;
	const FileText env_text = read_bounded(proc_root + "/" + parent + "/environ", max_proc_file);
	if (env_text.status != FileText::Status::Ok)
		return std::nullopt;
	constexpr std::string_view key = "CUDA_MPS_PIPE_DIRECTORY=";
	for (std::string_view var : split(env_text.text, '\0'))
		if (var.starts_with(key))
			return job_of_mps_pipe(var.substr(key.size()));
	return std::nullopt;
}

namespace
{

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

// ---- NVML --------------------------------------------------------------------------------------

// The few NVML types the backend uses, declared here so that building needs
// no CUDA headers. Layouts as in nvml.h.
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st *;
constexpr nvmlReturn_t nvml_success = 0;
constexpr nvmlReturn_t nvml_error_not_supported = 3;
constexpr nvmlReturn_t nvml_error_not_found = 6;
constexpr nvmlReturn_t nvml_error_insufficient_size = 7;
constexpr unsigned long long nvml_value_not_available = ~0ULL;

// nvmlPciInfo_t. The _v2 and _v3 queries differ in the string that comes
// first (busId[16] vs busIdLegacy[16]) but agree on the numbers after it,
// which is all the ordering uses; the buffer is sized for the larger layout.
struct NvmlPciInfo {
	char bus_id_legacy[16];
	unsigned int domain;
	unsigned int bus;
	unsigned int device;
	unsigned int pci_device_id;
	unsigned int pci_subsystem_id;
	char bus_id[32];
	char spare[64]; // room for a layout that grows
};

struct NvmlUtilization {
	unsigned int gpu;
	unsigned int memory;
};

struct NvmlMemory {
	unsigned long long total;
	unsigned long long free;
	unsigned long long used;
};

// nvmlProcessUtilizationSample_t
struct NvmlProcessUtilizationSample {
	unsigned int pid;
	unsigned long long time_stamp;
	unsigned int sm_util;
	unsigned int mem_util;
	unsigned int enc_util;
	unsigned int dec_util;
};

// nvmlProcessInfo_v2_t is {pid, usedGpuMemory, gpuInstanceId,
// computeInstanceId}: 24 bytes. The _v3 query takes nvmlProcessInfo_t,
// which R535 drivers grew by usedGpuCcProtectedMemory (32 bytes) without a
// new symbol; later headers went back to 24. Both start with pid at 0 and
// usedGpuMemory at 8, so entries are decoded by offset with the stride
// measured on each answer (see running_processes).
constexpr size_t process_info_v2_size = 24;
constexpr size_t process_info_cc_size = 32;
constexpr size_t process_info_memory_offset = 8;
constexpr unsigned max_processes = 1024;

using NvmlInit = nvmlReturn_t (*)();
using NvmlShutdown = nvmlReturn_t (*)();
using NvmlErrorString = const char *(*)(nvmlReturn_t);
using NvmlGetCount = nvmlReturn_t (*)(unsigned int *);
using NvmlGetHandleByIndex = nvmlReturn_t (*)(unsigned int, nvmlDevice_t *);
using NvmlGetPciInfo = nvmlReturn_t (*)(nvmlDevice_t, NvmlPciInfo *);
using NvmlGetUtilization = nvmlReturn_t (*)(nvmlDevice_t, NvmlUtilization *);
using NvmlGetMemory = nvmlReturn_t (*)(nvmlDevice_t, NvmlMemory *);
using NvmlGetProcesses = nvmlReturn_t (*)(nvmlDevice_t, unsigned int *, void *);
using NvmlGetProcessUtilization = nvmlReturn_t (*)(nvmlDevice_t, NvmlProcessUtilizationSample *,
                                                   unsigned int *, unsigned long long);

unsigned long long now_microseconds() noexcept
{
	timespec now{};
	clock_gettime(CLOCK_REALTIME, &now);
	return static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
	       static_cast<unsigned long long>(now.tv_nsec / 1000);
}

struct LibraryCloser {
	void operator()(void *handle) const noexcept { dlclose(handle); }
};
using LibraryHandle = std::unique_ptr<void, LibraryCloser>;

template <class F>
F symbol(void *library, const char *name) noexcept
{
	// POSIX guarantees that a dlsym() result converts to a function pointer.
	return reinterpret_cast<F>(dlsym(library, name));
}

struct ProcessList {
	NvmlGetProcesses query = nullptr;
	bool may_grow = false;      // a _v3 query: stride 24 or 32, measured
	bool may_be_absent = false; // MPS: "not supported" on a device without it means none
	const char *name = "";
};

struct NvmlProcess {
	unsigned int pid = 0;
	unsigned long long used_memory = 0;
};

struct NvmlDevice {
	int layout_index = 0;
	nvmlDevice_t handle = nullptr;
	std::string bus_id;
	unsigned long long last_seen = 0; // newest process-utilization sample read
};

class NvmlBackend final : public TelemetryBackend
{
public:
	NvmlBackend(LibraryHandle library, std::string library_name, std::string proc_root, SlurmMarks marks)
	    : library_(std::move(library)), library_name_(std::move(library_name)),
	      proc_root_(std::move(proc_root)), marks_(std::move(marks))
	{
	}
	NvmlBackend(const NvmlBackend &) = delete;
	NvmlBackend &operator=(const NvmlBackend &) = delete;
	~NvmlBackend() override
	{
		if (initialized_)
			shutdown_();
	}

	std::string_view name() const noexcept override { return "nvml"; }

	// Resolves, initialises and matches devices; the error says what failed.
	std::string start(const SliceLayout &layout)
	{
		if (std::string missing = resolve(); !missing.empty())
			return library_name_ + " lacks " + missing;
		if (nvmlReturn_t rc = init_(); rc != nvml_success)
			return "nvmlInit_v2 failed: " + describe(rc);
		initialized_ = true;
		return match_devices(layout);
	}

	Result<std::vector<DeviceSample>> sample() override
	{
		std::vector<DeviceSample> samples;
		for (NvmlDevice &device : devices_)
			if (auto s = sample_device(device))
				samples.push_back(std::move(*s));
		return samples;
	}

private:
	std::string resolve()
	{
		void *lib = library_.get();
		init_ = symbol<NvmlInit>(lib, "nvmlInit_v2");
		shutdown_ = symbol<NvmlShutdown>(lib, "nvmlShutdown");
		error_string_ = symbol<NvmlErrorString>(lib, "nvmlErrorString");
		get_count_ = symbol<NvmlGetCount>(lib, "nvmlDeviceGetCount_v2");
		get_handle_ = symbol<NvmlGetHandleByIndex>(lib, "nvmlDeviceGetHandleByIndex_v2");
		get_pci_ = symbol<NvmlGetPciInfo>(lib, "nvmlDeviceGetPciInfo_v3");
		if (!get_pci_)
			get_pci_ = symbol<NvmlGetPciInfo>(lib, "nvmlDeviceGetPciInfo_v2");
		get_utilization_ = symbol<NvmlGetUtilization>(lib, "nvmlDeviceGetUtilizationRates");
		get_memory_ = symbol<NvmlGetMemory>(lib, "nvmlDeviceGetMemoryInfo");
		get_process_utilization_ =
		        symbol<NvmlGetProcessUtilization>(lib, "nvmlDeviceGetProcessUtilization");
		// Per-job attribution is optional: without these, samples are whole-device.
		for (const char *base :
		     {"nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetMPSComputeRunningProcesses"}) {
			ProcessList list;
			const std::string v3 = std::string(base) + "_v3", v2 = std::string(base) + "_v2";
			if ((list.query = symbol<NvmlGetProcesses>(lib, v3.c_str()))) {
				list.may_grow = true;
			} else {
				list.query = symbol<NvmlGetProcesses>(lib, v2.c_str());
			}
			list.name = base;
			list.may_be_absent = std::string_view(base).find("MPS") != std::string_view::npos;
			if (list.query)
				process_lists_.push_back(list);
		}
		const std::pair<bool, const char *> required[] = {
		        {init_ != nullptr, "nvmlInit_v2"},
		        {shutdown_ != nullptr, "nvmlShutdown"},
		        {get_count_ != nullptr, "nvmlDeviceGetCount_v2"},
		        {get_handle_ != nullptr, "nvmlDeviceGetHandleByIndex_v2"},
		        {get_pci_ != nullptr, "nvmlDeviceGetPciInfo_v3 (or _v2)"},
		        {get_utilization_ != nullptr, "nvmlDeviceGetUtilizationRates"},
		        {get_memory_ != nullptr, "nvmlDeviceGetMemoryInfo"},
		};
		for (const auto &[present, symbol_name] : required)
			if (!present)
				return symbol_name;
		return {};
	}

	std::string describe(nvmlReturn_t rc) const
	{
		const char *text = error_string_ ? error_string_(rc) : nullptr;
		return (text ? std::string(text) + " " : std::string()) + "(NVML error " +
		       std::to_string(rc) + ")";
	}

	// The layout's NVIDIA device with vendor_index k is the k-th in PCI bus
	// order, as the inventory numbered it. A device whose PCI id NVML cannot
	// tell would shift every later one, so it fails the whole backend.
	std::string match_devices(const SliceLayout &layout)
	{
		unsigned int count = 0;
		if (nvmlReturn_t rc = get_count_(&count); rc != nvml_success)
			return "nvmlDeviceGetCount_v2 failed: " + describe(rc);
		if (count > 1024)
			return "nvmlDeviceGetCount_v2 reports " + std::to_string(count) + " devices";
		struct Found {
			std::tuple<unsigned, unsigned, unsigned, std::string> order;
			nvmlDevice_t handle;
			std::string bus_id;
		};
		std::vector<Found> found;
		for (unsigned int i = 0; i < count; ++i) {
			nvmlDevice_t handle = nullptr;
			if (nvmlReturn_t rc = get_handle_(i, &handle); rc != nvml_success)
				return "NVML device " + std::to_string(i) +
				       ": nvmlDeviceGetHandleByIndex_v2 failed: " + describe(rc);
			NvmlPciInfo pci{};
			if (nvmlReturn_t rc = get_pci_(handle, &pci); rc != nvml_success)
				return "NVML device " + std::to_string(i) +
				       ": cannot read its PCI bus id (so cannot match devices by PCI "
				       "order): " +
				       describe(rc);
			pci.bus_id_legacy[sizeof pci.bus_id_legacy - 1] = '\0';
			char bus_id[32];
			std::snprintf(bus_id, sizeof bus_id, "%04x:%02x:%02x.0", pci.domain, pci.bus,
			              pci.device);
			found.push_back(
			        {{pci.domain, pci.bus, pci.device, pci.bus_id_legacy}, handle, bus_id});
		}
		std::sort(found.begin(), found.end(),
		          [](const Found &a, const Found &b) { return a.order < b.order; });
		const auto &devices = layout.devices();
		for (size_t i = 0; i < devices.size(); ++i) {
			const DeviceSlices &d = devices[i];
			if (d.vendor != Vendor::Nvidia)
				continue;
			if (d.vendor_index < 0 || static_cast<size_t>(d.vendor_index) >= found.size()) {
				log_error("telemetry: NVML sees " + std::to_string(found.size()) +
				          " NVIDIA devices, none for " + d.device_path + " (vendor index " +
				          std::to_string(d.vendor_index) + "); it counts as busy");
				continue;
			}
			const Found &f = found[static_cast<size_t>(d.vendor_index)];
			devices_.push_back({static_cast<int>(i), f.handle, f.bus_id, 0});
			log_debug("telemetry: " + d.device_path + " is NVML's device at " + f.bus_id);
		}
		return {};
	}

	std::optional<DeviceSample> sample_device(NvmlDevice &device)
	{
		const std::string subject = "nvml:" + device.bus_id;
		NvmlUtilization utilization{};
		NvmlMemory memory{};
		std::string problem;
		if (nvmlReturn_t rc = get_utilization_(device.handle, &utilization); rc != nvml_success)
			problem = "nvmlDeviceGetUtilizationRates failed: " + describe(rc);
		else if (nvmlReturn_t rc2 = get_memory_(device.handle, &memory); rc2 != nvml_success)
			problem = "nvmlDeviceGetMemoryInfo failed: " + describe(rc2);
		if (!problem.empty()) {
			problems_.report(subject, "telemetry: NVIDIA device " + device.bus_id + ": " +
			                                  problem + "; it counts as busy");
			return std::nullopt;
		}
		problems_.clear(subject);
		DeviceSample sample;
		sample.device = device.layout_index;
		sample.busy_percent = std::min(utilization.gpu, 100u);
		sample.memory_used_bytes = memory.used;
		attribute_to_jobs(device, sample);
		return sample;
	}

	// Per-job use from the processes NVML reports. Any query that fails (or
	// a job process whose memory NVML cannot tell) leaves the sample
	// whole-device: a partial attribution would call a busy job idle.
	void attribute_to_jobs(NvmlDevice &device, DeviceSample &sample)
	{
		if (process_lists_.empty() || !get_process_utilization_)
			return;
		std::map<unsigned int, unsigned long long> memory_of_pid;
		for (const ProcessList &list : process_lists_) {
			auto processes = running_processes(list, device);
			if (!processes)
				return;
			for (const NvmlProcess &p : *processes) {
				unsigned long long &m = memory_of_pid[p.pid];
				m = (m == nvml_value_not_available ||
				     p.used_memory == nvml_value_not_available)
				            ? nvml_value_not_available
				            : std::max(m, p.used_memory); // the same process in two lists
			}
		}
		auto sm_of_pid = process_utilization(device);
		if (!sm_of_pid)
			return;

		std::map<unsigned int, std::optional<uint32_t>> job_cache;
		auto job_of = [&](unsigned int pid) {
			auto [it, inserted] = job_cache.try_emplace(pid);
			if (inserted && pid > 0 &&
			    pid <= static_cast<unsigned>(std::numeric_limits<int>::max()))
				if (!(it->second = job_of_pid(proc_root_, static_cast<int>(pid), marks_)))
					it->second = job_of_mps_server(proc_root_, static_cast<int>(pid));
			return it->second;
		};
		std::map<uint32_t, JobUse> jobs;
		for (const auto &[pid, used] : memory_of_pid) {
			const auto job = job_of(pid);
			if (!job)
				continue; // outside any job, or already gone
			if (used == nvml_value_not_available) {
				log_debug("telemetry: NVIDIA device " + device.bus_id +
				          ": no memory figure for pid " + std::to_string(pid) +
				          "; whole-device sample");
				return;
			}
			JobUse &use = jobs[*job];
			use.job = *job;
			use.memory_bytes += used;
		}
		for (const auto &[pid, sm] : *sm_of_pid) {
			if (const auto job = job_of(pid)) {
				JobUse &use = jobs[*job];
				use.job = *job;
				use.busy_percent = std::min(100.0, use.busy_percent + sm);
			}
		}
		if (jobs.size() > max_jobs_per_device)
			return;
		sample.per_job = true;
		for (const auto &entry : jobs)
			sample.jobs.push_back(entry.second);
	}

	std::optional<std::vector<NvmlProcess>> running_processes(const ProcessList &list, NvmlDevice &device)
	{
		// Room for max_processes entries of the larger stride whatever the
		// driver's; bytes it does not write keep the fill pattern.
		constexpr unsigned char fill = 0xA5;
		std::vector<unsigned char> buffer(size_t{max_processes} * process_info_cc_size, fill);
		unsigned int count = max_processes;
		const nvmlReturn_t rc = list.query(device.handle, &count, buffer.data());
		if (rc == nvml_error_not_supported && list.may_be_absent)
			return std::vector<NvmlProcess>{};
		if (rc != nvml_success || count > max_processes) {
			log_debug("telemetry: NVIDIA device " + device.bus_id + ": " + list.name +
			          " failed: " +
			          (rc == nvml_error_insufficient_size
			                   ? "more than " + std::to_string(max_processes) + " processes"
			                   : describe(rc)) +
			          "; whole-device sample");
			return std::nullopt;
		}
		size_t stride = process_info_v2_size;
		if (list.may_grow && count > 0) {
			// Written bytes beyond count * 24 can only come from 32-byte entries.
			size_t written = size_t{count} * process_info_cc_size;
			while (written > 0 && buffer[written - 1] == fill)
				--written;
			if (written > size_t{count} * process_info_v2_size)
				stride = process_info_cc_size;
		}
		std::vector<NvmlProcess> processes;
		for (size_t i = 0; i < count; ++i) {
			NvmlProcess p;
			std::memcpy(&p.pid, buffer.data() + i * stride, sizeof p.pid);
			std::memcpy(&p.used_memory, buffer.data() + i * stride + process_info_memory_offset,
			            sizeof p.used_memory);
			processes.push_back(p);
		}
		return processes;
	}

	// SM use per pid since the previous sample of this device.
	std::optional<std::map<unsigned int, double>> process_utilization(NvmlDevice &device)
	{
		std::vector<NvmlProcessUtilizationSample> buffer(max_processes);
		unsigned int count = max_processes;
		const nvmlReturn_t rc =
		        get_process_utilization_(device.handle, buffer.data(), &count, device.last_seen);
		std::map<unsigned int, double> sm_of_pid;
		if (rc == nvml_error_not_found)
			return sm_of_pid; // nothing ran since last_seen
		if (rc != nvml_success || count > max_processes) {
			log_debug("telemetry: NVIDIA device " + device.bus_id +
			          ": nvmlDeviceGetProcessUtilization failed: " + describe(rc) +
			          "; whole-device sample");
			return std::nullopt;
		}
		// Timestamps are microseconds of the CPU clock. One far in the future
		// (a driver bug) would hide every later sample behind last_seen and
		// make busy jobs look idle, so it is not remembered.
		const unsigned long long latest_plausible = now_microseconds() + 3600ULL * 1000 * 1000;
		for (size_t i = 0; i < count; ++i) {
			const NvmlProcessUtilizationSample &s = buffer[i];
			if (s.time_stamp <= latest_plausible)
				device.last_seen = std::max(device.last_seen, s.time_stamp);
			// Several samples of one process: the busiest, so as never to understate.
			double &sm = sm_of_pid[s.pid];
			sm = std::max(sm, static_cast<double>(std::min(s.sm_util, 100u)));
		}
		return sm_of_pid;
	}

	LibraryHandle library_;
	std::string library_name_;
	std::string proc_root_;
	SlurmMarks marks_;
	bool initialized_ = false;
	NvmlInit init_ = nullptr;
	NvmlShutdown shutdown_ = nullptr;
	NvmlErrorString error_string_ = nullptr;
	NvmlGetCount get_count_ = nullptr;
	NvmlGetHandleByIndex get_handle_ = nullptr;
	NvmlGetPciInfo get_pci_ = nullptr;
	NvmlGetUtilization get_utilization_ = nullptr;
	NvmlGetMemory get_memory_ = nullptr;
	NvmlGetProcessUtilization get_process_utilization_ = nullptr;
	std::vector<ProcessList> process_lists_;
	std::vector<NvmlDevice> devices_;
	ProblemLog problems_;
};

// ---- unsupported vendors -----------------------------------------------------------------------

class UnsupportedBackend final : public TelemetryBackend
{
public:
	explicit UnsupportedBackend(Vendor vendor) : vendor_(vendor) {}
	std::string_view name() const noexcept override { return "unsupported"; }
	Result<std::vector<DeviceSample>> sample() override
	{
		if (!logged_) {
			logged_ = true;
			log_info("telemetry: " + std::string(vendor_name(vendor_)) +
			         " devices: no telemetry backend yet (unsupported); their slices count as "
			         "busy and "
			         "are never lent");
		}
		return std::vector<DeviceSample>{};
	}

private:
	Vendor vendor_;
	bool logged_ = false;
};

} // namespace

std::unique_ptr<TelemetryBackend> make_file_backend(const SliceLayout &layout, std::string dir)
{
	return std::make_unique<FileBackend>(layout, std::move(dir));
}

Result<std::unique_ptr<TelemetryBackend>> make_nvml_backend(const SliceLayout &layout, std::string library,
                                                            std::string proc_root, SlurmMarks marks)
{
	using R = Result<std::unique_ptr<TelemetryBackend>>;
	dlerror();
	LibraryHandle handle(dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL));
	if (!handle) {
		const char *why = dlerror();
		return R::failure("telemetry: cannot load " + library + ": " + (why ? why : "unknown error"));
	}
	auto backend = std::make_unique<NvmlBackend>(std::move(handle), library, std::move(proc_root),
	                                             std::move(marks));
	if (std::string problem = backend->start(layout); !problem.empty())
		return R::failure("telemetry: " + problem);
	return R(std::move(backend));
}

std::unique_ptr<TelemetryBackend> make_unsupported_backend(Vendor vendor)
{
	return std::make_unique<UnsupportedBackend>(vendor);
}

SlurmMarks SlurmMarks::for_node(const std::string &node, const std::string &stepd_path)
{
	SlurmMarks m;
	m.stepd_path = stepd_path;
	if (!stepd_path.empty()) {
		char real[PATH_MAX];
		if (realpath(stepd_path.c_str(), real))
			m.stepd_path = real;
	}
	const std::string any = node.empty() ? "*" : node;
	m.v1_roots = {"/slurm", "/slurm_" + any};
	m.v2_scopes = {"/system.slice/slurmstepd.scope", "/system.slice/" + any + "_slurmstepd.scope"};
	return m;
}

void SlurmMarks::learn_from_slurmd_cgroup(std::string_view self_cgroup_text)
{
	size_t start = 0;
	while (start < self_cgroup_text.size()) {
		size_t end = self_cgroup_text.find('\n', start);
		if (end == std::string_view::npos)
			end = self_cgroup_text.size();
		const std::string_view line = self_cgroup_text.substr(start, end - start);
		start = end + 1;
		if (line.substr(0, 3) != "0::")
			continue;
		const std::string_view path = line.substr(3);
		const auto components = path_components(path);
		if (components.size() < 2 || components.back() != "slurmd" ||
		    !component_matches("*slurmstepd.scope", components[components.size() - 2]) ||
		    path.find('*') != std::string_view::npos)
			continue;
		std::string scope;
		for (size_t i = 0; i + 1 < components.size(); ++i)
			scope += "/" + std::string(components[i]);
		if (std::find(v2_scopes.begin(), v2_scopes.end(), scope) == v2_scopes.end())
			v2_scopes.push_back(scope);
	}
}

SlurmMarks SlurmMarks::for_this_slurmd(const std::string &node, const std::string &stepd_path,
                                       const std::string &proc_root)
{
	SlurmMarks m = for_node(node, stepd_path);
	FileText self = read_bounded(proc_root + "/self/cgroup", max_proc_file);
	if (self.status == FileText::Status::Ok)
		m.learn_from_slurmd_cgroup(self.text);
	return m;
}

std::optional<uint32_t> job_of_cgroup_text(std::string_view text, const SlurmMarks &marks) noexcept
{
	// One line per hierarchy, "ID:controllers:path"; v1 hierarchies may put
	// the process in different cgroups, which must not name different jobs.
	// Named v1 hierarchies (name=systemd) are never Slurm's.
	try {
		std::optional<uint32_t> found;
		size_t start = 0;
		while (start < text.size()) {
			size_t end = text.find('\n', start);
			if (end == std::string_view::npos)
				end = text.size();
			const std::string_view line = text.substr(start, end - start);
			start = end + 1;
			const size_t first = line.find(':');
			const size_t second =
			        first == std::string_view::npos ? first : line.find(':', first + 1);
			if (second == std::string_view::npos)
				continue;
			const std::string_view controllers = line.substr(first + 1, second - first - 1);
			const bool v2 = controllers.empty() && line.substr(0, first) == "0";
			if (!v2 &&
			    (controllers.empty() || controllers.find("name=") != std::string_view::npos))
				continue;
			const auto job = job_of_cgroup_path(line.substr(second + 1), v2, marks);
			if (!job)
				continue;
			if (found && *found != *job)
				return std::nullopt;
			found = job;
		}
		return found;
	} catch (...) {
		return std::nullopt; // out of memory
	}
}

bool is_slurmstepd(const std::string &proc_root, int pid, const SlurmMarks &marks)
{
	if (!runs_as_root(proc_root, pid))
		return false;
	if (marks.stepd_path.empty()) {
		const auto comm = read_comm(proc_root, pid);
		return comm && *comm == "slurmstepd";
	}
	const auto exe = read_exe(proc_root, pid);
	// An executable replaced since it started (a Slurm upgrade) reads "<path> (deleted)".
	return exe && (*exe == marks.stepd_path || *exe == marks.stepd_path + " (deleted)");
}

std::vector<int> pids_of_job(uint32_t job, const std::string &proc_root, const SlurmMarks &marks)
{
	std::vector<int> pids;
	std::unique_ptr<DIR, int (*)(DIR *)> dir(opendir(proc_root.c_str()), closedir);
	if (!dir) {
		log_error("telemetry: cannot list " + proc_root + ": " + std::strerror(errno));
		return pids;
	}
	while (const dirent *entry = readdir(dir.get())) {
		const auto pid = parse_decimal<int>(entry->d_name);
		if (pid && *pid > 0 && is_job_process(proc_root, *pid, job, marks))
			pids.push_back(*pid);
	}
	std::sort(pids.begin(), pids.end());
	return pids;
}

std::optional<uint64_t> process_start_ticks(const std::string &proc_root, int pid)
{
	const FileText stat = read_bounded(proc_root + "/" + std::to_string(pid) + "/stat", 4096);
	if (stat.status != FileText::Status::Ok)
		return std::nullopt;
	// "pid (comm) state ppid ...": comm may hold spaces and ')', so fields
	// count from the last ')'; starttime is field 22, the 20th after it.
	const size_t close = stat.text.rfind(')');
	if (close == std::string::npos)
		return std::nullopt;
	std::vector<std::string_view> fields;
	for (std::string_view f : split(std::string_view(stat.text).substr(close + 1), ' '))
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

namespace
{

// Whether the job now running under `job` is the one a stop ordered at
// `ordered_at` was meant for: one of its slurmstepds was already there.
// No slurmstepd left to tell by: taken as the same job (its processes
// outlived their step).
bool same_incarnation(uint32_t job, const std::string &proc_root, const SlurmMarks &marks,
                      uint64_t ordered_at)
{
	std::unique_ptr<DIR, int (*)(DIR *)> dir(opendir(proc_root.c_str()), closedir);
	if (!dir)
		return true;
	bool any = false;
	while (const dirent *e = readdir(dir.get())) {
		int pid = 0;
		if (!parse_number<int>(e->d_name, pid, 1, std::numeric_limits<int>::max()) ||
		    job_of_pid(proc_root, pid, marks) != job || !is_slurmstepd(proc_root, pid, marks))
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
