// SPDX-License-Identifier: GPL-2.0-or-later
// The AMD telemetry backend: GPU busy % and VRAM used from AMD SMI, or from
// ROCm SMI where only that is installed, both dlopen()ed at run time, and
// per-job use from the processes (KFD's list) they report (vendor_library.hpp).
#include "core/io/amdsmi_abi.hpp"
#include "core/io/telemetry.hpp"
#include "core/io/vendor_library.hpp"
#include "core/util/log.hpp"
#include "core/util/throttle.hpp"

#include <time.h>

#include <algorithm>
#include <functional>
#include <map>

namespace flexslurm
{
namespace
{

constexpr uint32_t max_sockets = 64;
constexpr uint32_t max_processors_per_socket = 16;
constexpr uint32_t max_processes = 1024;

uint64_t monotonic_ns() noexcept
{
	timespec now{};
	clock_gettime(CLOCK_MONOTONIC, &now);
	return static_cast<uint64_t>(now.tv_sec) * 1000000000ULL + static_cast<uint64_t>(now.tv_nsec);
}

// "TEXT (LIBRARY error RC)", TEXT from the library's own status-to-string
// function when it has one and knows rc: AMD SMI and ROCm SMI alike.
template <typename Status>
std::string describe_smi_rc(Status (*status_string)(Status, const char **), int rc, Status success,
                            const char *library)
{
	const char *text = nullptr;
	if (status_string && status_string(static_cast<Status>(rc), &text) != success)
		text = nullptr;
	return (text ? std::string(text) + " " : std::string()) + "(" + library + " error " +
	       std::to_string(rc) + ")";
}

// ---- AMD SMI ---------------------------------------------------------------------------------

class AmdSmiBackend final : public TelemetryBackend
{
public:
	AmdSmiBackend(LoadedLibrary library, std::string proc_root, SlurmMarks marks,
	              std::function<uint64_t()> clock_ns)
	    : library_(std::move(library)), proc_root_(std::move(proc_root)), marks_(std::move(marks)),
	      clock_ns_(clock_ns ? std::move(clock_ns) : monotonic_ns)
	{
	}
	AmdSmiBackend(const AmdSmiBackend &) = delete;
	AmdSmiBackend &operator=(const AmdSmiBackend &) = delete;
	~AmdSmiBackend() override
	{
		if (initialized_)
			shut_down_();
	}

	std::string_view name() const noexcept override { return "amd_smi"; }

	std::string start(const SliceLayout &layout)
	{
		using namespace amdsmi;
		if (std::string missing = resolve(); !missing.empty())
			return library_.name + " lacks " + missing + " (AMD SMI too old, or not AMD SMI)";
		AmdsmiVersion version{};
		if (amdsmi_status_t rc = get_version_(&version); rc != amdsmi_success)
			return "amdsmi_get_lib_version failed: " + describe_rc(rc);
		const std::string v = std::to_string(version.year) + "." + std::to_string(version.major) +
		                      "." + std::to_string(version.minor) + "." +
		                      std::to_string(version.release);
		if (version.year < amdsmi_min_year)
			return library_.name + " is AMD SMI " + v + ", too old (need " +
			       std::to_string(amdsmi_min_year) + ".0 or later)";
		per_process_ = get_processes_ && version.year <= amdsmi_proc_info_max_year;
		if (amdsmi_status_t rc = init_(amdsmi_init_amd_gpus); rc != amdsmi_success)
			return "amdsmi_init failed: " + describe_rc(rc);
		initialized_ = true;
		log_info(
		        "telemetry: AMD GPUs through " + library_.name + " (AMD SMI " + v + ")" +
		        (per_process_ ? ""
		         : get_processes_
		                 ? "; its process list layout is not one this build reads: whole-device samples"
		                 : "; no process list: whole-device samples"));
		return match(layout);
	}

