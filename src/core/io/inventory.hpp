// Accelerator inventory: which accelerators a node has, where they sit
// (NUMA node, local CPUs), which device nodes belong to each and which index
// the vendor runtime gives them. Read from hwloc (the live system, or an
// hwloc XML topology that an admin pinned or a test ships). gres/vslice, and
// later select/flex and the SPANK plugin, all take their view of the
// hardware from here.
#pragma once

#include "core/util/result.hpp"
#include "core/model/vendor.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

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

struct Inventory {
	// Sorted by vendor, then vendor_index.
	std::vector<Accelerator> accelerators;

	static Result<Inventory> from_xml_file(const std::string &path);
	static Result<Inventory> from_live_system();
};

// GRES type for a device: from the model name where known ("NVIDIA H100 80GB
// HBM3" -> "h100"), else from the PCI device id, else the vendor name.
std::string gres_type_for(Vendor vendor, std::string_view model_name, uint16_t pci_device_id);

} // namespace flexslurm
