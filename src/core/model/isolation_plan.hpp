// SPDX-License-Identifier: GPL-2.0-or-later
// Which accelerator device nodes a job's tasks may see: from the devices of
// its slices and the gres/gpu units Slurm gave it, against the node's
// slice layout. Applied by core/io/isolation (the SPANK plugin, in slurmstepd).
#pragma once

#include "core/model/slice_layout.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

// The device nodes of gres/gpu unit indices (a MIG instance: its GPU's node).
std::vector<std::string> gpu_unit_paths(const SliceLayout &layout, std::string_view gpu_units);

// Every accelerator node a job holds: its gpu units' (`gpu_units`: SLURM_STEP_GPUS or
// SLURM_JOB_GPUS, gres/gpu unit indices resolved through the gpu units gres/vslice recorded from
// Slurm's own records; entries that match nothing are ignored) and its slices' devices
// (`slice_devices`: those of its SLURM_VSLICE_DEVICES, decoded by SliceEnv).
std::vector<std::string> held_device_paths(const SliceLayout &layout,
                                           const std::vector<const DeviceSlices *> &slice_devices,
                                           std::string_view gpu_units);

struct IsolationPlan {
	std::vector<std::string> visible; // the job's device nodes
	std::vector<std::string> hidden;  // every other accelerator's node
	// The directory to show privately: the common parent of the hidden
	// nodes (e.g. /dev, with AMD's under /dev/dri); empty when none is hidden.
	std::string device_dir() const;
};

IsolationPlan plan_isolation(const SliceLayout &layout, const std::vector<std::string> &held_paths);

} // namespace flexslurm
