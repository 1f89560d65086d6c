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

// Ascend virtual NPUs (vNPUs: AI Core and memory partitions an admin cuts
// with `npu-smi set -t create-vnpu`) have device files of their own,
// /dev/vdavinci<vNPU id>, beside the whole NPUs' /dev/davinci<N>.
inline constexpr std::string_view vnpu_node_prefix = "vdavinci";
// Whether `path` (absolute or relative) is a vNPU's device file.
bool is_vnpu_node(std::string_view path) noexcept;
// The vNPU id of a vNPU's device file, and the physical NPU (its davinci<N>
// index) it is cut from: npu-smi numbers a chip's vNPUs from
// 100 + 16 x its physical id. nullopt: not a vNPU file name.
struct VnpuId {
	int id = 0;
	int parent = 0;
};
std::optional<VnpuId> vnpu_of_node(std::string_view path) noexcept;

} // namespace flexslurm
