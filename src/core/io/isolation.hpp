// Device isolation at launch: which device nodes a job's tasks may see,
// and a private view of the device directory that shows only those.
// Used by the SPANK plugin in slurmstepd, before privileges drop.
#pragma once

#include "core/util/result.hpp"
#include "core/model/slice_layout.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

// The sliced devices a job holds, from what Slurm's GRES plugins put in
// its environment: SLURM_VSLICE_DEVICES (vendor indices, by vendor then PCI
// order, set by gres/vslice) and SLURM_STEP_GPUS / SLURM_JOB_GPUS (gres/gpu
// unit indices, resolved through the gpu units gres/vslice recorded from
// Slurm's own records). Entries that match nothing are ignored.
std::vector<const DeviceSlices *> held_devices(const SliceLayout &layout, std::string_view vslice_devices,
                                               std::string_view gpu_units);

// The device nodes of gres/gpu unit indices (a MIG instance: its GPU's node).
std::vector<std::string> gpu_unit_paths(const SliceLayout &layout, std::string_view gpu_units);

// Every accelerator node a job holds: its slices' devices and its gpu units'.
std::vector<std::string> held_device_paths(const SliceLayout &layout, std::string_view vslice_devices,
                                           std::string_view gpu_units);

struct IsolationPlan {
	std::vector<std::string> visible; // the job's device nodes
	std::vector<std::string> hidden;  // every other accelerator's node
};

IsolationPlan plan_isolation(const SliceLayout &layout, const std::vector<std::string> &held_paths);

// In a new mount namespace of the calling process, covers `dir` with a
// tmpfs that shows every entry of the original except `hidden` (absolute
// paths under `dir`, also inside subdirectories). Mounts do not propagate
// back to the host.
Result<bool> enter_private_device_view(const std::string &dir, const std::vector<std::string> &hidden);

// Opens each path: true when every open is refused with EPERM, i.e. the
// devices cgroup denies them. `unfenced` gets the ones that opened.
bool devices_cgroup_denies(const std::vector<std::string> &paths, std::vector<std::string> &unfenced);

} // namespace flexslurm
