// SPDX-License-Identifier: GPL-2.0-or-later
// The NVML telemetry backend: whole-device use from NVML, dlopen()ed at run
// time, and per-job use from the processes it reports (process_control).
#include "core/io/nvml_abi.hpp"
#include "core/io/vendor_library.hpp"
#include "core/io/process_control.hpp"
#include "core/io/telemetry.hpp"
#include "core/util/throttle.hpp"
#include "core/model/report.hpp"
#include "core/util/log.hpp"

#include <dlfcn.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <tuple>

namespace flexslurm
{
namespace
{

using namespace nvml;

constexpr unsigned max_processes = 1024;

unsigned long long now_microseconds() noexcept
{
	timespec now{};
	clock_gettime(CLOCK_REALTIME, &now);
	return static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
	       static_cast<unsigned long long>(now.tv_nsec / 1000);
}

struct LibraryCloser {
	void operator()(void *handle) const noexcept { dlclose(handle); }
};
using LibraryHandle = std::unique_ptr<void, LibraryCloser>;

template <class F>
F symbol(void *library, const char *name) noexcept
{
	// POSIX guarantees that a dlsym() result converts to a function pointer.
	return reinterpret_cast<F>(dlsym(library, name));
}

struct ProcessList {
	NvmlGetProcesses query = nullptr;
	bool may_grow = false;      // a _v3 query: stride 24 or 32, measured
	bool may_be_absent = false; // MPS: "not supported" on a device without it means none
	const char *name = "";
};

struct NvmlProcess {
	unsigned int pid = 0;
	unsigned long long used_memory = 0;
};

struct NvmlDevice {
	int layout_index = 0;
	nvmlDevice_t handle = nullptr;
	std::string bus_id;
	unsigned long long last_seen = 0; // newest process-utilization sample read
};

class NvmlBackend final : public TelemetryBackend
{
public:
	NvmlBackend(LibraryHandle library, std::string library_name, std::string proc_root, SlurmMarks marks)
	    : library_(std::move(library)), library_name_(std::move(library_name)),
	      proc_root_(std::move(proc_root)), marks_(std::move(marks))
	{
	}
	NvmlBackend(const NvmlBackend &) = delete;
	NvmlBackend &operator=(const NvmlBackend &) = delete;
	~NvmlBackend() override
	{
		if (initialized_)
			shutdown_();
	}

	std::string_view name() const noexcept override { return "nvml"; }

	// Resolves, initialises and matches devices; the error says what failed.
	std::string start(const SliceLayout &layout)
	{
		if (std::string missing = resolve(); !missing.empty())
			return library_name_ + " lacks " + missing;
		if (nvmlReturn_t rc = init_(); rc != nvml_success)
			return "nvmlInit_v2 failed: " + describe(rc);
		initialized_ = true;
		return match_devices(layout);
	}

	Result<std::vector<DeviceSample>> sample() override
	{
		std::vector<DeviceSample> samples;
		for (NvmlDevice &device : devices_)
			if (auto s = sample_device(device))
				samples.push_back(std::move(*s));
		return samples;
	}

private:
	std::string resolve()
	{
		void *lib = library_.get();
		init_ = symbol<NvmlInit>(lib, "nvmlInit_v2");
		shutdown_ = symbol<NvmlShutdown>(lib, "nvmlShutdown");
		error_string_ = symbol<NvmlErrorString>(lib, "nvmlErrorString");
		get_count_ = symbol<NvmlGetCount>(lib, "nvmlDeviceGetCount_v2");
		get_handle_ = symbol<NvmlGetHandleByIndex>(lib, "nvmlDeviceGetHandleByIndex_v2");
		get_pci_ = symbol<NvmlGetPciInfo>(lib, "nvmlDeviceGetPciInfo_v3");
		if (!get_pci_)
			get_pci_ = symbol<NvmlGetPciInfo>(lib, "nvmlDeviceGetPciInfo_v2");
		get_utilization_ = symbol<NvmlGetUtilization>(lib, "nvmlDeviceGetUtilizationRates");
		get_memory_ = symbol<NvmlGetMemory>(lib, "nvmlDeviceGetMemoryInfo");
		get_process_utilization_ =
		        symbol<NvmlGetProcessUtilization>(lib, "nvmlDeviceGetProcessUtilization");
		// Per-job attribution is optional: without these, samples are whole-device.
		for (const char *base :
		     {"nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetMPSComputeRunningProcesses"}) {
			ProcessList list;
			const std::string v3 = std::string(base) + "_v3", v2 = std::string(base) + "_v2";
			if ((list.query = symbol<NvmlGetProcesses>(lib, v3.c_str()))) {
				list.may_grow = true;
			} else {
				list.query = symbol<NvmlGetProcesses>(lib, v2.c_str());
			}
			list.name = base;
			list.may_be_absent = std::string_view(base).find("MPS") != std::string_view::npos;
			if (list.query)
				process_lists_.push_back(list);
		}
		return first_missing({
		        {init_ != nullptr, "nvmlInit_v2"},
		        {shutdown_ != nullptr, "nvmlShutdown"},
		        {get_count_ != nullptr, "nvmlDeviceGetCount_v2"},
		        {get_handle_ != nullptr, "nvmlDeviceGetHandleByIndex_v2"},
		        {get_pci_ != nullptr, "nvmlDeviceGetPciInfo_v3 (or _v2)"},
		        {get_utilization_ != nullptr, "nvmlDeviceGetUtilizationRates"},
		        {get_memory_ != nullptr, "nvmlDeviceGetMemoryInfo"},
		});
	}