	Result<std::vector<DeviceSample>> sample() override
	{
		std::vector<DeviceSample> samples;
		for (Device &device : devices_)
			if (auto s = sample_device(device))
				samples.push_back(std::move(*s));
		return samples;
	}

private:
	struct Device {
		int layout_index = 0;
		amdsmi::amdsmi_handle handle = nullptr;
		std::string bus_id;
		std::map<uint32_t, std::pair<uint64_t, uint64_t>> last_gfx; // pid -> (gfx ns, at ns)
	};

	std::string resolve()
	{
		using namespace amdsmi;
		void *lib = library_.handle.get();
		init_ = library_symbol<AmdsmiInit>(lib, "amdsmi_init");
		shut_down_ = library_symbol<AmdsmiShutDown>(lib, "amdsmi_shut_down");
		get_version_ = library_symbol<AmdsmiGetLibVersion>(lib, "amdsmi_get_lib_version");
		status_string_ = library_symbol<AmdsmiStatusString>(lib, "amdsmi_status_code_to_string");
		get_sockets_ = library_symbol<AmdsmiGetSockets>(lib, "amdsmi_get_socket_handles");
		get_processors_ = library_symbol<AmdsmiGetProcessors>(lib, "amdsmi_get_processor_handles");
		get_bdf_ = library_symbol<AmdsmiGetBdf>(lib, "amdsmi_get_gpu_device_bdf");
		get_activity_ = library_symbol<AmdsmiGetActivity>(lib, "amdsmi_get_gpu_activity");
		get_memory_ = library_symbol<AmdsmiGetMemoryUsage>(lib, "amdsmi_get_gpu_memory_usage");
		get_processes_ = library_symbol<AmdsmiGetProcessList>(lib, "amdsmi_get_gpu_process_list");
		return first_missing({
		        {init_ != nullptr, "amdsmi_init"},
		        {shut_down_ != nullptr, "amdsmi_shut_down"},
		        {get_version_ != nullptr, "amdsmi_get_lib_version"},
		        {get_sockets_ != nullptr, "amdsmi_get_socket_handles"},
		        {get_processors_ != nullptr, "amdsmi_get_processor_handles"},
		        {get_bdf_ != nullptr, "amdsmi_get_gpu_device_bdf"},
		        {get_activity_ != nullptr, "amdsmi_get_gpu_activity"},
		        {get_memory_ != nullptr, "amdsmi_get_gpu_memory_usage"},
		});
	}

	std::string describe_rc(int rc) const
	{
		return describe_smi_rc(status_string_, rc, amdsmi::amdsmi_success, "AMD SMI");
	}

	std::string match(const SliceLayout &layout)
	{
		using namespace amdsmi;
		std::vector<amdsmi_handle> sockets(max_sockets);
		uint32_t socket_count = max_sockets;
		if (amdsmi_status_t rc = get_sockets_(&socket_count, sockets.data()); rc != amdsmi_success)
			return "amdsmi_get_socket_handles failed: " + describe_rc(rc);
		if (socket_count > max_sockets)
			return "amdsmi_get_socket_handles reports " + std::to_string(socket_count) +
			       " sockets";
		std::vector<amdsmi_handle> all;
		std::vector<LibraryDevice> found;
		for (uint32_t s = 0; s < socket_count; ++s) {
			std::vector<amdsmi_handle> processors(max_processors_per_socket);
			uint32_t count = max_processors_per_socket;
			if (amdsmi_status_t rc = get_processors_(sockets[s], &count, processors.data());
			    rc != amdsmi_success)
				return "amdsmi_get_processor_handles failed: " + describe_rc(rc);
			if (count > max_processors_per_socket)
				return "amdsmi_get_processor_handles reports " + std::to_string(count) +
				       " processors on one socket";
			for (uint32_t p = 0; p < count; ++p) {
				uint64_t bdf = 0;
				if (amdsmi_status_t rc = get_bdf_(processors[p], &bdf); rc != amdsmi_success)
					return "GPU " + std::to_string(all.size()) +
					       ": cannot read its PCI bus id (so cannot match devices): " +
					       describe_rc(rc);
				found.push_back({pci_bus_id(bdf_domain(bdf), bdf_bus(bdf), bdf_device(bdf),
				                            bdf_function(bdf)),
				                 all.size()});
				all.push_back(processors[p]);
			}
		}
		for (const MatchedDevice &m : match_library_devices(layout, Vendor::Amd, found, "AMD SMI"))
			devices_.push_back({m.layout_index, all[m.key], m.bus_id, {}});
		return {};
	}

