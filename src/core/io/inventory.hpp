// SPDX-License-Identifier: GPL-2.0-or-later
// Accelerator inventory: which accelerators a node has, where they sit
// (NUMA node, local CPUs), which device nodes belong to each and which index
// the vendor runtime gives them. Read from hwloc (the live system, or an
// hwloc XML topology that an admin pinned or a test ships). gres/vslice
// takes its view of the hardware from here; select/flex and the SPANK plugin
// read what it published (the GRES topology, the saved slice layout).
#pragma once

#include "core/model/devices.hpp"
#include "core/util/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

struct Inventory {
	// Sorted by vendor, then vendor_index.
	std::vector<Accelerator> accelerators;

	static Result<Inventory> from_xml_file(const std::string &path);
	static Result<Inventory> from_live_system();
};

} // namespace flexslurm
