// SPDX-License-Identifier: GPL-2.0-or-later
// SliceLayout::build: from the hwloc inventory and the YAML rules. Apart
// from the rest of the layout so that readers of a saved layout (the SPANK
// plugin) need neither hwloc nor libyaml.
#include "core/model/slice_layout.hpp"

#include "core/io/device_identity.hpp"
#include "core/io/inventory.hpp"
#include "core/util/log.hpp"

namespace flexslurm
{

SliceLayout SliceLayout::build(const IdentifiedDevices &found, const Config &config, const DeviceProbe &probe)
{
	SliceLayout layout;
	int next = 0;
	for (const Accelerator &a : found.sliced) {
		const SliceRule &rule = config.rule_for(a);
		DeviceSlices d;
		d.vendor = a.vendor;
		d.vendor_index = a.vendor_index;
		d.model = a.model;
		d.device_path = a.device_nodes.at(0);
		d.uuid = a.uuid;
		d.pci_bus_id = a.pci_bus_id;
		std::string why;
		auto id = probe(d.device_path, why);
		if (!id) {
			log_error("device " + (a.pci_bus_id.empty() ? d.device_path : a.pci_bus_id) + " (" +
			          std::string(vendor_name(a.vendor)) + " " + a.model + "): " + d.device_path +
			          ": " + why + "; its slices are not offered");
			continue;
		}
		d.device_id = *id;
		d.cpus = a.cpus;
		d.first_slice = next;
		d.slices = rule.slices;
		d.compute_percent = rule.compute_percent;
		const uint64_t mem = rule.device_memory_bytes ? rule.device_memory_bytes : a.memory_bytes;
		if (mem == 0)
			log_error(
			        "device " + (a.pci_bus_id.empty() ? d.device_path : a.pci_bus_id) + " (" +
			        std::string(vendor_name(a.vendor)) + " " + a.model +
			        "): memory size unknown (hwloc reports none): its slices get no memory share and no memory limit; set slicing.classes[].device_memory for this model in flexslurm.yaml");
		d.slice_memory_bytes = mem * static_cast<uint64_t>(rule.memory_percent) / 100;
		const uint64_t reserved = d.slice_memory_bytes * static_cast<uint64_t>(rule.slices);
		d.borrow_memory_bytes =
		        mem > reserved ? (mem - reserved) / static_cast<uint64_t>(rule.slices) : 0;
		next += d.slices;
		layout.devices_.push_back(std::move(d));
	}
	layout.gpu_units_ = found.gpu_units;
	layout.unsliced_ = found.unsliced;
	return layout;
}

SliceLayout SliceLayout::build(const Inventory &inventory, const Config &config,
                               const std::string &device_dir, const DeviceProbe &probe)
{
	return build(identify_devices(inventory, device_dir, {}, {}, config.exclude), config, probe);
}

} // namespace flexslurm
