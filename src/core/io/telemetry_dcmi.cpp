// SPDX-License-Identifier: GPL-2.0-or-later
// The Ascend telemetry backend: AI Core use and HBM (or DDR) use per NPU
// from DCMI, dlopen()ed at run time, and per-job memory from the processes
// DCMI reports (vendor_library.hpp).
#include "core/io/dcmi_abi.hpp"
#include "core/io/telemetry.hpp"
#include "core/io/vendor_library.hpp"
#include "core/util/log.hpp"
#include "core/util/throttle.hpp"

#include <algorithm>
#include <cstring>

namespace flexslurm
{
namespace
{

using namespace dcmi;

constexpr int max_cards = 64;
constexpr int max_devices_per_card = 16;
constexpr int max_processes = 1024;

struct DcmiDevice {
	int layout_index = 0;
	int card = 0;
	int chip = 0; // device_id within the card
	std::string bus_id;
};

std::string describe(int rc)
{
	return "DCMI error " + std::to_string(rc) + (rc == dcmi_err_not_support ? " (not supported)" : "");
}

class DcmiBackend final : public TelemetryBackend
{
public:
	DcmiBackend(LoadedLibrary library, std::string proc_root, SlurmMarks marks)
	    : library_(std::move(library)), proc_root_(std::move(proc_root)), marks_(std::move(marks))
	{
	}

	std::string_view name() const noexcept override { return "dcmi"; }

	std::string start(const SliceLayout &layout)
	{
		if (std::string missing = resolve(); !missing.empty())
			return library_.name + " lacks " + missing + " (DCMI too old, or not DCMI)";
		if (int rc = init_(); rc != dcmi_ok)
			return "dcmi_init failed: " + describe(rc);
		std::string version = "unknown";
		if (get_version_) {
			char text[64] = {};
			if (get_version_(text, sizeof text) == dcmi_ok) {
				text[sizeof text - 1] = '\0';
				version = text;
			}
		}
		log_info("telemetry: Ascend NPUs through " + library_.name + " (DCMI version " + version +
		         ")");
		return match(layout);
	}

	Result<std::vector<DeviceSample>> sample() override
	{
		std::vector<DeviceSample> samples;
		for (const DcmiDevice &device : devices_)
			if (auto s = sample_device(device))
				samples.push_back(std::move(*s));
		return samples;
	}

private:
	std::string resolve()
	{
		void *lib = library_.handle.get();
		init_ = library_symbol<DcmiInit>(lib, "dcmi_init");
		// dcmi_get_card_num_list is the older name of the same call.
		get_cards_ = library_symbol<DcmiGetCardList>(lib, "dcmi_get_card_list");
		if (!get_cards_)
			get_cards_ = library_symbol<DcmiGetCardList>(lib, "dcmi_get_card_num_list");
		get_device_num_ = library_symbol<DcmiGetDeviceNumInCard>(lib, "dcmi_get_device_num_in_card");
		get_pcie_ = library_symbol<DcmiGetPcieInfo>(lib, "dcmi_get_device_pcie_info_v2");
		get_utilization_ =
		        library_symbol<DcmiGetUtilization>(lib, "dcmi_get_device_utilization_rate");
		get_hbm_ = library_symbol<DcmiGetHbmInfo>(lib, "dcmi_get_device_hbm_info");
		get_memory_ = library_symbol<DcmiGetMemoryInfo>(lib, "dcmi_get_device_memory_info_v3");
		get_processes_ = library_symbol<DcmiGetResourceInfo>(lib, "dcmi_get_device_resource_info");
		get_version_ = library_symbol<DcmiGetVersion>(lib, "dcmi_get_dcmi_version");
		return first_missing({
		        {init_ != nullptr, "dcmi_init"},
		        {get_cards_ != nullptr, "dcmi_get_card_list"},
		        {get_device_num_ != nullptr, "dcmi_get_device_num_in_card"},
		        {get_pcie_ != nullptr, "dcmi_get_device_pcie_info_v2"},
		        {get_utilization_ != nullptr, "dcmi_get_device_utilization_rate"},
		        {get_hbm_ != nullptr || get_memory_ != nullptr,
		         "dcmi_get_device_hbm_info and dcmi_get_device_memory_info_v3"},
		});
	}

	std::string match(const SliceLayout &layout)
	{
		int card_count = 0;
		int cards[max_cards] = {};
		if (int rc = get_cards_(&card_count, cards, max_cards); rc != dcmi_ok)
			return "dcmi_get_card_list failed: " + describe(rc);
		if (card_count < 0 || card_count > max_cards)
			return "dcmi_get_card_list reports " + std::to_string(card_count) + " cards";
		std::vector<DcmiDevice> all;
		std::vector<LibraryDevice> found;
		for (int c = 0; c < card_count; ++c) {
			int chips = 0;
			if (int rc = get_device_num_(cards[c], &chips); rc != dcmi_ok)
				return "card " + std::to_string(cards[c]) +
				       ": dcmi_get_device_num_in_card failed: " + describe(rc);
			if (chips < 0 || chips > max_devices_per_card)
				return "card " + std::to_string(cards[c]) + " reports " +
				       std::to_string(chips) + " devices";
			for (int chip = 0; chip < chips; ++chip) {
				DcmiPcieInfo pci{};
				if (int rc = get_pcie_(cards[c], chip, &pci); rc != dcmi_ok)
					return "card " + std::to_string(cards[c]) + " device " +
					       std::to_string(chip) +
					       ": cannot read its PCI bus id (so cannot match devices): " +
					       describe(rc);
				const std::string bus =
				        pci_bus_id(static_cast<uint64_t>(std::max(pci.domain, 0)),
				                   pci.bdf_bus, pci.bdf_device, pci.bdf_function);
				found.push_back({bus, all.size()});
				all.push_back({0, cards[c], chip, bus});
			}
		}
		for (const MatchedDevice &m : match_library_devices(layout, Vendor::Ascend, found, "DCMI")) {
			DcmiDevice d = all[m.key];
			d.layout_index = m.layout_index;
			devices_.push_back(d);
		}
		return {};
	}

