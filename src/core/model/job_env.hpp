// SPDX-License-Identifier: GPL-2.0-or-later
// The environment a job or step gets from the slices it holds on a node:
// the vendor's visible-devices variable, NVIDIA's MPS limits, and
// flexslurm's own SLURM_VSLICE_* variables (SliceEnv: their one encoder and
// decoder, for gres/vslice, the SPANK job prolog and its tasks).
#pragma once

#include "core/model/slice_layout.hpp"
#include "core/util/result.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

struct EnvVar {
	std::string name;
	std::string value;
	bool operator==(const EnvVar &) const = default;
};

// Set (to 1) beside the slice variables for units of gres/vborrow.
inline constexpr const char *borrowed_variable_name = "SLURM_VSLICE_BORROWED";
inline constexpr const char *devices_variable_name = "SLURM_VSLICE_DEVICES";
// The vendor of each device of SLURM_VSLICE_DEVICES: on a mixed node the
// vendor indices restart per vendor, so "0" alone may be nvidia0 or ascend0.
inline constexpr const char *vendors_variable_name = "SLURM_VSLICE_VENDORS";

// The variable --vslice-split (SPANK plugin) puts into the job-control
// environment, which slurmctld keeps in the job record (spank_job_env);
// select/flex reads it (core/model/placement: split_from_env).
inline constexpr std::string_view split_variable = "FLEXSLURM_VSLICE_SPLIT";

// A variable's value in some environment; nullopt (or empty): not set.
using EnvLookup = std::function<std::optional<std::string>(const char *name)>;

// flexslurm's slice variables for a job or step on one node: one entry per
// device it holds slices of, in job order (by vendor, then PCI order).
struct SliceEnv {
	int slices = 0;              // SLURM_VSLICES_ON_NODE: the sum of counts
	std::vector<int> devices;    // SLURM_VSLICE_DEVICES: the devices' vendor indices
	std::vector<Vendor> vendors; // SLURM_VSLICE_VENDORS: their vendors (set on mixed nodes only)
	std::vector<int> counts;     // SLURM_VSLICE_COUNTS: slices held on each
	// SLURM_VSLICE_POSITIONS: which slices of each device (0-based on the device, ascending),
	// "0+1,3"; as many as its count. Empty: not given (a gres/vslice older than the SPANK plugin).
	std::vector<std::vector<int>> positions;
	std::vector<int> compute_percent; // SLURM_VSLICE_COMPUTE_PERCENT
	std::vector<uint64_t> memory_mib; // SLURM_VSLICE_MEMORY_LIMIT_MIB (0: unknown)
	bool borrowed = false;            // SLURM_VSLICE_BORROWED=1: units of gres/vborrow
	bool operator==(const SliceEnv &) const = default;

	// Nothing when it names no device.
	std::vector<EnvVar> encode() const;
	// What encode() wrote, checked: numbers in range, lists as long as
	// SLURM_VSLICE_DEVICES, SLURM_VSLICES_ON_NODE their sum. A variable that
	// `lookup` does not give stays empty; a malformed one is refused, naming it.
	static Result<SliceEnv> decode(const EnvLookup &lookup);
};

// The slices of one device that a job holds.
struct HeldSlices {
	const DeviceSlices *device = nullptr;
	int count = 0;
	std::vector<int> positions; // on the device, ascending: `count` of them
};

// The devices of the slices `held` (GRES indices on this node), in job
// order. Indices that the layout does not know are ignored (and logged).
std::vector<HeldSlices> held_slices(const SliceLayout &layout, const std::vector<int> &held);

enum class DeviceNumbering {
	// Devices renumbered from 0 in the job's order: what a job sees when
	// task/cgroup ConstrainDevices hides the other devices (as gres/gpu).
	Local,
	// The host's numbering: prolog/epilog, or no device constraint.
	Physical,
};

// Variables for the slices `held` (GRES indices on this node): the vendors'
// and SliceEnv's (with SLURM_VSLICE_BORROWED if `borrowed`).
std::vector<EnvVar> slice_environment(const SliceLayout &layout, const std::vector<int> &held,
                                      DeviceNumbering numbering, bool borrowed = false);

// Slurm calls a GRES plugin's prolog/epilog-environment hook once per GRES
// type a job holds (vslice:t4 and vslice:ascend910b on a mixed node), on the
// same environment, each call with its type's units only. `held` joined with
// the slices an earlier call wrote there (`earlier`, decoded: each earlier
// device's slices at its SLURM_VSLICE_POSITIONS, or without them its first
// `count` slices), so the last call's variables name
// the job's whole allocation on the node. Devices `held` already has slices
// of keep only those.
std::vector<int> with_earlier_slices(const SliceLayout &layout, const SliceEnv &earlier,
                                     std::vector<int> held);

// Every variable slice_environment() may set that only flexslurm owns,
// cleared from a step that holds no slices.
std::vector<std::string> owned_variable_names();

} // namespace flexslurm
