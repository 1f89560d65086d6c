// SPDX-License-Identifier: GPL-2.0-or-later
// The node's accelerators as plain data: what discovery finds (hwloc,
// core/io/inventory.hpp; Slurm's gpu records, core/io/device_identity.hpp)
// and what the slice layout and the config's rules are applied to. No
// discovery here, so that model code can use these types without hwloc.
#pragma once

#include "core/model/vendor.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

constexpr uint16_t pci_vendor_nvidia = 0x10de;
constexpr uint16_t pci_vendor_amd = 0x1002;
constexpr uint16_t pci_vendor_huawei = 0x19e5;

struct Accelerator {
	Vendor vendor = Vendor::Nvidia;
	std::string pci_bus_id; // "0000:18:00.0"
	uint16_t pci_vendor_id = 0;
	uint16_t pci_device_id = 0;
	std::string model_name; // as the vendor library reports it, may be empty
	std::string model;      // GRES type: short lowercase token ("h100")
	// Index the vendor runtime (CUDA, ROCr, Ascend RT) gives the device on
	// the host: PCI bus order within the vendor.
	int vendor_index = 0;
	int numa_node = -1;         // -1: unknown
	std::vector<unsigned> cpus; // OS indices of the PUs local to the device
	// Device nodes of this device, relative to the device dir ("nvidia0",
	// "dri/renderD128"); the first is the one a GRES unit is bound to.
	std::vector<std::string> device_nodes;
	std::string uuid;
	uint64_t memory_bytes = 0; // 0: hwloc could not tell
};

// One unit of Slurm's gpu GRES on this node: unit indices are the order of
// the records, one per file (MultipleFiles: one per record), which is what
// Slurm puts in SLURM_JOB_GPUS / SLURM_STEP_GPUS.
struct GpuUnit {
	int unit = 0;
	std::string path; // the accelerator's device node (for MIG: its parent GPU's)
	std::string type;
	std::string unique_id;
	bool mig = false; // a MIG instance: its parent GPU is never sliced
};

// The node's accelerators as gres/vslice slices them.
struct IdentifiedDevices {
	// Devices to slice, in Slurm's gpu unit order first (so that slurmctld
	// can pair the n-th sliced device of a type with the n-th gpu unit of
	// that type), then devices no record names, in PCI order. Each has
	// device_nodes = {its device file (absolute)}, model = the GRES type.
	std::vector<Accelerator> sliced;
	// Accelerator device nodes that are never sliced (MIG mode, excluded
	// by the admin), absolute paths.
	std::vector<std::string> unsliced;
	std::vector<GpuUnit> gpu_units;
	// One line per device: type, file, UUID, PCI bus id, and where each came from.
	std::vector<std::string> report;
};

// GRES type for a device: from the model name where known ("NVIDIA H100 80GB
// HBM3" -> "h100"), else from the PCI device id, else the vendor name.
std::string gres_type_for(Vendor vendor, std::string_view model_name, uint16_t pci_device_id);

} // namespace flexslurm
