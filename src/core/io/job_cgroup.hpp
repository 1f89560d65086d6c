// SPDX-License-Identifier: GPL-2.0-or-later
// Which Slurm job a process belongs to, from its cgroup paths, and what tells
// Slurm's job cgroups and slurmstepd apart from what a user makes. The
// matching is plain text work; SlurmMarks' constructors read the system
// (slurmstepd's real path, slurmd's own cgroup), hence this layer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

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

// Which Slurm job a process belongs to, from the text of /proc/<pid>/cgroup: the cgroup v1 controller
// lines and the v2 line whose paths are Slurm's job cgroups by `marks` ("4:memory:/slurm/uid_0/job_42/
// step_0/task_0", "4:cpuset:/slurm_n1/uid_0/job_42/step_batch",
// "0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0"). nullopt if none, or if lines disagree.
std::optional<uint32_t> job_of_cgroup_text(std::string_view text,
                                           const SlurmMarks &marks = SlurmMarks::for_node("", "")) noexcept;

} // namespace flexslurm
