// SPDX-License-Identifier: GPL-2.0-or-later
// Which device file is which accelerator, taken from Slurm's own GPU records
// where they exist (gres.conf File=/Type=, or what gres/gpu's AutoDetect put
// there), with hwloc only for where a device sits (PCI bus, local CPUs,
// memory) and for devices no record names. gres/vslice cuts the result into
// slices; the SPANK plugin maps Slurm's gpu unit indices through it.
#pragma once

#include "core/io/inventory.hpp"
#include "core/util/result.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

// One gres.conf/AutoDetect record as gres/vslice's node_config_load sees
// it (Slurm's gres_slurmd_conf_t, without Slurm).
struct GresRecord {
	std::string name;      // "gpu"
	std::string type;      // Type=, may be empty
	std::string file;      // File= (may hold a [a-b,c] range) or MultipleFiles= (comma list)
	std::string unique_id; // UniqueId (AutoDetect: MIG-... for MIG instances)
	bool multiple_files = false;
	uint64_t count = 0;
};

// "/dev/nvidia[0-3,5]" -> the files, in order; a plain path -> itself.
// Refuses malformed ranges and more than max_expanded_files files.
constexpr size_t max_expanded_files = 1024;
Result<std::vector<std::string>> expand_device_files(std::string_view file);

// The gpu units of `records` (other GRES names are skipped). Records whose
// files cannot be expanded are reported in `problems` and skipped.
std::vector<GpuUnit> gpu_units_of(const std::vector<GresRecord> &records, std::vector<std::string> &problems);

// What the NVIDIA driver says of one GPU (/proc/driver/nvidia/gpus/<bus>/information).
struct NvidiaGpuInfo {
	std::string pci_bus_id; // "0000:18:00.0", lowercase
	std::string uuid;
	std::string model;
	int minor = -1;
};
std::optional<NvidiaGpuInfo> parse_nvidia_information(std::string_view text);

// Reads every <dir>/*/information; the reader is injected for tests.
using DirReader = std::function<std::vector<std::string>(const std::string &dir)>; // entry names
using FileReader = std::function<std::optional<std::string>(const std::string &path)>;
std::vector<NvidiaGpuInfo> read_nvidia_gpus(const std::string &dir, const DirReader &list,
                                            const FileReader &read);
std::vector<NvidiaGpuInfo> read_nvidia_gpus(const std::string &dir); // the real file system

// `hw`: hwloc's inventory (device_nodes relative to `device_dir`);
// `exclude`: types, UUIDs or PCI bus ids never to slice.
IdentifiedDevices identify_devices(const Inventory &hw, const std::string &device_dir,
                                   const std::vector<GpuUnit> &units,
                                   const std::vector<NvidiaGpuInfo> &nvidia,
                                   const std::vector<std::string> &exclude);

// gres/vslice sees gres/gpu's AutoDetect records only when GresTypes names
// gpu first: the problem in one line, or empty.
std::string gres_types_order_problem(std::string_view gres_types);

// "0000:18:00.0", "18:00.0", "00000000:18:00.0" -> "0000:18:00.0"; empty if malformed.
std::string normalize_pci_bus_id(std::string_view id);

} // namespace flexslurm
