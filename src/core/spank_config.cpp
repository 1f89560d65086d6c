#include "spank_config.hpp"

namespace flexslurm
{

Result<SpankConfig> parse_plugstack_args(const std::vector<std::string> &args)
{
	SpankConfig cfg;
	auto bad = [](const std::string &what) { return Result<SpankConfig>::failure(what); };
	for (const std::string &arg : args) {
		const auto eq = arg.find('=');
		const std::string key = arg.substr(0, eq);
		const std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
		if (key == "isolation") {
			if (value == "required")
				cfg.isolation = FailurePolicy::Required;
			else if (value == "optional")
				cfg.isolation = FailurePolicy::Optional;
			else
				return bad("isolation: \"" + value +
				           "\" is not allowed (allowed: required, optional)");
		} else if (key == "layout") {
			if (value.empty() || value[0] != '/')
				return bad("layout: \"" + value +
				           "\" is not an absolute path (allowed: an absolute path, %n "
				           "stands for the node name)");
			cfg.layout_file = value;
		} else if (key == "limits") {
			if (value != "none")
				return bad("limits: \"" + value +
				           "\" is not available in this release (allowed: none)");
			cfg.limits = value;
		} else {
			return bad("unknown plugstack argument \"" + arg +
			           "\" (allowed: isolation=required|optional, layout=PATH, limits=none)");
		}
	}
	return cfg;
}

} // namespace flexslurm