	std::string describe(nvmlReturn_t rc) const
	{
		const char *text = error_string_ ? error_string_(rc) : nullptr;
		return (text ? std::string(text) + " " : std::string()) + "(NVML error " +
		       std::to_string(rc) + ")";
	}

	// The layout's NVIDIA device with vendor_index k is the k-th in PCI bus
	// order, as the inventory numbered it. A device whose PCI id NVML cannot
	// tell would shift every later one, so it fails the whole backend.
	std::string match_devices(const SliceLayout &layout)
	{
		unsigned int count = 0;
		if (nvmlReturn_t rc = get_count_(&count); rc != nvml_success)
			return "nvmlDeviceGetCount_v2 failed: " + describe(rc);
		if (count > 1024)
			return "nvmlDeviceGetCount_v2 reports " + std::to_string(count) + " devices";
		struct Found {
			std::tuple<unsigned, unsigned, unsigned, std::string> order;
			nvmlDevice_t handle;
			std::string bus_id;
		};
		std::vector<Found> found;
		for (unsigned int i = 0; i < count; ++i) {
			nvmlDevice_t handle = nullptr;
			if (nvmlReturn_t rc = get_handle_(i, &handle); rc != nvml_success)
				return "NVML device " + std::to_string(i) +
				       ": nvmlDeviceGetHandleByIndex_v2 failed: " + describe(rc);
			NvmlPciInfo pci{};
			if (nvmlReturn_t rc = get_pci_(handle, &pci); rc != nvml_success)
				return "NVML device " + std::to_string(i) +
				       ": cannot read its PCI bus id (so cannot match devices by PCI order): " +
				       describe(rc);
			pci.bus_id_legacy[sizeof pci.bus_id_legacy - 1] = '\0';
			char bus_id[32];
			std::snprintf(bus_id, sizeof bus_id, "%04x:%02x:%02x.0", pci.domain, pci.bus,
			              pci.device);
			found.push_back(
			        {{pci.domain, pci.bus, pci.device, pci.bus_id_legacy}, handle, bus_id});
		}
		std::sort(found.begin(), found.end(),
		          [](const Found &a, const Found &b) { return a.order < b.order; });
		const auto &devices = layout.devices();
		for (size_t i = 0; i < devices.size(); ++i) {
			const DeviceSlices &d = devices[i];
			if (d.vendor != Vendor::Nvidia)
				continue;
			if (d.vendor_index < 0 || static_cast<size_t>(d.vendor_index) >= found.size()) {
				log_error("telemetry: NVML sees " + std::to_string(found.size()) +
				          " NVIDIA devices, none for " + d.device_path + " (vendor index " +
				          std::to_string(d.vendor_index) + "); it counts as busy");
				continue;
			}
			const Found &f = found[static_cast<size_t>(d.vendor_index)];
			devices_.push_back({static_cast<int>(i), f.handle, f.bus_id, 0});
			log_debug("telemetry: " + d.device_path + " is NVML's device at " + f.bus_id);
		}
		return {};
	}