	std::optional<DeviceSample> sample_device(Device &device)
	{
		using namespace amdsmi;
		const std::string subject = "amd_smi:" + device.bus_id;
		AmdsmiEngineUsage activity{};
		uint64_t used = 0;
		std::string problem;
		if (amdsmi_status_t rc = get_activity_(device.handle, &activity); rc != amdsmi_success)
			problem = "amdsmi_get_gpu_activity failed: " + describe_rc(rc);
		else if (amdsmi_status_t rc2 = get_memory_(device.handle, amdsmi_mem_type_vram, &used);
		         rc2 != amdsmi_success)
			problem = "amdsmi_get_gpu_memory_usage (VRAM) failed: " + describe_rc(rc2);
		if (!problem.empty()) {
			problems_.report(subject, "telemetry: AMD device " + device.bus_id + ": " + problem +
			                                  "; it counts as busy");
			return std::nullopt;
		}
		problems_.clear(subject);
		DeviceSample sample;
		sample.device = device.layout_index;
		sample.busy_percent = std::min(activity.gfx_activity, 100u);
		sample.memory_used_bytes = used;
		if (per_process_)
			attribute(device, sample);
		return sample;
	}

	// Each process's busy share: its graphics-engine time since the previous sample over the time
	// between them (unknown for a process seen the first time).
	void attribute(Device &device, DeviceSample &sample)
	{
		using namespace amdsmi;
		buffer_.assign(max_processes, AmdsmiProcInfo{});
		uint32_t count = max_processes;
		const amdsmi_status_t rc = get_processes_(device.handle, &count, buffer_.data());
		if (rc != amdsmi_success || count > max_processes) {
			log_debug("telemetry: AMD device " + device.bus_id +
			          ": amdsmi_get_gpu_process_list failed: " + describe_rc(rc) +
			          "; whole-device sample");
			return;
		}
		const uint64_t now = clock_ns_();
		std::map<uint32_t, std::pair<uint64_t, uint64_t>> seen;
		std::vector<LibraryProcess> processes;
		for (uint32_t i = 0; i < count; ++i) {
			const AmdsmiProcInfo &p = buffer_[i];
			LibraryProcess lp{p.pid, p.memory_usage.vram_mem ? p.memory_usage.vram_mem : p.mem,
			                  std::nullopt};
			if (auto last = device.last_gfx.find(p.pid);
			    last != device.last_gfx.end() && p.engine_usage.gfx >= last->second.first &&
			    now > last->second.second)
				lp.busy_percent = std::min(
				        100.0,
				        100.0 * static_cast<double>(p.engine_usage.gfx - last->second.first) /
				                static_cast<double>(now - last->second.second));
			seen[p.pid] = {p.engine_usage.gfx, now};
			processes.push_back(lp);
		}
		device.last_gfx = std::move(seen);
		attribute_processes(processes, proc_root_, marks_, sample);
	}

