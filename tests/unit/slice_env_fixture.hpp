// SPDX-License-Identifier: GPL-2.0-or-later
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

// Two NVIDIA T4s then two AMD MI210s, four slices each (the vendor indices
// restart per vendor: "1" names nvidia1 and amd1).
inline flexslurm::SliceLayout mixed_layout()
{
	auto l = flexslurm::SliceLayout::deserialize(
	        "flexslurm-layout 1\n"
	        "nvidia\t0\tt4\t/d/nvidia0\t195:0\t0\t4\t25\t0\t\n"
	        "nvidia\t1\tt4\t/d/nvidia1\t195:1\t4\t4\t25\t0\t\n"
	        "amd\t0\tmi210\t/d/dri/renderD128\t226:128\t8\t4\t25\t0\t\n"
	        "amd\t1\tmi210\t/d/dri/renderD129\t226:129\t12\t4\t25\t0\t\n");
	ck_assert_msg(static_cast<bool>(l), "%s", l.error().c_str());
	return *l;
}

// Paths joined by one space, for comparing lists in one assertion.
inline std::string paths(const std::vector<std::string> &v)
{
	std::string out;
	for (const auto &p : v)
		out += (out.empty() ? "" : " ") + p;
	return out;
}

} // namespace