	std::optional<DeviceSample> sample_device(NvmlDevice &device)
	{
		const std::string subject = "nvml:" + device.bus_id;
		NvmlUtilization utilization{};
		NvmlMemory memory{};
		std::string problem;
		if (nvmlReturn_t rc = get_utilization_(device.handle, &utilization); rc != nvml_success)
			problem = "nvmlDeviceGetUtilizationRates failed: " + describe(rc);
		else if (nvmlReturn_t rc2 = get_memory_(device.handle, &memory); rc2 != nvml_success)
			problem = "nvmlDeviceGetMemoryInfo failed: " + describe(rc2);
		if (!problem.empty()) {
			problems_.report(subject, "telemetry: NVIDIA device " + device.bus_id + ": " +
			                                  problem + "; it counts as busy");
			return std::nullopt;
		}
		problems_.clear(subject);
		DeviceSample sample;
		sample.device = device.layout_index;
		sample.busy_percent = std::min(utilization.gpu, 100u);
		sample.memory_used_bytes = memory.used;
		attribute_to_jobs(device, sample);
		return sample;
	}

	// Per-job use from the processes NVML reports. Any query that fails (or
	// a job process whose memory NVML cannot tell) leaves the sample
	// whole-device: a partial attribution would call a busy job idle.
	void attribute_to_jobs(NvmlDevice &device, DeviceSample &sample)
	{
		if (process_lists_.empty() || !get_process_utilization_)
			return;
		std::map<unsigned int, unsigned long long> memory_of_pid;
		for (const ProcessList &list : process_lists_) {
			auto processes = running_processes(list, device);
			if (!processes)
				return;
			for (const NvmlProcess &p : *processes) {
				unsigned long long &m = memory_of_pid[p.pid];
				m = (m == nvml_value_not_available ||
				     p.used_memory == nvml_value_not_available)
				            ? nvml_value_not_available
				            : std::max(m, p.used_memory); // the same process in two lists
			}
		}
		auto sm_of_pid = process_utilization(device);
		if (!sm_of_pid)
			return;

		std::map<unsigned int, std::optional<uint32_t>> job_cache;
		auto job_of = [&](unsigned int pid) {
			auto [it, inserted] = job_cache.try_emplace(pid);
			if (inserted && pid > 0 &&
			    pid <= static_cast<unsigned>(std::numeric_limits<int>::max()))
				if (!(it->second = job_of_pid(proc_root_, static_cast<int>(pid), marks_)))
					it->second = job_of_mps_server(proc_root_, static_cast<int>(pid));
			return it->second;
		};
		std::map<uint32_t, JobUse> jobs;
		for (const auto &[pid, used] : memory_of_pid) {
			const auto job = job_of(pid);
			if (!job)
				continue; // outside any job, or already gone
			if (used == nvml_value_not_available) {
				log_debug("telemetry: NVIDIA device " + device.bus_id +
				          ": no memory figure for pid " + std::to_string(pid) +
				          "; whole-device sample");
				return;
			}
			JobUse &use = jobs[*job];
			use.job = *job;
			use.memory_bytes += used;
		}
		for (const auto &[pid, sm] : *sm_of_pid) {
			if (const auto job = job_of(pid)) {
				JobUse &use = jobs[*job];
				use.job = *job;
				use.busy_percent = std::min(100.0, use.busy_percent + sm);
			}
		}
		if (jobs.size() > max_jobs_per_device)
			return;
		sample.per_job = true;
		for (const auto &entry : jobs)
			sample.jobs.push_back(entry.second);
	}

