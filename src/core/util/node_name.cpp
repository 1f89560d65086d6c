// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/util/node_name.hpp"

namespace flexslurm
{

std::string expand_node_name(std::string_view pattern, std::string_view node_name)
{
	std::string out;
	for (size_t i = 0; i < pattern.size(); ++i) {
		if (pattern[i] == '%' && i + 1 < pattern.size() && pattern[i + 1] == 'n') {
			out.append(node_name);
			++i;
		} else {
			out.push_back(pattern[i]);
		}
	}
	return out;
}

} // namespace flexslurm
