// The SPANK plugin's plugstack.conf arguments:
//   required /path/spank_flexslurm.so isolation=required layout=/run/flexslurm/layout.%n
// Unknown keys and bad values are refused (the plugin then refuses to load).
#pragma once

#include "result.hpp"

#include <string>
#include <vector>

namespace flexslurm
{

enum class FailurePolicy {
	Required, // a launch that cannot be isolated fails
	Optional, // it runs, and the log says it runs unisolated
};

struct SpankConfig {
	FailurePolicy isolation = FailurePolicy::Required;
	std::string layout_file = "/run/flexslurm/layout.%n"; // as flexslurm.yaml inventory.layout_file
	std::string limits = "none";
};

Result<SpankConfig> parse_plugstack_args(const std::vector<std::string> &args);

} // namespace flexslurm