	std::optional<DeviceSample> sample_device(const DcmiDevice &device)
	{
		const std::string subject = "dcmi:" + device.bus_id;
		unsigned int ai_core = 0;
		uint64_t used_mib = 0;
		std::string problem;
		if (int rc = get_utilization_(device.card, device.chip, dcmi_utilization_ai_core, &ai_core);
		    rc != dcmi_ok)
			problem = "dcmi_get_device_utilization_rate (AI Core) failed: " + describe(rc);
		else if (auto used = memory_used_mib(device, problem))
			used_mib = *used;
		if (!problem.empty()) {
			problems_.report(subject, "telemetry: Ascend device " + device.bus_id + ": " +
			                                  problem + "; it counts as busy");
			return std::nullopt;
		}
		problems_.clear(subject);
		DeviceSample sample;
		sample.device = device.layout_index;
		sample.busy_percent = std::min(ai_core, 100u);
		sample.memory_used_bytes = used_mib * dcmi_mib;
		if (get_processes_) {
			std::vector<DcmiProcessMemory> buffer(max_processes);
			int count = max_processes;
			const int rc = get_processes_(device.card, device.chip, buffer.data(), &count);
			if (rc == dcmi_ok && count >= 0 && count <= max_processes) {
				std::vector<LibraryProcess> processes;
				for (int i = 0; i < count; ++i)
					if (buffer[static_cast<size_t>(i)].pid > 0)
						processes.push_back(
						        {static_cast<unsigned>(
						                 buffer[static_cast<size_t>(i)].pid),
						         buffer[static_cast<size_t>(i)].memory_bytes,
						         std::nullopt});
				attribute_processes(processes, proc_root_, marks_, sample);
			} else {
				log_debug("telemetry: Ascend device " + device.bus_id +
				          ": dcmi_get_device_resource_info failed: " +
				          (rc == dcmi_ok ? std::to_string(count) + " processes"
				                         : describe(rc)) +
				          "; whole-device sample");
			}
		}
		return sample;
	}

	// HBM where the device has it (910 family), else its DDR (310 family).
	std::optional<uint64_t> memory_used_mib(const DcmiDevice &device, std::string &problem)
	{
		int hbm_rc = dcmi_err_not_support;
		if (get_hbm_) {
			DcmiHbmInfo hbm{};
			hbm_rc = get_hbm_(device.card, device.chip, &hbm);
			if (hbm_rc == dcmi_ok && hbm.memory_size > 0)
				return std::min(hbm.memory_usage, hbm.memory_size);
		}
		if (get_memory_) {
			DcmiMemoryInfo memory{};
			if (int rc = get_memory_(device.card, device.chip, &memory); rc != dcmi_ok) {
				problem = "dcmi_get_device_memory_info_v3 failed: " + describe(rc);
				return std::nullopt;
			}
			return memory.memory_size - std::min(memory.memory_available, memory.memory_size);
		}
		problem = "dcmi_get_device_hbm_info failed: " + describe(hbm_rc);
		return std::nullopt;
	}

	LoadedLibrary library_;
	std::string proc_root_;
	SlurmMarks marks_;
	DcmiInit init_ = nullptr;
	DcmiGetCardList get_cards_ = nullptr;
	DcmiGetDeviceNumInCard get_device_num_ = nullptr;
	DcmiGetPcieInfo get_pcie_ = nullptr;
	DcmiGetUtilization get_utilization_ = nullptr;
	DcmiGetHbmInfo get_hbm_ = nullptr;
	DcmiGetMemoryInfo get_memory_ = nullptr;
	DcmiGetResourceInfo get_processes_ = nullptr;
	DcmiGetVersion get_version_ = nullptr;
	std::vector<DcmiDevice> devices_;
	ProblemLog problems_;
};

} // namespace

Result<std::unique_ptr<TelemetryBackend>> make_dcmi_backend(const SliceLayout &layout,
                                                            const std::vector<std::string> &libraries,
                                                            std::string proc_root, SlurmMarks marks)
{
	using R = Result<std::unique_ptr<TelemetryBackend>>;
	auto library = load_first_library(libraries);
	if (!library)
		return R::failure("telemetry: " + library.error());
	auto backend =
	        std::make_unique<DcmiBackend>(std::move(*library), std::move(proc_root), std::move(marks));
	if (std::string problem = backend->start(layout); !problem.empty())
		return R::failure("telemetry: " + problem);
	return R(std::move(backend));
}

} // namespace flexslurm
