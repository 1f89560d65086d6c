#include "core/model/job_env.hpp"

#include "core/util/log.hpp"

#include <algorithm>
#include <map>
#include <tuple>

namespace flexslurm
{

namespace
{

struct HeldDevice {
	const DeviceSlices *device;
	int count;
	int compute_percent() const { return std::min(100, count * device->compute_percent); }
	uint64_t memory_mib() const
	{
		return device->slice_memory_bytes * static_cast<uint64_t>(count) >> 20;
	}
};

std::string join(const std::vector<std::string> &items)
{
	std::string out;
	for (const auto &i : items)
		out += (out.empty() ? "" : ",") + i;
	return out;
}

const char *visible_devices_variable(Vendor v)
{
	switch (v) {
	case Vendor::Nvidia:
		return "CUDA_VISIBLE_DEVICES";
	case Vendor::Amd:
		return "ROCR_VISIBLE_DEVICES";
	case Vendor::Ascend:
		return "ASCEND_RT_VISIBLE_DEVICES";
	}
	return "";
}

} // namespace

std::vector<std::string> owned_variable_names()
{
	return {"SLURM_VSLICES_ON_NODE",        "SLURM_VSLICE_DEVICES",          "SLURM_VSLICE_COUNTS",
	        "SLURM_VSLICE_COMPUTE_PERCENT", "SLURM_VSLICE_MEMORY_LIMIT_MIB", borrowed_variable_name};
}

std::vector<EnvVar> slice_environment(const SliceLayout &layout, const std::vector<int> &held,
                                      DeviceNumbering numbering)
{
	std::vector<HeldDevice> devices; // in layout order
	int total = 0;
	for (int index : held) {
		const DeviceSlices *d = layout.device_of_slice(index);
		if (!d) {
			log_error("slice index " + std::to_string(index) +
			          " is not on this node's layout; ignored");
			continue;
		}
		++total;
		auto it = std::find_if(devices.begin(), devices.end(),
		                       [&](const HeldDevice &h) { return h.device == d; });
		if (it == devices.end())
			devices.push_back({d, 1});
		else
			++it->count;
	}
	// By vendor, then PCI order: the order CUDA (CUDA_DEVICE_ORDER=PCI_BUS_ID),
	// ROCr and Ascend RT number the devices a job can open.
	std::sort(devices.begin(), devices.end(), [](const HeldDevice &a, const HeldDevice &b) {
		return std::tie(a.device->vendor, a.device->vendor_index) <
		       std::tie(b.device->vendor, b.device->vendor_index);
	});

	std::vector<EnvVar> env;
	if (devices.empty())
		return env;

	std::vector<std::string> phys, counts, compute, memory;
	for (const HeldDevice &h : devices) {
		phys.push_back(std::to_string(h.device->vendor_index));
		counts.push_back(std::to_string(h.count));
		compute.push_back(std::to_string(h.compute_percent()));
		memory.push_back(std::to_string(h.memory_mib()));
	}

	for (Vendor v : {Vendor::Nvidia, Vendor::Amd, Vendor::Ascend}) {
		std::vector<std::string> visible, pinned;
		int min_percent = 100;
		bool all_memory_known = true;
		int ordinal = 0; // the device's number inside the job, whatever the numbering
		for (const HeldDevice &h : devices) {
			if (h.device->vendor != v)
				continue;
			visible.push_back(std::to_string(
			        numbering == DeviceNumbering::Local ? ordinal : h.device->vendor_index));
			min_percent = std::min(min_percent, h.compute_percent());
			all_memory_known = all_memory_known && h.memory_mib() > 0;
			pinned.push_back(std::to_string(ordinal) + "=" + std::to_string(h.memory_mib()) +
			                 "M");
			++ordinal;
		}
		if (visible.empty())
			continue;
		env.push_back({visible_devices_variable(v), join(visible)});
		if (v == Vendor::Nvidia) {
			// Our numbering is PCI order; CUDA's default is fastest first.
			env.push_back({"CUDA_DEVICE_ORDER", "PCI_BUS_ID"});
			// MPS takes one percentage per client: the tightest device's.
			env.push_back({"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", std::to_string(min_percent)});
			if (all_memory_known)
				env.push_back({"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", join(pinned)});
		}
	}
	env.push_back({"SLURM_VSLICES_ON_NODE", std::to_string(total)});
	env.push_back({"SLURM_VSLICE_DEVICES", join(phys)});
	env.push_back({"SLURM_VSLICE_COUNTS", join(counts)});
	env.push_back({"SLURM_VSLICE_COMPUTE_PERCENT", join(compute)});
	env.push_back({"SLURM_VSLICE_MEMORY_LIMIT_MIB", join(memory)});
	return env;
}

} // namespace flexslurm
