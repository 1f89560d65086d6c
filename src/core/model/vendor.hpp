// SPDX-License-Identifier: GPL-2.0-or-later
// Accelerator vendors and the device nodes every job on them needs. Kept
// apart from the hwloc inventory so that the SPANK plugin, which srun and
// sbatch load too, can use it without pulling in hwloc.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

enum class Vendor { Nvidia, Amd, Ascend };

std::string_view vendor_name(Vendor vendor) noexcept;
std::optional<Vendor> parse_vendor(std::string_view name) noexcept;

// Device nodes every job on a device of this vendor needs besides the
// device's own nodes (driver control nodes), relative to the device dir.
std::vector<std::string> vendor_control_nodes(Vendor vendor);

} // namespace flexslurm
