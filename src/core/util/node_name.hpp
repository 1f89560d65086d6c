// Slurm's %n convention (SlurmdSpoolDir=/var/spool/slurmd.%n): the node name.
#pragma once

#include <string>
#include <string_view>

namespace flexslurm
{

std::string expand_node_name(std::string_view pattern, std::string_view node_name);

} // namespace flexslurm
