// SPDX-License-Identifier: GPL-2.0-or-later
// gpu-probe: flexslurm's own view of a real NVIDIA node, through the same
// core code the plugins run (no Slurm needed). For the real-hardware run
// (tests/gpu/run.sh) and for an admin's first GPU node:
//   gpu-probe identify YAML FILE...   driver info, hwloc, identify_devices, the slice layout
//   gpu-probe sample YAML SECONDS     NVML telemetry samples, one line per device every 0.5 s
//   gpu-probe limits YAML SLICES UID  the MPS commands and preload variables for SLICES slices of device 0
// FILE...: the gpu records' File= values, as gres.conf would give them (type from hwloc).
#include "core/io/config.hpp"
#include "core/io/device_identity.hpp"
#include "core/io/inventory.hpp"
#include "core/model/limits.hpp"
#include "core/model/slice_layout.hpp"
#include "core/io/telemetry.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace flexslurm;

namespace
{

int usage()
{
	std::fprintf(
	        stderr,
	        "usage: gpu-probe identify YAML FILE... | sample YAML SECONDS | limits YAML SLICES UID\n");
	return 2;
}

struct Node {
	Config config;
	SliceLayout layout;
};

std::optional<Node> load(const std::string &yaml, const std::vector<std::string> &files, bool verbose)
{
	auto config = Config::from_file(yaml);
	if (!config) {
		std::printf("config: %s\n", config.error().c_str());
		return std::nullopt;
	}
	auto hw = Inventory::from_live_system();
	if (!hw) {
		std::printf("hwloc: %s\n", hw.error().c_str());
		return std::nullopt;
	}
	const auto nvidia = read_nvidia_gpus(config->nvidia_proc_dir);
	std::vector<GresRecord> records;
	for (const std::string &f : files)
		records.push_back(GresRecord{"gpu", "", f, "", false, 1});
	std::vector<std::string> problems;
	const auto units = gpu_units_of(records, problems);
	const auto found = identify_devices(*hw, config->device_dir, units, nvidia, config->exclude);
	if (verbose) {
		for (const NvidiaGpuInfo &g : nvidia)
			std::printf("driver: bus=%s uuid=%s model=\"%s\" minor=%d\n", g.pci_bus_id.c_str(),
			            g.uuid.c_str(), g.model.c_str(), g.minor);
		for (const Accelerator &a : hw->accelerators)
			std::printf(
			        "hwloc: %s index=%d bus=%s model=%s name=\"%s\" memory=%llu numa=%d cpus=%zu nodes=%s\n",
			        std::string(vendor_name(a.vendor)).c_str(), a.vendor_index,
			        a.pci_bus_id.c_str(), a.model.c_str(), a.model_name.c_str(),
			        static_cast<unsigned long long>(a.memory_bytes), a.numa_node, a.cpus.size(),
			        a.device_nodes.empty() ? "-" : a.device_nodes[0].c_str());
		for (const std::string &p : problems)
			std::printf("problem: %s\n", p.c_str());
		for (const std::string &line : found.report)
			std::printf("identify: %s\n", line.c_str());
	}
	Node node{*config, SliceLayout::build(found, *config)};
	if (verbose)
		for (const DeviceSlices &d : node.layout.devices())
			std::printf(
			        "layout: %s %s index=%d uuid=%s bus=%s slices=%d compute=%d%% slice_memory=%llu borrow_memory=%llu\n",
			        d.model.c_str(), d.device_path.c_str(), d.vendor_index, d.uuid.c_str(),
			        d.pci_bus_id.c_str(), d.slices, d.compute_percent,
			        static_cast<unsigned long long>(d.slice_memory_bytes),
			        static_cast<unsigned long long>(d.borrow_memory_bytes));
	return node;
}

int sample(const Node &node, int seconds)
{
	auto backend = make_nvml_backend(node.layout);
	if (!backend) {
		std::printf("nvml: %s\n", backend.error().c_str());
		return 1;
	}
	const auto start = std::chrono::steady_clock::now();
	for (int i = 0; i < seconds * 2; ++i) {
		auto s = (*backend)->sample();
		const double t =
		        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
		if (!s) {
			std::printf("t=%.1f error: %s\n", t, s.error().c_str());
		} else {
			for (const DeviceSample &d : *s) {
				std::printf("t=%.1f device=%d busy=%.0f memory_mib=%llu per_job=%d", t,
				            d.device, d.busy_percent,
				            static_cast<unsigned long long>(d.memory_used_bytes >> 20),
				            d.per_job ? 1 : 0);
				for (const JobUse &j : d.jobs)
					std::printf(" job=%u:busy=%.0f:memory_mib=%llu", j.job,
					            j.busy_percent,
					            static_cast<unsigned long long>(j.memory_bytes >> 20));
				std::printf("\n");
			}
		}
		std::fflush(stdout);
		std::this_thread::sleep_for(std::chrono::milliseconds(500));
	}
	return 0;
}

int limits(const Node &node, int slices, uint32_t uid)
{
	if (node.layout.devices().empty()) {
		std::printf("no sliced device\n");
		return 1;
	}
	// `slices` of the first device, as gres/vslice's variables say it (and
	// the SPANK job prolog reads them back: out of range, no limit).
	SliceEnv wrote;
	wrote.slices = slices;
	wrote.devices = {node.layout.devices()[0].vendor_index};
	wrote.counts = {slices};
	const std::vector<EnvVar> vars = wrote.encode();
	const auto read = SliceEnv::decode([&](const char *name) -> std::optional<std::string> {
		for (const EnvVar &v : vars)
			if (v.name == name)
				return v.value;
		return std::nullopt;
	});
	auto l = read ? device_limits(node.layout, *read) : std::vector<DeviceLimit>();
	std::printf("%s", mps_limit_commands(l, uid).c_str());
	std::printf("%s", preload_config(l, "/tmp/gpu-probe.cache").c_str());
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc < 3)
		return usage();
	const std::string mode = argv[1];
	if (mode == "identify") {
		auto node = load(argv[2], std::vector<std::string>(argv + 3, argv + argc), true);
		return node ? 0 : 1;
	}
	if (mode == "sample" && argc == 4) {
		auto node = load(argv[2], {}, false);
		return node ? sample(*node, std::atoi(argv[3])) : 1;
	}
	if (mode == "limits" && argc == 5) {
		auto node = load(argv[2], {}, false);
		return node ? limits(*node, std::atoi(argv[3]),
		                     static_cast<uint32_t>(std::strtoul(argv[4], nullptr, 10)))
		            : 1;
	}
	return usage();
}
