// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/inventory.hpp"

#include "core/util/log.hpp"

#include <hwloc.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <memory>
#include <tuple>

namespace flexslurm
{

namespace
{

// Which PCI functions are accelerators. Vendors also make NICs, audio
// functions and switches, so the class decides as much as the vendor.
std::optional<Vendor> classify(uint16_t vendor_id, uint16_t class_id)
{
	const bool display = (class_id >> 8) == 0x03; // VGA, 3D, other display
	switch (vendor_id) {
	case pci_vendor_nvidia:
		if (display)
			return Vendor::Nvidia;
		break;
	case pci_vendor_amd:
		if (display)
			return Vendor::Amd;
		break;
	case pci_vendor_huawei:
		if (class_id == 0x1200) // processing accelerator
			return Vendor::Ascend;
		break;
	default:
		break;
	}
	return std::nullopt;
}

void append_bitmap(hwloc_const_bitmap_t set, std::vector<unsigned> &out)
{
	for (int i = hwloc_bitmap_first(set); i >= 0; i = hwloc_bitmap_next(set, i))
		out.push_back(static_cast<unsigned>(i));
}

// hwloc info values come from files an admin or a vendor library wrote.
uint64_t parse_kib(const std::string &s)
{
	uint64_t v = 0;
	for (char c : s) {
		if (c < '0' || c > '9' || v > (UINT64_MAX / 1024 - 9) / 10)
			return 0;
		v = v * 10 + static_cast<uint64_t>(c - '0');
	}
	return v * 1024;
}

struct TopologyDeleter {
	void operator()(hwloc_topology *t) const noexcept { hwloc_topology_destroy(t); }
};
using TopologyPtr = std::unique_ptr<hwloc_topology, TopologyDeleter>;

std::string info(hwloc_obj_t obj, const char *name)
{
	const char *v = hwloc_obj_get_info_by_name(obj, name);
	return v ? v : "";
}

Accelerator describe(hwloc_topology *topo, hwloc_obj_t pci, Vendor vendor)
{
	Accelerator a;
	a.vendor = vendor;
	const auto &p = pci->attr->pcidev;
	char busid[32];
	std::snprintf(busid, sizeof busid, "%04x:%02x:%02x.%01x", static_cast<unsigned>(p.domain),
	              static_cast<unsigned>(p.bus), static_cast<unsigned>(p.dev),
	              static_cast<unsigned>(p.func));
	a.pci_bus_id = busid;
	a.pci_vendor_id = p.vendor_id;
	a.pci_device_id = p.device_id;

	if (hwloc_obj_t host = hwloc_get_non_io_ancestor_obj(topo, pci)) {
		if (host->cpuset)
			append_bitmap(host->cpuset, a.cpus);
		if (host->nodeset && hwloc_bitmap_weight(host->nodeset) == 1)
			a.numa_node = hwloc_bitmap_first(host->nodeset);
	}

	a.model_name = info(pci, "PCIDevice");
	for (hwloc_obj_t os = pci->io_first_child; os; os = os->next_sibling) {
		if (os->type != HWLOC_OBJ_OS_DEVICE || !os->name)
			continue;
		const std::string name = os->name;
		if (std::string m = info(os, "GPUModel"); !m.empty())
			a.model_name = m;
		if (a.uuid.empty()) {
			a.uuid = info(os, "NVIDIAUUID");
			if (a.uuid.empty())
				a.uuid = info(os, "AMDUUID");
		}
		for (const char *key : {"CUDAGlobalMemorySize", "OpenCLGlobalMemorySize"}) {
			const std::string kb = info(os, key);
			if (a.memory_bytes == 0)
				a.memory_bytes = parse_kib(kb);
		}
		// hwloc's NVML OS devices ("nvml0") carry no minor number:
		// NVIDIA nodes are named from the PCI order below.
		if (vendor == Vendor::Amd && name.rfind("renderD", 0) == 0)
			a.device_nodes.insert(a.device_nodes.begin(), "dri/" + name);
		else if (vendor == Vendor::Amd && name.rfind("card", 0) == 0)
			a.device_nodes.push_back("dri/" + name);
	}
	a.model = gres_type_for(vendor, a.model_name, a.pci_device_id);
	return a;
}

Result<Inventory> discover(hwloc_topology *raw, const std::string &what)
{
	TopologyPtr topo(raw);
	hwloc_topology_set_io_types_filter(topo.get(), HWLOC_TYPE_FILTER_KEEP_ALL);
	if (hwloc_topology_load(topo.get()) != 0)
		return Result<Inventory>::failure("hwloc could not load " + what);

	Inventory inv;
	for (hwloc_obj_t pci = hwloc_get_next_pcidev(topo.get(), nullptr); pci;
	     pci = hwloc_get_next_pcidev(topo.get(), pci)) {
		const auto &p = pci->attr->pcidev;
		if (auto vendor = classify(p.vendor_id, p.class_id))
			inv.accelerators.push_back(describe(topo.get(), pci, *vendor));
	}

	// Vendor runtimes number devices in PCI bus order (CUDA with
	// CUDA_DEVICE_ORDER=PCI_BUS_ID, which the job environment sets).
	std::stable_sort(inv.accelerators.begin(), inv.accelerators.end(),
	                 [](const Accelerator &a, const Accelerator &b) {
		                 return std::tie(a.vendor, a.pci_bus_id) < std::tie(b.vendor, b.pci_bus_id);
	                 });
	int index = 0;
	for (size_t i = 0; i < inv.accelerators.size(); ++i) {
		Accelerator &a = inv.accelerators[i];
		if (i > 0 && inv.accelerators[i - 1].vendor != a.vendor)
			index = 0;
		a.vendor_index = index++;
		if (a.device_nodes.empty() ||
		    (a.vendor == Vendor::Amd && a.device_nodes[0].rfind("dri/renderD", 0) != 0)) {
			// No OS device from a vendor backend: the driver's usual names.
			const std::string n = std::to_string(a.vendor_index);
			switch (a.vendor) {
			case Vendor::Nvidia:
				a.device_nodes = {"nvidia" + n};
				break;
			case Vendor::Amd:
				a.device_nodes.insert(a.device_nodes.begin(),
				                      "dri/renderD" + std::to_string(128 + a.vendor_index));
				break;
			case Vendor::Ascend:
				a.device_nodes = {"davinci" + n};
				break;
			}
		}
	}
	log_debug(what + ": " + std::to_string(inv.accelerators.size()) + " accelerator(s)");
	return inv;
}

} // namespace

Result<Inventory> Inventory::from_xml_file(const std::string &path)
{
	hwloc_topology *raw = nullptr;
	if (hwloc_topology_init(&raw) != 0)
		return Result<Inventory>::failure("hwloc_topology_init failed");
	if (hwloc_topology_set_xml(raw, path.c_str()) != 0) {
		hwloc_topology_destroy(raw);
		return Result<Inventory>::failure("cannot read hwloc XML topology " + path);
	}
	return discover(raw, "hwloc XML topology " + path);
}

Result<Inventory> Inventory::from_live_system()
{
	hwloc_topology *raw = nullptr;
	if (hwloc_topology_init(&raw) != 0)
		return Result<Inventory>::failure("hwloc_topology_init failed");
	return discover(raw, "live hwloc topology");
}

} // namespace flexslurm
