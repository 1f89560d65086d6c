// SPDX-License-Identifier: GPL-2.0-or-later
// The slice map's inputs from Slurm, through libslurm's public API only
// (slurm.h: slurm_load_node, slurm_load_partitions, slurm_load_jobs), so
// SLURM_CONF, include and configless setups work as for sinfo and scontrol.
// The one place the flexslurm command touches Slurm.
#pragma once

#include "core/model/slice_map.hpp"
#include "core/util/result.hpp"

#include <string>
#include <vector>

namespace flexslurm::cli
{

struct SlurmView {
	std::vector<NodeInput> nodes;
	std::vector<JobInput> jobs; // running or suspended jobs with a node GRES detail
};

// An error: Slurm could not be asked (its message, as libslurm tells it).
Result<SlurmView> read_slurm();

} // namespace flexslurm::cli
