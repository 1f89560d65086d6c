// SPDX-License-Identifier: GPL-2.0-or-later
// Device isolation at launch: a private view of the device directory that
// shows only the nodes a job may see (core/model/isolation_plan), and the
// check that the devices cgroup fences the others. Used by the SPANK plugin
// in slurmstepd, before privileges drop.
#pragma once

#include "core/model/isolation_plan.hpp"
#include "core/util/result.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

// In a new mount namespace of the calling process, covers `dir` with a
// tmpfs that shows every entry of the original except `hidden` (absolute
// paths under `dir`, also inside subdirectories). Mounts do not propagate
// back to the host.
Result<bool> enter_private_device_view(const std::string &dir, const std::vector<std::string> &hidden);

// Opens each path: true when every open is refused with EPERM, i.e. the
// devices cgroup denies them. `unfenced` gets the ones that opened.
bool devices_cgroup_denies(const std::vector<std::string> &paths, std::vector<std::string> &unfenced);

} // namespace flexslurm