	LoadedLibrary library_;
	std::string proc_root_;
	SlurmMarks marks_;
	std::function<uint64_t()> clock_ns_;
	bool initialized_ = false;
	bool per_process_ = false;
	amdsmi::AmdsmiInit init_ = nullptr;
	amdsmi::AmdsmiShutDown shut_down_ = nullptr;
	amdsmi::AmdsmiGetLibVersion get_version_ = nullptr;
	amdsmi::AmdsmiStatusString status_string_ = nullptr;
	amdsmi::AmdsmiGetSockets get_sockets_ = nullptr;
	amdsmi::AmdsmiGetProcessors get_processors_ = nullptr;
	amdsmi::AmdsmiGetBdf get_bdf_ = nullptr;
	amdsmi::AmdsmiGetActivity get_activity_ = nullptr;
	amdsmi::AmdsmiGetMemoryUsage get_memory_ = nullptr;
	amdsmi::AmdsmiGetProcessList get_processes_ = nullptr;
	std::vector<Device> devices_;
	std::vector<amdsmi::AmdsmiProcInfo> buffer_;
	ProblemLog problems_;
};

// ---- ROCm SMI --------------------------------------------------------------------------------

class RocmSmiBackend final : public TelemetryBackend
{
public:
	RocmSmiBackend(LoadedLibrary library, std::string proc_root, SlurmMarks marks)
	    : library_(std::move(library)), proc_root_(std::move(proc_root)), marks_(std::move(marks))
	{
	}
	RocmSmiBackend(const RocmSmiBackend &) = delete;
	RocmSmiBackend &operator=(const RocmSmiBackend &) = delete;
	~RocmSmiBackend() override
	{
		if (initialized_)
			shut_down_();
	}

	std::string_view name() const noexcept override { return "rocm_smi"; }

	std::string start(const SliceLayout &layout)
	{
		using namespace rsmi;
		if (std::string missing = resolve(); !missing.empty())
			return library_.name + " lacks " + missing + " (ROCm SMI too old, or not ROCm SMI)";
		RsmiVersion version{};
		if (rsmi_status_t rc = get_version_(&version); rc != rsmi_success)
			return "rsmi_version_get failed: " + describe_rc(rc);
		const std::string v = std::to_string(version.major) + "." + std::to_string(version.minor) +
		                      "." + std::to_string(version.patch);
		if (version.major < rsmi_min_major)
			return library_.name + " is ROCm SMI " + v + ", too old (need " +
			       std::to_string(rsmi_min_major) + ".0 or later)";
		if (rsmi_status_t rc = init_(0); rc != rsmi_success)
			return "rsmi_init failed: " + describe_rc(rc);
		initialized_ = true;
		log_info("telemetry: AMD GPUs through " + library_.name + " (ROCm SMI " + v + ")");
		return match(layout);
	}

	Result<std::vector<DeviceSample>> sample() override
	{
		auto processes = processes_by_device();
		std::vector<DeviceSample> samples;
		for (const Device &device : devices_)
			if (auto s = sample_device(device, processes))
				samples.push_back(std::move(*s));
		return samples;
	}

private:
	struct Device {
		int layout_index = 0;
		uint32_t index = 0;
		std::string bus_id;
	};

	std::string resolve()
	{
		using namespace rsmi;
		void *lib = library_.handle.get();
		init_ = library_symbol<RsmiInit>(lib, "rsmi_init");
		shut_down_ = library_symbol<RsmiShutDown>(lib, "rsmi_shut_down");
		get_version_ = library_symbol<RsmiVersionGet>(lib, "rsmi_version_get");
		status_string_ = library_symbol<RsmiStatusString>(lib, "rsmi_status_string");
		num_devices_ = library_symbol<RsmiNumDevices>(lib, "rsmi_num_monitor_devices");
		pci_id_ = library_symbol<RsmiPciId>(lib, "rsmi_dev_pci_id_get");
		busy_ = library_symbol<RsmiBusyPercent>(lib, "rsmi_dev_busy_percent_get");
		memory_ = library_symbol<RsmiMemoryUsage>(lib, "rsmi_dev_memory_usage_get");
		processes_ = library_symbol<RsmiProcesses>(lib, "rsmi_compute_process_info_get");
		process_gpus_ = library_symbol<RsmiProcessGpus>(lib, "rsmi_compute_process_gpus_get");
		process_on_device_ =
		        library_symbol<RsmiProcessOnDevice>(lib, "rsmi_compute_process_info_by_device_get");
		return first_missing({
		        {init_ != nullptr, "rsmi_init"},
		        {shut_down_ != nullptr, "rsmi_shut_down"},
		        {get_version_ != nullptr, "rsmi_version_get"},
		        {num_devices_ != nullptr, "rsmi_num_monitor_devices"},
		        {pci_id_ != nullptr, "rsmi_dev_pci_id_get"},
		        {busy_ != nullptr, "rsmi_dev_busy_percent_get"},
		        {memory_ != nullptr, "rsmi_dev_memory_usage_get"},
		});
	}

