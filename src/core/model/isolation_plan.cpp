// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/isolation_plan.hpp"

#include "core/util/text.hpp"

#include <algorithm>
#include <climits>

namespace flexslurm
{

namespace
{

// Slurm's list of gres/gpu unit indices: entries that are not one are skipped.
std::vector<int> unit_numbers(std::string_view list)
{
	std::vector<int> out;
	for (std::string_view item : split(list, ','))
		if (int v = 0; parse_number(item, v, 0, INT_MAX))
			out.push_back(v);
	return out;
}

void add_unique(std::vector<std::string> &paths, const std::string &p)
{
	if (std::find(paths.begin(), paths.end(), p) == paths.end())
		paths.push_back(p);
}

} // namespace

std::vector<std::string> gpu_unit_paths(const SliceLayout &layout, std::string_view gpu_units)
{
	std::vector<std::string> paths;
	const auto &units = layout.gpu_units();
	const auto &devices = layout.devices();
	for (int unit : unit_numbers(gpu_units)) {
		std::string path;
		if (!units.empty()) {
			// Slurm's own records: unit u is the u-th gpu file.
			if (unit < static_cast<int>(units.size()))
				path = units[static_cast<size_t>(unit)].path;
		} else if (unit < static_cast<int>(devices.size())) {
			// A layout written before gpu units were recorded.
			path = devices[static_cast<size_t>(unit)].device_path;
		}
		if (!path.empty())
			add_unique(paths, path);
	}
	return paths;
}

std::vector<std::string> held_device_paths(const SliceLayout &layout,
                                           const std::vector<const DeviceSlices *> &slice_devices,
                                           std::string_view gpu_units)
{
	std::vector<std::string> paths = gpu_unit_paths(layout, gpu_units);
	for (const DeviceSlices *d : slice_devices)
		add_unique(paths, d->device_path);
	return paths;
}

IsolationPlan plan_isolation(const SliceLayout &layout, const std::vector<std::string> &held)
{
	IsolationPlan plan;
	for (const std::string &p : layout.accelerator_paths())
		(std::find(held.begin(), held.end(), p) != held.end() ? plan.visible : plan.hidden)
		        .push_back(p);
	return plan;
}

std::string IsolationPlan::device_dir() const
{
	if (hidden.empty())
		return "";
	std::string dir = hidden.front().substr(0, hidden.front().rfind('/'));
	for (const std::string &p : hidden)
		while (p.compare(0, dir.size() + 1, dir + "/") != 0 && dir.rfind('/') != std::string::npos)
			dir = dir.substr(0, dir.rfind('/'));
	return dir;
}

} // namespace flexslurm
