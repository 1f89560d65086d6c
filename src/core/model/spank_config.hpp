// SPDX-License-Identifier: GPL-2.0-or-later
// The SPANK plugin's plugstack.conf arguments:
//   required /path/spank_flexslurm.so isolation=required limits.nvidia=mps
// Unknown keys and bad values are refused (the plugin then refuses to load).
#pragma once

#include "core/util/node_name.hpp"
#include "core/util/result.hpp"
#include "core/model/vendor.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

enum class FailurePolicy {
	Required, // a launch that cannot be isolated fails
	Optional, // it runs, and the log says it runs unisolated
};

// How a slice's compute and memory share is enforced inside the device.
enum class LimitBackend {
	None,    // variables only
	Preload, // an interception library (e.g. HAMi-core) via LD_PRELOAD
	Mps,     // an NVIDIA MPS control daemon per job
	CuMask,  // AMD: HSA_CU_MASK, each slice its own compute units (ROCr)
	Vnpu,    // Ascend: the devices are vNPUs (hardware partitions of AI Core and memory)
};

// The backends a vendor may take: mps is NVIDIA's, cu_mask AMD's, vnpu Ascend's.
bool backend_allowed(LimitBackend backend, Vendor vendor) noexcept;

struct SpankConfig {
	FailurePolicy isolation = FailurePolicy::Required;
	std::string layout_file = default_layout_file; // as flexslurm.yaml inventory.layout_file
	LimitBackend limits[3] = {LimitBackend::None, LimitBackend::None, LimitBackend::None}; // by Vendor
	// Library for Preload, set in LD_PRELOAD; empty with preload_system
	// (preload=system: the site lists it in /etc/ld.so.preload).
	std::string preload;
	bool preload_system = false;
	std::string mps_control = "/usr/bin/nvidia-cuda-mps-control";
	// Per-job state (limits file, preload config and cache, MPS pipe and
	// log directories): <job_dir>/<job id>/, root's.
	std::string job_dir = "/run/flexslurm/jobs";
	// AMD compute-unit counts for cu_mask: KFD's topology (<dir>/<node>/properties).
	std::string kfd_topology = "/sys/class/kfd/kfd/topology/nodes";

	LimitBackend limits_for(Vendor v) const noexcept { return limits[static_cast<int>(v)]; }
	bool operator==(const SpankConfig &) const = default;
};

// "none", "preload", "mps", "cu_mask", "vnpu": in plugstack.conf and in the per-job limits file.
const char *limit_backend_name(LimitBackend backend) noexcept;
std::optional<LimitBackend> parse_limit_backend(std::string_view name) noexcept;

Result<SpankConfig> parse_plugstack_args(const std::vector<std::string> &args);
// The arguments that parse_plugstack_args() reads back as `config`.
std::vector<std::string> plugstack_args(const SpankConfig &config);

} // namespace flexslurm