	std::optional<std::vector<NvmlProcess>> running_processes(const ProcessList &list, NvmlDevice &device)
	{
		// Room for max_processes entries of the larger stride whatever the
		// driver's; bytes it does not write keep the fill pattern.
		constexpr unsigned char fill = 0xA5;
		std::vector<unsigned char> buffer(size_t{max_processes} * process_info_cc_size, fill);
		unsigned int count = max_processes;
		const nvmlReturn_t rc = list.query(device.handle, &count, buffer.data());
		if (rc == nvml_error_not_supported && list.may_be_absent)
			return std::vector<NvmlProcess>{};
		if (rc != nvml_success || count > max_processes) {
			log_debug("telemetry: NVIDIA device " + device.bus_id + ": " + list.name +
			          " failed: " +
			          (rc == nvml_error_insufficient_size
			                   ? "more than " + std::to_string(max_processes) + " processes"
			                   : describe(rc)) +
			          "; whole-device sample");
			return std::nullopt;
		}
		size_t stride = process_info_v2_size;
		if (list.may_grow && count > 0) {
			// Written bytes beyond count * 24 can only come from 32-byte entries.
			size_t written = size_t{count} * process_info_cc_size;
			while (written > 0 && buffer[written - 1] == fill)
				--written;
			if (written > size_t{count} * process_info_v2_size)
				stride = process_info_cc_size;
		}
		std::vector<NvmlProcess> processes;
		for (size_t i = 0; i < count; ++i) {
			NvmlProcess p;
			std::memcpy(&p.pid, buffer.data() + i * stride, sizeof p.pid);
			std::memcpy(&p.used_memory, buffer.data() + i * stride + process_info_memory_offset,
			            sizeof p.used_memory);
			processes.push_back(p);
		}
		return processes;
	}

	// SM use per pid since the previous sample of this device.
	std::optional<std::map<unsigned int, double>> process_utilization(NvmlDevice &device)
	{
		std::vector<NvmlProcessUtilizationSample> buffer(max_processes);
		unsigned int count = max_processes;
		const nvmlReturn_t rc =
		        get_process_utilization_(device.handle, buffer.data(), &count, device.last_seen);
		std::map<unsigned int, double> sm_of_pid;
		if (rc == nvml_error_not_found)
			return sm_of_pid; // nothing ran since last_seen
		if (rc != nvml_success || count > max_processes) {
			log_debug("telemetry: NVIDIA device " + device.bus_id +
			          ": nvmlDeviceGetProcessUtilization failed: " + describe(rc) +
			          "; whole-device sample");
			return std::nullopt;
		}
		// Timestamps are microseconds of the CPU clock. One far in the future
		// (a driver bug) would hide every later sample behind last_seen and
		// make busy jobs look idle, so it is not remembered.
		const unsigned long long latest_plausible = now_microseconds() + 3600ULL * 1000 * 1000;
		for (size_t i = 0; i < count; ++i) {
			const NvmlProcessUtilizationSample &s = buffer[i];
			if (s.time_stamp <= latest_plausible)
				device.last_seen = std::max(device.last_seen, s.time_stamp);
			// Several samples of one process: the busiest, so as never to understate.
			double &sm = sm_of_pid[s.pid];
			sm = std::max(sm, static_cast<double>(std::min(s.sm_util, 100u)));
		}
		return sm_of_pid;
	}

	LibraryHandle library_;
	std::string library_name_;
	std::string proc_root_;
	SlurmMarks marks_;
	bool initialized_ = false;
	NvmlInit init_ = nullptr;
	NvmlShutdown shutdown_ = nullptr;
	NvmlErrorString error_string_ = nullptr;
	NvmlGetCount get_count_ = nullptr;
	NvmlGetHandleByIndex get_handle_ = nullptr;
	NvmlGetPciInfo get_pci_ = nullptr;
	NvmlGetUtilization get_utilization_ = nullptr;
	NvmlGetMemory get_memory_ = nullptr;
	NvmlGetProcessUtilization get_process_utilization_ = nullptr;
	std::vector<ProcessList> process_lists_;
	std::vector<NvmlDevice> devices_;
	ProblemLog problems_;
};

} // namespace

Result<std::unique_ptr<TelemetryBackend>> make_nvml_backend(const SliceLayout &layout, std::string library,
                                                            std::string proc_root, SlurmMarks marks)
{
	using R = Result<std::unique_ptr<TelemetryBackend>>;
	dlerror();
	LibraryHandle handle(dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL));
	if (!handle) {
		const char *why = dlerror();
		return R::failure("telemetry: cannot load " + library + ": " + (why ? why : "unknown error"));
	}
	auto backend = std::make_unique<NvmlBackend>(std::move(handle), library, std::move(proc_root),
	                                             std::move(marks));
	if (std::string problem = backend->start(layout); !problem.empty())
		return R::failure("telemetry: " + problem);
	return R(std::move(backend));
}

} // namespace flexslurm
