// Node-side telemetry for idle reclaim: how busy each accelerator is and,
// where the vendor library can tell, which Slurm job uses how much of it.
// slurmd samples a backend periodically; a device a backend cannot read is
// absent from the sample, and the caller treats it as busy, so every failure
// here errs on the side of never lending a slice that is in use.
#pragma once

#include "core/util/result.hpp"
#include "core/model/slice_layout.hpp"
#include "core/model/vendor.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

struct JobUse {
	uint32_t job = 0;          // Slurm job id
	double busy_percent = 0;   // that job's share of the device's compute, 0..100
	uint64_t memory_bytes = 0; // device memory that job's processes hold
};

struct DeviceSample {
	int device = 0;                 // index into SliceLayout::devices()
	double busy_percent = 0;        // whole device, 0..100
	uint64_t memory_used_bytes = 0; // whole device
	// true: `jobs` attributes all use by Slurm jobs (jobs absent from it use
	// nothing); use by processes outside any job shows only in the whole-device
	// figures above.
	bool per_job = false;
	std::vector<JobUse> jobs;
};

class TelemetryBackend
{
public:
	virtual ~TelemetryBackend() = default;
	virtual std::string_view name() const noexcept = 0;
	// One sample of every device the backend can read. Devices it cannot read are simply absent
	// (the caller treats them as busy); a failure of the whole backend is an error value.
	virtual Result<std::vector<DeviceSample>> sample() = 0;
};

// Reads <dir>/<basename of the device's path> for each device of the layout (e.g. dir/nvidia0):
//   busy 3                          whole device busy %, 0..100 (required)
//   memory_mib 1024                 whole device memory used, MiB (optional, default 0)
//   job 12 busy 0 memory_mib 512    any number (at most 1024); one or more: per_job = true
// with blank lines and # comments. A malformed or oversized (> 64 KiB) file leaves its device out
// of the sample, with one log_error line (repeated problems of the same file: debug only); a missing
// file leaves it out quietly (debug). A missing directory fails the whole sample.
std::unique_ptr<TelemetryBackend> make_file_backend(const SliceLayout &layout, std::string dir);

// What tells Slurm's own processes and job cgroups on this node from a user's, by what a user cannot
// forge: never a process name (a user can name a process "slurmstepd") and never the end of a cgroup
// path (a user can make ".../x-slurmstepd.scope/job_5" or ".../uid_1/job_5" in a cgroup tree delegated
// to them).
struct SlurmMarks {
	// slurmstepd's file as /proc/<pid>/exe resolves it (slurmd's slurmstepd: Slurm's SBINDIR, or
	// slurmd -d). A process is a slurmstepd only if it runs that file and all its uids are 0; with
	// "" (not known), only if its comm is "slurmstepd" and all its uids are 0.
	std::string stepd_path;
	// cgroup v1 (controller lines, never a named hierarchy such as name=systemd): the cgroup Slurm's
	// job cgroups hang from, anchored at the controller's root (CgroupPrepend):
	// "<root>/uid_U/job_J/...". A component may hold one '*' (any characters, or none).
	std::vector<std::string> v1_roots;
	// cgroup v2 (the "0::" line): slurmstepd's scope, anchored at the root of the process's cgroup
	// namespace: "<scope>/job_J/...". A component may hold one '*'.
	std::vector<std::string> v2_scopes;

	// Slurm's layouts for `node` ("" = not known: any node's): v1 "/slurm" and "/slurm_<node>",
	// v2 "/system.slice/slurmstepd.scope" and "/system.slice/<node>_slurmstepd.scope";
	// `stepd_path` resolved to its real file when it exists.
	static SlurmMarks for_node(const std::string &node, const std::string &stepd_path);
	// Adds the scope slurmd lives in under cgroup v2, from slurmd's own /proc/self/cgroup: Slurm's
	// cgroup/v2 moves slurmd into "<scope>/slurmd", the one place that also says where the scope is
	// in a container or with another CgroupSlice. Nothing if slurmd is not in such a place.
	void learn_from_slurmd_cgroup(std::string_view self_cgroup_text);
	// for_node(), and what proc_root/self/cgroup of the calling slurmd teaches.
	static SlurmMarks for_this_slurmd(const std::string &node, const std::string &stepd_path,
	                                  const std::string &proc_root = "/proc");
};

// NVIDIA through NVML, dlopen()ed at run time (no build dependency). Error value if the library
// cannot be loaded, nvmlInit fails, or a device's PCI bus id cannot be read (the layout's NVIDIA
// device with vendor_index k is NVML's k-th in PCI bus order, which an unreadable device would
// shift). Only the layout's NVIDIA devices are sampled; per-job use comes from the processes NVML
// reports, attributed to jobs through proc_root/<pid>/cgroup.
Result<std::unique_ptr<TelemetryBackend>> make_nvml_backend(const SliceLayout &layout,
                                                            std::string library = "libnvidia-ml.so.1",
                                                            std::string proc_root = "/proc",
                                                            SlurmMarks marks = SlurmMarks::for_node("", ""));

// AMD and Ascend: a backend that logs once, through log_info, "telemetry: <vendor> devices: no telemetry
// backend yet (unsupported); their slices count as busy and are never lent" and returns an empty sample.
std::unique_ptr<TelemetryBackend> make_unsupported_backend(Vendor vendor);

// Which Slurm job a process belongs to, from the text of /proc/<pid>/cgroup: the cgroup v1 controller
// lines and the v2 line whose paths are Slurm's job cgroups by `marks` ("4:memory:/slurm/uid_0/job_42/
// step_0/task_0", "4:cpuset:/slurm_n1/uid_0/job_42/step_batch",
// "0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0"). nullopt if none, or if lines disagree.
std::optional<uint32_t> job_of_cgroup_text(std::string_view text,
                                           const SlurmMarks &marks = SlurmMarks::for_node("", "")) noexcept;

// The job whose MPS server `pid` is: its parent is root's nvidia-cuda-mps-control started by the
// SPANK job prolog with CUDA_MPS_PIPE_DIRECTORY = <job_dir>/<job>/mps-pipe (NVML names the server,
// not the job's processes, in its utilization samples). nullopt for anything else.
std::optional<uint32_t> job_of_mps_server(const std::string &proc_root, int pid);

// Whether proc_root/<pid> is a slurmstepd by `marks` (its exe and its uids).
bool is_slurmstepd(const std::string &proc_root, int pid, const SlurmMarks &marks);

// Processes of a job on this machine (scan proc_root/<pid>/cgroup), never a slurmstepd and never the
// calling process. Sorted.
std::vector<int> pids_of_job(uint32_t job, const std::string &proc_root, const SlurmMarks &marks);

// SIGKILLs pids_of_job(job); returns how many were signalled. Used for the node-side hard stop of a
// borrower whose grace has run out. Each process is pinned (pidfd) and checked again before the
// signal, so that a pid reused in between is never hit.
// `ordered_at` (boot_ticks_now() when the stop was first ordered; 0: no check): a job whose
// slurmstepds all started after it is another job under the same id (the controller started over,
// `slurmctld -c`) and is left alone (0 killed, one log line).
int kill_job_processes(uint32_t job, const std::string &proc_root, const SlurmMarks &marks,
                       uint64_t ordered_at = 0);

// When proc_root/<pid> started, in clock ticks after boot (/proc/<pid>/stat field 22).
std::optional<uint64_t> process_start_ticks(const std::string &proc_root, int pid);
// Now, on the same clock (CLOCK_BOOTTIME in clock ticks).
uint64_t boot_ticks_now();

} // namespace flexslurm
