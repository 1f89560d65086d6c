// The environment a job or step gets from the slices it holds on a node:
// the vendor's visible-devices variable, the slice count, compute percent
// and memory limit per device, and NVIDIA's MPS limits.
#pragma once

#include "core/model/slice_layout.hpp"

#include <string>
#include <vector>

namespace flexslurm
{

struct EnvVar {
	std::string name;
	std::string value;
	bool operator==(const EnvVar &) const = default;
};

enum class DeviceNumbering {
	// Devices renumbered from 0 in the job's order: what a job sees when
	// task/cgroup ConstrainDevices hides the other devices (as gres/gpu).
	Local,
	// The host's numbering: prolog/epilog, or no device constraint.
	Physical,
};

// Variables for the slices `held` (GRES indices on this node). Indices that
// the layout does not know are ignored (and logged).
std::vector<EnvVar> slice_environment(const SliceLayout &layout, const std::vector<int> &held,
                                      DeviceNumbering numbering);

// Set (to 1) beside the slice variables for units of gres/vborrow.
inline constexpr const char *borrowed_variable_name = "SLURM_VSLICE_BORROWED";

// Every variable slice_environment() may set that only flexslurm owns,
// cleared from a step that holds no slices.
std::vector<std::string> owned_variable_names();

} // namespace flexslurm
