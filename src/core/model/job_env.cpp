// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/job_env.hpp"

#include "core/util/log.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <map>

namespace flexslurm
{

namespace
{

constexpr const char *slices_variable = "SLURM_VSLICES_ON_NODE";
constexpr const char *counts_variable = "SLURM_VSLICE_COUNTS";
constexpr const char *positions_variable = "SLURM_VSLICE_POSITIONS";
constexpr const char *compute_variable = "SLURM_VSLICE_COMPUTE_PERCENT";
constexpr const char *memory_variable = "SLURM_VSLICE_MEMORY_LIMIT_MIB";
constexpr size_t max_env_devices = 1024;
constexpr uint64_t max_env_memory_mib = uint64_t{1} << 40;

template <class T>
std::string join(const std::vector<T> &items)
{
	std::string out;
	for (const auto &i : items) {
		if (!out.empty())
			out += ',';
		if constexpr (std::is_same_v<T, std::string>)
			out += i;
		else
			out += std::to_string(i);
	}
	return out;
}

// A value as an error message shows it: short, control bytes as '?'.
std::string shown_value(std::string_view value)
{
	return shown(value, {.quote = true, .max_chars = 32, .keep_high_bytes = true, .replacement = '?'});
}

// A comma list of numbers in [lo, hi]: empty, or why not.
template <class T>
std::string decode_list(const char *name, std::string_view value, T lo, T hi, std::vector<T> &out,
                        char separator = ',')
{
	const auto items = split(value, separator);
	if (items.size() > max_env_devices)
		return std::string(name) + ": more than " + std::to_string(max_env_devices) + " entries";
	for (size_t i = 0; i < items.size(); ++i) {
		T v{};
		if (!parse_number(items[i], v, lo, hi))
			return std::string(name) + ": entry " + std::to_string(i + 1) + " " +
			       shown_value(items[i]) + " is not a number from " + std::to_string(lo) +
			       " to " + std::to_string(hi);
		out.push_back(v);
	}
	return "";
}

// SLURM_VSLICE_POSITIONS: per device of SLURM_VSLICE_DEVICES, its slices' positions joined
// by '+', ascending, as many as its count. Empty, or why not.
std::string decode_positions(std::string_view value, SliceEnv &env)
{
	const auto items = split(value, ',');
	const std::string name = positions_variable;
	if (items.size() != env.devices.size())
		return name + ": " + std::to_string(items.size()) + " entries for the " +
		       std::to_string(env.devices.size()) + " devices of " + devices_variable_name;
	for (size_t i = 0; i < items.size(); ++i) {
		std::vector<int> held;
		const std::string device = name + " device " + std::to_string(i + 1);
		const std::string why =
		        decode_list(device.c_str(), items[i], 0, max_slices_per_device - 1, held, '+');
		if (!why.empty())
			return why;
		for (size_t k = 1; k < held.size(); ++k)
			if (held[k] <= held[k - 1])
				return name + ": entry " + std::to_string(i + 1) + " " +
				       shown_value(items[i]) + " is not in ascending order";
		if (i < env.counts.size() && held.size() != static_cast<size_t>(env.counts[i]))
			return name + ": entry " + std::to_string(i + 1) + " " + shown_value(items[i]) +
			       " names " + std::to_string(held.size()) + " slices for a count of " +
			       std::to_string(env.counts[i]);
		env.positions.push_back(std::move(held));
	}
	return "";
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
	return {slices_variable,    devices_variable_name, vendors_variable_name, counts_variable,
	        positions_variable, compute_variable,      memory_variable,       borrowed_variable_name};
}

std::vector<EnvVar> SliceEnv::encode() const
{
	std::vector<EnvVar> env;
	if (devices.empty())
		return env;
	env.push_back({slices_variable, std::to_string(slices)});
	env.push_back({devices_variable_name, join(devices)});
	if (!vendors.empty()) {
		std::vector<std::string> names;
		for (Vendor v : vendors)
			names.emplace_back(vendor_name(v));
		env.push_back({vendors_variable_name, join(names)});
	}
	env.push_back({counts_variable, join(counts)});
	if (!positions.empty()) {
		std::vector<std::string> lists;
		for (const auto &p : positions) {
			std::string l;
			for (int s : p)
				l += (l.empty() ? "" : "+") + std::to_string(s);
			lists.push_back(l);
		}
		env.push_back({positions_variable, join(lists)});
	}
	env.push_back({compute_variable, join(compute_percent)});
	env.push_back({memory_variable, join(memory_mib)});
	if (borrowed)
		env.push_back({borrowed_variable_name, "1"});
	return env;
}

Result<SliceEnv> SliceEnv::decode(const EnvLookup &lookup)
{
	auto get = [&](const char *name) { return lookup(name).value_or(""); };
	SliceEnv env;
	const std::string devices = get(devices_variable_name);
	std::string why = devices.empty() ? ""
	                                  : decode_list(devices_variable_name, devices, 0, max_vendor_index,
	                                                env.devices);
	auto same_length = [&](const char *name, size_t n) {
		if (why.empty() && n != env.devices.size())
			why = std::string(name) + ": " + std::to_string(n) + " entries for the " +
			      std::to_string(env.devices.size()) + " devices of " + devices_variable_name;
	};
	const std::string vendors = get(vendors_variable_name);
	if (why.empty() && !vendors.empty()) {
		const auto items = split(vendors, ',');
		for (size_t i = 0; i < items.size() && why.empty() && i < max_env_devices; ++i) {
			if (auto v = parse_vendor(items[i]))
				env.vendors.push_back(*v);
			else
				why = std::string(vendors_variable_name) + ": entry " +
				      std::to_string(i + 1) + " " + shown_value(items[i]) +
				      " is not nvidia, amd or ascend";
		}
		if (why.empty() && items.size() != env.devices.size())
			why = std::string(vendors_variable_name) + ": " + std::to_string(items.size()) +
			      " entries for the " + std::to_string(env.devices.size()) + " devices of " +
			      devices_variable_name;
	}
	const std::string counts = get(counts_variable);
	if (why.empty() && !counts.empty()) {
		why = decode_list(counts_variable, counts, 1, max_slices_per_device, env.counts);
		same_length(counts_variable, env.counts.size());
	}
	const std::string positions = get(positions_variable);
	if (why.empty() && !positions.empty())
		why = decode_positions(positions, env);
	const std::string compute = get(compute_variable);
	if (why.empty() && !compute.empty()) {
		why = decode_list(compute_variable, compute, 1, 100, env.compute_percent);
		same_length(compute_variable, env.compute_percent.size());
	}
	const std::string memory = get(memory_variable);
	if (why.empty() && !memory.empty()) {
		why = decode_list(memory_variable, memory, uint64_t{0}, max_env_memory_mib, env.memory_mib);
		same_length(memory_variable, env.memory_mib.size());
	}
	const std::string slices = get(slices_variable);
	if (why.empty() && !slices.empty()) {
		int sum = 0;
		for (int c : env.counts)
			sum += c;
		if (!parse_number(slices, env.slices, 1, 1 << 20))
			why = std::string(slices_variable) + ": " + shown_value(slices) +
			      " is not a number from 1 to " + std::to_string(1 << 20);
		else if (!env.counts.empty() && env.slices != sum)
			why = std::string(slices_variable) + ": " + shown_value(slices) +
			      " is not the sum of " + counts_variable + " (" + std::to_string(sum) + ")";
	}
	const std::string borrowed = get(borrowed_variable_name);
	if (why.empty() && !borrowed.empty() && borrowed != "1")
		why = std::string(borrowed_variable_name) + ": " + shown_value(borrowed) + " is not 1";
	env.borrowed = !borrowed.empty();
	if (!why.empty())
		return Result<SliceEnv>::failure(why);
	return env;
}

std::vector<HeldSlices> held_slices(const SliceLayout &layout, const std::vector<int> &held)
{
	std::map<const DeviceSlices *, std::vector<int>> count;
	for (int index : held) {
		const DeviceSlices *d = layout.device_of_slice(index);
		if (!d) {
			log_error("slice index " + std::to_string(index) +
			          " is not on this node's layout; ignored");
			continue;
		}
		auto &positions = count[d];
		if (std::find(positions.begin(), positions.end(), index - d->first_slice) == positions.end())
			positions.push_back(index - d->first_slice);
	}
	// By vendor, then PCI order: the order CUDA (CUDA_DEVICE_ORDER=PCI_BUS_ID),
	// ROCr and Ascend RT number the devices a job can open.
	std::vector<HeldSlices> out;
	for (const DeviceSlices *d : layout.devices_in_pci_order())
		if (auto it = count.find(d); it != count.end()) {
			std::sort(it->second.begin(), it->second.end());
			out.push_back({d, static_cast<int>(it->second.size()), it->second});
		}
	return out;
}

std::vector<EnvVar> slice_environment(const SliceLayout &layout, const std::vector<int> &held,
                                      DeviceNumbering numbering, bool borrowed)
{
	const std::vector<HeldSlices> devices = held_slices(layout, held);
	std::vector<EnvVar> env;
	if (devices.empty())
		return env;

	SliceEnv slice_env;
	slice_env.borrowed = borrowed;
	// Vendors only on a mixed node, where the vendor indices alone are ambiguous.
	const auto &all = layout.devices();
	const bool mixed = std::any_of(all.begin(), all.end(),
	                               [&](const DeviceSlices &d) { return d.vendor != all.front().vendor; });
	for (const HeldSlices &h : devices) {
		slice_env.slices += h.count;
		slice_env.devices.push_back(h.device->vendor_index);
		if (mixed)
			slice_env.vendors.push_back(h.device->vendor);
		slice_env.counts.push_back(h.count);
		slice_env.positions.push_back(h.positions);
		slice_env.compute_percent.push_back(h.device->share_percent(h.count));
		slice_env.memory_mib.push_back(h.device->share_mib(h.count));
	}

	for (Vendor v : {Vendor::Nvidia, Vendor::Amd, Vendor::Ascend}) {
		std::vector<std::string> visible, pinned;
		int min_percent = 100;
		bool all_memory_known = true;
		int ordinal = 0; // the device's number inside the job, whatever the numbering
		for (const HeldSlices &h : devices) {
			if (h.device->vendor != v)
				continue;
			visible.push_back(std::to_string(
			        numbering == DeviceNumbering::Local ? ordinal : h.device->vendor_index));
			min_percent = std::min(min_percent, h.device->share_percent(h.count));
			all_memory_known = all_memory_known && h.device->share_mib(h.count) > 0;
			pinned.push_back(std::to_string(ordinal) + "=" +
			                 std::to_string(h.device->share_mib(h.count)) + "M");
			++ordinal;
		}
		if (visible.empty())
			continue;
		env.push_back({visible_devices_variable(v), join(visible)});
		if (v == Vendor::Ascend) {
			// vNPUs by their ids, as Ascend's container runtime and device plugin
			// name them (ASCEND_VISIBLE_DEVICES with ASCEND_RUNTIME_OPTIONS=VIRTUAL).
			std::vector<int> vnpus;
			size_t ascend = 0;
			for (const HeldSlices &h : devices)
				if (h.device->vendor == v && ++ascend && is_vnpu_node(h.device->device_path))
					vnpus.push_back(h.device->vendor_index);
			if (!vnpus.empty())
				env.push_back({"ASCEND_VISIBLE_DEVICES", join(vnpus)});
			if (!vnpus.empty() && vnpus.size() == ascend)
				env.push_back({"ASCEND_RUNTIME_OPTIONS", "VIRTUAL"});
		}
		if (v == Vendor::Nvidia) {
			// Our numbering is PCI order; CUDA's default is fastest first.
			env.push_back({"CUDA_DEVICE_ORDER", "PCI_BUS_ID"});
			// MPS takes one percentage per client: the tightest device's.
			env.push_back({"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", std::to_string(min_percent)});
			if (all_memory_known)
				env.push_back({"CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", join(pinned)});
		}
	}
	for (EnvVar &v : slice_env.encode())
		env.push_back(std::move(v));
	return env;
}

std::vector<int> with_earlier_slices(const SliceLayout &layout, const SliceEnv &earlier,
                                     std::vector<int> held)
{
	const auto named = layout.devices_named(earlier.devices, earlier.vendors);
	for (size_t i = 0; i < named.size() && i < earlier.counts.size(); ++i) {
		const DeviceSlices *d = named[i];
		if (!d || earlier.counts[i] > d->slices)
			continue;
		const bool has_some = std::any_of(held.begin(), held.end(), [&](int s) {
			return s >= d->first_slice && s < d->first_slice + d->slices;
		});
		if (has_some)
			continue;
		if (i < earlier.positions.size()) {
			for (int p : earlier.positions[i])
				if (p < d->slices)
					held.push_back(d->first_slice + p);
			continue;
		}
		for (int s = d->first_slice; s < d->first_slice + earlier.counts[i]; ++s)
			held.push_back(s);
	}
	std::sort(held.begin(), held.end());
	return held;
}

} // namespace flexslurm
