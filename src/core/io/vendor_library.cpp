#include "core/io/vendor_library.hpp"

#include "core/io/process_control.hpp"
#include "core/model/report.hpp"
#include "core/util/log.hpp"

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <map>
#include <set>

namespace flexslurm
{

Result<LoadedLibrary> load_first_library(const std::vector<std::string> &candidates)
{
	std::string tried, last_error = "no library named";
	for (const std::string &name : candidates) {
		dlerror();
		if (void *handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL))
			return LoadedLibrary{VendorLibraryHandle(handle), name};
		const char *why = dlerror();
		last_error = why ? why : "unknown error";
		tried += (tried.empty() ? "" : ", ") + name;
	}
	return Result<LoadedLibrary>::failure("cannot load " + tried + ": " + last_error);
}

std::string pci_bus_id(uint64_t domain, unsigned bus, unsigned device, unsigned function)
{
	char text[40];
	std::snprintf(text, sizeof text, "%04" PRIx64 ":%02x:%02x.%x", domain, bus & 0xffu, device & 0x1fu,
	              function & 0x7u);
	return text;
}

std::vector<MatchedDevice> match_library_devices(const SliceLayout &layout, Vendor vendor,
                                                 std::vector<LibraryDevice> found,
                                                 const std::string &library_label)
{
	std::sort(found.begin(), found.end(),
	          [](const LibraryDevice &a, const LibraryDevice &b) { return a.bus_id < b.bus_id; });
	std::vector<MatchedDevice> matched;
	const auto &devices = layout.devices();
	for (size_t i = 0; i < devices.size(); ++i) {
		const DeviceSlices &d = devices[i];
		if (d.vendor != vendor)
			continue;
		std::string wanted = d.pci_bus_id;
		std::transform(wanted.begin(), wanted.end(), wanted.begin(),
		               [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
		const LibraryDevice *hit = nullptr;
		if (!wanted.empty()) {
			for (const LibraryDevice &f : found)
				if (f.bus_id == wanted)
					hit = &f;
			if (!hit) {
				log_error("telemetry: " + library_label + " has no device at " + wanted +
				          " (" + d.device_path + "); it counts as busy");
				continue;
			}
		} else if (d.vendor_index >= 0 && static_cast<size_t>(d.vendor_index) < found.size()) {
			hit = &found[static_cast<size_t>(d.vendor_index)];
		} else {
			log_error("telemetry: " + library_label + " sees " + std::to_string(found.size()) +
			          " " + std::string(vendor_name(vendor)) + " devices, none for " +
			          d.device_path + " (vendor index " + std::to_string(d.vendor_index) +
			          "); it counts as busy");
			continue;
		}
		matched.push_back({static_cast<int>(i), hit->key, hit->bus_id});
		log_debug("telemetry: " + d.device_path + " is " + library_label + "'s device at " +
		          hit->bus_id);
	}
	return matched;
}

void attribute_processes(const std::vector<LibraryProcess> &processes, const std::string &proc_root,
                         const SlurmMarks &marks, DeviceSample &sample)
{
	std::map<unsigned, std::optional<uint32_t>> job_cache;
	std::map<uint32_t, JobUse> jobs;
	std::set<uint32_t> share_unknown; // jobs with a process whose busy share is not told
	for (const LibraryProcess &p : processes) {
		auto [it, inserted] = job_cache.try_emplace(p.pid);
		if (inserted && p.pid > 0 && p.pid <= static_cast<unsigned>(std::numeric_limits<int>::max()))
			it->second = job_of_pid(proc_root, static_cast<int>(p.pid), marks);
		if (!it->second)
			continue; // outside any job, or already gone
		JobUse &use = jobs[*it->second];
		use.job = *it->second;
		use.memory_bytes += p.memory_bytes;
		if (p.busy_percent)
			use.busy_percent =
			        std::min(100.0, use.busy_percent + std::clamp(*p.busy_percent, 0.0, 100.0));
		else
			share_unknown.insert(use.job);
	}
	if (jobs.size() > max_jobs_per_device)
		return;
	if (!share_unknown.empty()) {
		if (jobs.size() > 1)
			return; // whole-device: which of them is busy cannot be told
		jobs.begin()->second.busy_percent = sample.busy_percent;
	}
	sample.per_job = true;
	sample.jobs.clear();
	for (const auto &entry : jobs)
		sample.jobs.push_back(entry.second);
}

} // namespace flexslurm
