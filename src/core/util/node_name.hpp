// SPDX-License-Identifier: GPL-2.0-or-later
// Slurm's %n convention (SlurmdSpoolDir=/var/spool/slurmd.%n): the node name.
#pragma once

#include <string>
#include <string_view>

namespace flexslurm
{

std::string expand_node_name(std::string_view pattern, std::string_view node_name);

// Where slurmd leaves the node's slice layout for the SPANK plugin, unless
// flexslurm.yaml (inventory.layout_file) and plugstack.conf (layout=) say
// otherwise; %n is the node name.
inline constexpr const char *default_layout_file = "/run/flexslurm/layout.%n";

} // namespace flexslurm
