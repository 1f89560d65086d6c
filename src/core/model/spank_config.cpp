// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/spank_config.hpp"

#include "core/util/names.hpp"

namespace flexslurm
{

namespace
{

const char *const allowed_args =
        "isolation=required|optional, layout=PATH, limits[.VENDOR]=none|preload|mps|cu_mask|vnpu, preload=PATH|system, mps_control=PATH, job_dir=PATH, kfd_topology=PATH";

constexpr NameTable<LimitBackend> limit_backend_names[] = {
        {LimitBackend::None, "none"},      {LimitBackend::Preload, "preload"}, {LimitBackend::Mps, "mps"},
        {LimitBackend::CuMask, "cu_mask"}, {LimitBackend::Vnpu, "vnpu"},
};

// The choices a vendor allows, for its error message.
const char *allowed_for(Vendor v) noexcept
{
	switch (v) {
	case Vendor::Nvidia:
		return "none, preload, mps";
	case Vendor::Amd:
		return "none, preload, cu_mask";
	case Vendor::Ascend:
		return "none, preload, vnpu";
	}
	return "none";
}

} // namespace

bool backend_allowed(LimitBackend backend, Vendor vendor) noexcept
{
	switch (backend) {
	case LimitBackend::None:
	case LimitBackend::Preload:
		return true;
	case LimitBackend::Mps:
		return vendor == Vendor::Nvidia;
	case LimitBackend::CuMask:
		return vendor == Vendor::Amd;
	case LimitBackend::Vnpu:
		return vendor == Vendor::Ascend;
	}
	return false;
}

const char *limit_backend_name(LimitBackend backend) noexcept
{
	return name_of(limit_backend_names, backend, "none").data(); // the table's names are literals
}

std::optional<LimitBackend> parse_limit_backend(std::string_view name) noexcept
{
	return value_of(limit_backend_names, name);
}

std::vector<std::string> plugstack_args(const SpankConfig &config)
{
	std::vector<std::string> args = {
	        std::string("isolation=") +
	                (config.isolation == FailurePolicy::Required ? "required" : "optional"),
	        "layout=" + config.layout_file};
	for (Vendor v : {Vendor::Nvidia, Vendor::Amd, Vendor::Ascend})
		args.push_back("limits." + std::string(vendor_name(v)) + "=" +
		               limit_backend_name(config.limits_for(v)));
	if (config.preload_system)
		args.emplace_back("preload=system");
	else if (!config.preload.empty())
		args.push_back("preload=" + config.preload);
	args.push_back("mps_control=" + config.mps_control);
	args.push_back("job_dir=" + config.job_dir);
	args.push_back("kfd_topology=" + config.kfd_topology);
	return args;
}

Result<SpankConfig> parse_plugstack_args(const std::vector<std::string> &args)
{
	SpankConfig cfg;
	auto bad = [](const std::string &what) { return Result<SpankConfig>::failure(what); };
	auto absolute = [&](const std::string &key, const std::string &value, std::string &out) {
		if (value.empty() || value[0] != '/')
			return false;
		out = value;
		(void)key;
		return true;
	};
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
		} else if (key == "preload" && value == "system") {
			cfg.preload.clear();
			cfg.preload_system = true;
		} else if (key == "layout" || key == "preload" || key == "mps_control" || key == "job_dir" ||
		           key == "kfd_topology") {
			std::string &out = key == "layout"         ? cfg.layout_file
			                   : key == "preload"      ? cfg.preload
			                   : key == "job_dir"      ? cfg.job_dir
			                   : key == "kfd_topology" ? cfg.kfd_topology
			                                           : cfg.mps_control;
			if (key == "preload")
				cfg.preload_system = false;
			if (!absolute(key, value, out))
				return bad(
				        key + ": \"" + value +
				        "\" is not an absolute path (allowed: an absolute path, %n stands for the node name)");
		} else if (key == "limits" || key.rfind("limits.", 0) == 0) {
			const auto parsed_backend = parse_limit_backend(value);
			if (!parsed_backend)
				return bad(key + ": \"" + value +
				           "\" is not allowed (allowed: none, preload, mps, cu_mask, vnpu)");
			const LimitBackend backend = *parsed_backend;
			if (key == "limits") {
				// A vendor's own choice (mps, cu_mask, vnpu) is that vendor's only: the
				// others keep theirs.
				for (Vendor v : {Vendor::Nvidia, Vendor::Amd, Vendor::Ascend})
					if (backend_allowed(backend, v))
						cfg.limits[static_cast<int>(v)] = backend;
				continue;
			}
			auto vendor = parse_vendor(key.substr(7));
			if (!vendor)
				return bad(key + ": unknown vendor \"" + key.substr(7) +
				           "\" (allowed: nvidia, amd, ascend)");
			if (!backend_allowed(backend, *vendor))
				return bad(key + ": " + value + " is " +
				           (backend == LimitBackend::Mps      ? "NVIDIA's"
				            : backend == LimitBackend::CuMask ? "AMD's"
				                                              : "Ascend's") +
				           " (allowed: " + allowed_for(*vendor) + ")");
			cfg.limits[static_cast<int>(*vendor)] = backend;
		} else if (key == "mps_dir") {
			return bad(
			        "mps_dir: replaced by job_dir=PATH (each job's limits and MPS directories, root's; default /run/flexslurm/jobs): remove mps_dir");
		} else {
			return bad("unknown plugstack argument \"" + arg + "\" (allowed: " + allowed_args +
			           ")");
		}
	}
	for (LimitBackend b : cfg.limits)
		if (b == LimitBackend::Preload && cfg.preload.empty() && !cfg.preload_system)
			return bad(
			        "limits: preload needs preload=PATH (the interception library) or preload=system (it is in /etc/ld.so.preload)");
	return cfg;
}

} // namespace flexslurm