	std::string describe_rc(int rc) const
	{
		return describe_smi_rc(status_string_, rc, rsmi::rsmi_success, "ROCm SMI");
	}

	std::string match(const SliceLayout &layout)
	{
		using namespace rsmi;
		uint32_t count = 0;
		if (rsmi_status_t rc = num_devices_(&count); rc != rsmi_success)
			return "rsmi_num_monitor_devices failed: " + describe_rc(rc);
		if (count > 1024)
			return "rsmi_num_monitor_devices reports " + std::to_string(count) + " devices";
		std::vector<LibraryDevice> found;
		for (uint32_t i = 0; i < count; ++i) {
			uint64_t bdfid = 0;
			if (rsmi_status_t rc = pci_id_(i, &bdfid); rc != rsmi_success)
				return "GPU " + std::to_string(i) +
				       ": cannot read its PCI bus id (so cannot match devices): " +
				       describe_rc(rc);
			found.push_back({pci_bus_id(bdfid_domain(bdfid), amdsmi::bdf_bus(bdfid),
			                            amdsmi::bdf_device(bdfid), amdsmi::bdf_function(bdfid)),
			                 i});
		}
		for (const MatchedDevice &m : match_library_devices(layout, Vendor::Amd, found, "ROCm SMI"))
			devices_.push_back({m.layout_index, static_cast<uint32_t>(m.key), m.bus_id});
		return {};
	}

	// KFD's compute processes by device index; nullopt if they cannot be told (whole-device samples).
	std::optional<std::map<uint32_t, std::vector<LibraryProcess>>> processes_by_device()
	{
		using namespace rsmi;
		if (!processes_ || (!process_on_device_ && !process_gpus_))
			return std::nullopt;
		std::vector<RsmiProcessInfo> list(max_processes);
		uint32_t count = max_processes;
		if (rsmi_status_t rc = processes_(list.data(), &count);
		    rc != rsmi_success || count > max_processes) {
			log_debug("telemetry: rsmi_compute_process_info_get failed: " + describe_rc(rc) +
			          "; whole-device samples");
			return std::nullopt;
		}
		std::map<uint32_t, std::vector<LibraryProcess>> by_device;
		for (uint32_t i = 0; i < count; ++i) {
			const RsmiProcessInfo &p = list[i];
			for (const Device &d : devices_) {
				if (process_on_device_) {
					RsmiProcessInfo on{};
					const rsmi_status_t rc =
					        process_on_device_(p.process_id, d.index, &on);
					if (rc == rsmi_not_found)
						continue; // not on this device
					if (rc != rsmi_success)
						return std::nullopt;
					by_device[d.index].push_back({p.process_id, on.vram_usage,
					                              static_cast<double>(on.cu_occupancy)});
					continue;
				}
				uint32_t gpus[64] = {};
				uint32_t n = 64;
				if (rsmi_status_t rc = process_gpus_(p.process_id, gpus, &n);
				    rc == rsmi_not_found)
					break; // gone since
				else if (rc != rsmi_success || n > 64)
					return std::nullopt;
				// The process's figures are for all its devices: each of them gets them
				// whole.
				if (std::find(gpus, gpus + n, d.index) != gpus + n)
					by_device[d.index].push_back({p.process_id, p.vram_usage,
					                              static_cast<double>(p.cu_occupancy)});
			}
		}
		return by_device;
	}

