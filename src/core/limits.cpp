#include "limits.hpp"

#include <algorithm>
#include <charconv>

namespace flexslurm
{

std::vector<DeviceLimit> device_limits(const std::vector<const DeviceSlices *> &held, std::string_view counts)
{
	std::vector<DeviceLimit> out;
	int ordinal[3] = {0, 0, 0};
	size_t pos = 0;
	for (const DeviceSlices *d : held) {
		const size_t end = std::min(counts.find(',', pos), counts.size());
		int count = 0;
		const auto item = pos < counts.size() ? counts.substr(pos, end - pos) : std::string_view();
		auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), count);
		pos = end + 1;
		if (ec != std::errc() || p != item.data() + item.size() || count < 1 || count > d->slices)
			continue; // not a count gres/vslice wrote: no limit from it
		DeviceLimit l;
		l.device = d;
		l.ordinal = ordinal[static_cast<int>(d->vendor)]++;
		l.compute_percent = std::min(100, count * d->compute_percent);
		l.memory_mib = (d->slice_memory_bytes * static_cast<uint64_t>(count)) >> 20;
		out.push_back(l);
	}
	return out;
}

std::vector<EnvVar> preload_environment(const std::vector<DeviceLimit> &limits, const std::string &library,
                                        std::string_view current_ld_preload)
{
	std::vector<EnvVar> env;
	if (limits.empty())
		return env;
	std::string preload = library;
	if (!current_ld_preload.empty() && current_ld_preload.find(library) == std::string_view::npos)
		preload += ":" + std::string(current_ld_preload);
	else if (!current_ld_preload.empty())
		preload = std::string(current_ld_preload);
	env.push_back({"LD_PRELOAD", preload});
	int sm = 100;
	for (const DeviceLimit &l : limits) {
		sm = std::min(sm, l.compute_percent);
		if (l.memory_mib)
			env.push_back({"CUDA_DEVICE_MEMORY_LIMIT_" + std::to_string(l.ordinal),
			               std::to_string(l.memory_mib) + "m"});
	}
	env.push_back({"CUDA_DEVICE_SM_LIMIT", std::to_string(sm)});
	return env;
}

std::string mps_limit_commands(const std::vector<DeviceLimit> &limits)
{
	std::string out;
	int percent = 100;
	for (const DeviceLimit &l : limits) {
		percent = std::min(percent, l.compute_percent);
		if (l.memory_mib)
			out += "set_default_device_pinned_mem_limit " + std::to_string(l.ordinal) + " " +
			       std::to_string(l.memory_mib) + "M\n";
	}
	if (!limits.empty())
		out = "set_default_active_thread_percentage " + std::to_string(percent) + "\n" + out;
	return out;
}

} // namespace flexslurm
