// A job's slice variables as text, decoded by the one codec (SliceEnv) the
// SPANK plugin uses: for tests of what the variables resolve to.
#pragma once

#include "suites.hpp"

#include "core/model/job_env.hpp"
#include "core/model/slice_layout.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace
{

// SLURM_VSLICE_DEVICES=`devices` and SLURM_VSLICE_COUNTS=`counts` (empty: unset), decoded.
inline flexslurm::Result<flexslurm::SliceEnv> slice_env_of(const std::string &devices,
                                                           const std::string &counts = "")
{
	return flexslurm::SliceEnv::decode([&](const char *name) -> std::optional<std::string> {
		if (std::string_view(name) == flexslurm::devices_variable_name)
			return devices;
		if (std::string_view(name) == "SLURM_VSLICE_COUNTS")
			return counts;
		return std::nullopt;
	});
}

// The layout's devices that a well-formed SLURM_VSLICE_DEVICES names, in its order.
inline std::vector<const flexslurm::DeviceSlices *> devices_of(const flexslurm::SliceLayout &layout,
                                                               const std::string &devices)
{
	const auto env = slice_env_of(devices);
	ck_assert_msg(static_cast<bool>(env), "%s", env.error().c_str());
	std::vector<const flexslurm::DeviceSlices *> out;
	for (const flexslurm::DeviceSlices *d : layout.devices_named(env->devices))
		if (d)
			out.push_back(d);
	return out;
}

} // namespace