	std::optional<DeviceSample>
	sample_device(const Device &device,
	              const std::optional<std::map<uint32_t, std::vector<LibraryProcess>>> &processes)
	{
		using namespace rsmi;
		const std::string subject = "rocm_smi:" + device.bus_id;
		uint32_t busy = 0;
		uint64_t used = 0;
		std::string problem;
		if (rsmi_status_t rc = busy_(device.index, &busy); rc != rsmi_success)
			problem = "rsmi_dev_busy_percent_get failed: " + describe_rc(rc);
		else if (rsmi_status_t rc2 = memory_(device.index, rsmi_mem_type_vram, &used);
		         rc2 != rsmi_success)
			problem = "rsmi_dev_memory_usage_get (VRAM) failed: " + describe_rc(rc2);
		if (!problem.empty()) {
			problems_.report(subject, "telemetry: AMD device " + device.bus_id + ": " + problem +
			                                  "; it counts as busy");
			return std::nullopt;
		}
		problems_.clear(subject);
		DeviceSample sample;
		sample.device = device.layout_index;
		sample.busy_percent = std::min(busy, 100u);
		sample.memory_used_bytes = used;
		if (processes) {
			auto mine = processes->find(device.index);
			attribute_processes(mine == processes->end() ? std::vector<LibraryProcess>{}
			                                             : mine->second,
			                    proc_root_, marks_, sample);
		}
		return sample;
	}

	LoadedLibrary library_;
	std::string proc_root_;
	SlurmMarks marks_;
	bool initialized_ = false;
	rsmi::RsmiInit init_ = nullptr;
	rsmi::RsmiShutDown shut_down_ = nullptr;
	rsmi::RsmiVersionGet get_version_ = nullptr;
	rsmi::RsmiStatusString status_string_ = nullptr;
	rsmi::RsmiNumDevices num_devices_ = nullptr;
	rsmi::RsmiPciId pci_id_ = nullptr;
	rsmi::RsmiBusyPercent busy_ = nullptr;
	rsmi::RsmiMemoryUsage memory_ = nullptr;
	rsmi::RsmiProcesses processes_ = nullptr;
	rsmi::RsmiProcessGpus process_gpus_ = nullptr;
	rsmi::RsmiProcessOnDevice process_on_device_ = nullptr;
	std::vector<Device> devices_;
	ProblemLog problems_;
};

} // namespace

Result<std::unique_ptr<TelemetryBackend>> make_amd_backend(const SliceLayout &layout,
                                                           const AmdLibraries &libraries,
                                                           std::string proc_root, SlurmMarks marks,
                                                           std::function<uint64_t()> clock_ns)
{
	using R = Result<std::unique_ptr<TelemetryBackend>>;
	std::string amd_smi_problem;
	if (auto library = load_first_library(libraries.amd_smi)) {
		auto backend =
		        std::make_unique<AmdSmiBackend>(std::move(*library), proc_root, marks, clock_ns);
		amd_smi_problem = backend->start(layout);
		if (amd_smi_problem.empty())
			return R(std::move(backend));
	} else {
		amd_smi_problem = library.error();
	}
	if (auto library = load_first_library(libraries.rocm_smi)) {
		log_info("telemetry: AMD SMI: " + amd_smi_problem + "; trying ROCm SMI");
		auto backend = std::make_unique<RocmSmiBackend>(std::move(*library), std::move(proc_root),
		                                                std::move(marks));
		if (std::string problem = backend->start(layout); !problem.empty())
			return R::failure("telemetry: " + problem + " (and AMD SMI: " + amd_smi_problem +
			                  ")");
		return R(std::move(backend));
	} else {
		return R::failure("telemetry: " + amd_smi_problem + "; ROCm SMI: " + library.error());
	}
}

} // namespace flexslurm
