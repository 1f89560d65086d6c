// In-device limits of a step's slices: the values (from the slice layout and
// the slice counts gres/vslice put in the job's environment, never from
// variables a user sets) and what each backend needs to apply them.
#pragma once

#include "job_env.hpp"
#include "slice_layout.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

struct DeviceLimit {
	const DeviceSlices *device = nullptr;
	int ordinal = 0; // the device's number inside the job (renumbered from 0 per vendor)
	int compute_percent = 0;
	uint64_t memory_mib = 0; // 0: unknown
};

// `held` as from held_devices(SLURM_VSLICE_DEVICES), `counts` is
// SLURM_VSLICE_COUNTS (same order).
std::vector<DeviceLimit> device_limits(const std::vector<const DeviceSlices *> &held,
                                       std::string_view counts);

// Variables for an interception library in the HAMi-core convention.
std::vector<EnvVar> preload_environment(const std::vector<DeviceLimit> &limits, const std::string &library,
                                        std::string_view current_ld_preload);

// The MPS control commands that set a step's limits as server defaults
// (clients cannot raise them), one per line.
std::string mps_limit_commands(const std::vector<DeviceLimit> &limits);

} // namespace flexslurm
