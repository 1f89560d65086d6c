// SPDX-License-Identifier: GPL-2.0-or-later
// The processes of Slurm jobs on this node, as /proc shows them: which job a
// process belongs to (its cgroup, or the MPS server a job's prolog started),
// which processes are slurmstepd, and the node-side hard stop that kills
// what is left of a borrower whose grace has run out.
#pragma once

#include "core/io/job_cgroup.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace flexslurm
{

// Which job proc_root/<pid> belongs to, by its cgroup file (job_of_cgroup_text). nullopt if none or
// unreadable (gone).
std::optional<uint32_t> job_of_pid(const std::string &proc_root, int pid, const SlurmMarks &marks);

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
