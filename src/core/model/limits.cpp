// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/limits.hpp"

#include "core/util/text.hpp"

#include <algorithm>
#include <limits>

namespace flexslurm
{

namespace
{

// A device's number inside a job or step: from 0 per vendor, in the order
// the devices are met.
class VendorOrdinals
{
public:
	int next(Vendor v) noexcept { return next_[static_cast<size_t>(v)]++; }

private:
	int next_[3] = {0, 0, 0};
};

} // namespace

std::vector<DeviceLimit> device_limits(const SliceLayout &layout, const SliceEnv &env)
{
	std::vector<DeviceLimit> out;
	VendorOrdinals ordinals;
	const auto named = layout.devices_named(env.devices, env.vendors);
	for (size_t i = 0; i < named.size() && i < env.counts.size(); ++i) {
		const DeviceSlices *d = named[i];
		const int count = env.counts[i];
		if (!d || count > d->slices)
			continue; // not a device or count gres/vslice wrote: no limit from it
		DeviceLimit l;
		l.vendor = d->vendor;
		l.host_index = d->vendor_index;
		l.ordinal = ordinals.next(d->vendor);
		l.compute_percent = d->share_percent(count);
		l.memory_mib = d->share_mib(count);
		out.push_back(l);
	}
	return out;
}

JobLimits job_limits(const SliceLayout &layout, const SliceEnv &env, uint32_t job, uint32_t uid,
                     const SpankConfig &config)
{
	JobLimits limits;
	limits.job = job;
	limits.uid = uid;
	limits.devices = device_limits(env.borrowed ? layout.borrow_view() : layout, env);
	for (DeviceLimit &l : limits.devices)
		l.backend = config.limits_for(l.vendor);
	return limits;
}

std::string encode_job_limits(const JobLimits &limits)
{
	std::string out = "flexslurm-limits 1\njob " + std::to_string(limits.job) + " uid " +
	                  std::to_string(limits.uid) + "\n";
	for (const DeviceLimit &l : limits.devices)
		out += std::string(vendor_name(l.vendor)) + " " + std::to_string(l.host_index) + " " +
		       std::to_string(l.ordinal) + " " + std::to_string(l.compute_percent) + " " +
		       (l.memory_mib ? std::to_string(l.memory_mib) : "-") + " " +
		       limit_backend_name(l.backend) +
		       (l.backend == LimitBackend::CuMask ? " " + (l.cu_list.empty() ? "-" : l.cu_list)
		                                          : "") +
		       "\n";
	return out;
}

Result<JobLimits> decode_job_limits(std::string_view text)
{
	auto bad = [](const std::string &why) { return Result<JobLimits>::failure("limits file: " + why); };
	if (text.size() > job_limits_max_bytes)
		return bad("larger than " + std::to_string(job_limits_max_bytes) + " bytes");
	JobLimits out;
	size_t pos = 0, line_no = 0;
	while (pos < text.size()) {
		const size_t end = text.find('\n', pos);
		if (end == std::string_view::npos)
			return bad("line " + std::to_string(line_no + 1) + " is not terminated");
		const std::string_view line = text.substr(pos, end - pos);
		pos = end + 1;
		const auto f = split(line, ' ');
		const std::string where = "line " + std::to_string(++line_no) + ": ";
		if (line_no == 1) {
			if (line != "flexslurm-limits 1")
				return bad("not a flexslurm limits file (version 1)");
			continue;
		}
		if (line_no == 2) {
			if (f.size() != 4 || f[0] != "job" || f[2] != "uid" ||
			    !parse_number<uint32_t>(f[1], out.job, 1, UINT32_MAX) ||
			    !parse_number<uint32_t>(f[3], out.uid, 0, UINT32_MAX - 1))
				return bad(where + "expected \"job <id> uid <uid>\"");
			continue;
		}
		if (out.devices.size() >= 64)
			return bad("more than 64 devices");
		DeviceLimit l;
		auto vendor = f.size() == 6 || f.size() == 7 ? parse_vendor(std::string(f[0])) : std::nullopt;
		if (!vendor || !parse_number(f[1], l.host_index, 0, max_vendor_index) ||
		    !parse_number(f[2], l.ordinal, 0, 4095) ||
		    !parse_number(f[3], l.compute_percent, 1, 100) ||
		    (f[4] != "-" && !parse_number<uint64_t>(f[4], l.memory_mib, 1, uint64_t(1) << 40)))
			return bad(
			        where +
			        "expected \"<vendor> <index> <ordinal> <percent 1-100> <MiB or -> <backend>\"");
		l.vendor = *vendor;
		const auto backend = parse_limit_backend(f[5]);
		if (!backend || !backend_allowed(*backend, l.vendor))
			return bad(where + "unknown backend \"" + std::string(f[5]) + "\"");
		l.backend = *backend;
		if ((f.size() == 7) != (l.backend == LimitBackend::CuMask))
			return bad(where + "a CU list goes with cu_mask, and only with it");
		if (f.size() == 7 && f[6] != "-") {
			if (!valid_cu_list(f[6]))
				return bad(where + "\"" + std::string(f[6].substr(0, 32)) +
				           "\" is not a CU list");
			l.cu_list = std::string(f[6]);
		}
		out.devices.push_back(l);
	}
	if (line_no < 2)
		return bad("truncated");
	return out;
}

int compute_units_of(const DeviceSlices &device, const std::vector<KfdGpu> &gpus)
{
	const std::string_view path = device.device_path;
	const auto slash = path.rfind('/');
	const std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
	int minor = -1;
	if (base.starts_with("renderD") && !parse_number(base.substr(7), minor, 0, (1 << 20) - 1))
		minor = -1;
	for (const KfdGpu &g : gpus)
		if (minor >= 0 && g.render_minor == minor)
			return g.compute_units;
	for (const KfdGpu &g : gpus)
		if (!device.pci_bus_id.empty() && g.pci_bus_id == device.pci_bus_id)
			return g.compute_units;
	return 0;
}

std::vector<std::string> assign_cu_masks(JobLimits &limits, const SliceLayout &layout, const SliceEnv &env,
                                         const std::vector<KfdGpu> &gpus, std::string_view gpus_problem)
{
	std::vector<std::string> problems;
	const SliceLayout &view = env.borrowed ? layout.borrow_view() : layout;
	const auto named = view.devices_named(env.devices, env.vendors);
	for (size_t i = 0; i < named.size(); ++i) {
		const DeviceSlices *d = named[i];
		if (!d)
			continue;
		for (DeviceLimit &l : limits.devices) {
			if (!l.is(*d) || l.backend != LimitBackend::CuMask)
				continue;
			const std::string device =
			        "amd device " + std::to_string(d->vendor_index) + " (" + d->device_path + ")";
			const int cus = compute_units_of(*d, gpus);
			if (cus == 0) {
				problems.push_back(
				        device + ": its compute units are unknown (" +
				        (gpus_problem.empty() ? "not in KFD's topology"
				                              : std::string(gpus_problem)) +
				        "): HSA_CU_MASK is not set, its slices are scheduled and fenced, not limited");
			} else if (i >= env.positions.size()) {
				problems.push_back(
				        device +
				        ": no SLURM_VSLICE_POSITIONS (gres/vslice older than the SPANK plugin?): HSA_CU_MASK is not set, its slices are scheduled and fenced, not limited");
			} else {
				l.cu_list = cu_list({l.ordinal, cus, d->slices, env.positions[i]});
				if (l.cu_list.empty())
					problems.push_back(device + ": " + std::to_string(cus) +
					                   " compute units cannot be cut into " +
					                   std::to_string(d->slices) +
					                   " slices: HSA_CU_MASK is not set");
			}
		}
	}
	return problems;
}

std::string hsa_cu_mask_of(const std::vector<DeviceLimit> &limits)
{
	std::string out;
	for (const DeviceLimit &l : limits) {
		if (l.backend != LimitBackend::CuMask || l.cu_list.empty())
			continue;
		out += (out.empty() ? "" : ";") + std::to_string(l.ordinal) + ":" + l.cu_list;
	}
	return out;
}

std::vector<DeviceLimit> limits_for_step(const JobLimits &job, LimitBackend backend,
                                         const std::vector<const DeviceSlices *> &step_devices)
{
	std::vector<DeviceLimit> out;
	VendorOrdinals ordinals;
	for (const DeviceSlices *d : step_devices)
		for (const DeviceLimit &l : job.devices)
			if (l.is(*d)) {
				DeviceLimit s = l;
				s.ordinal = ordinals.next(l.vendor);
				if (s.backend == backend)
					out.push_back(s);
				break;
			}
	return out;
}

std::vector<const DeviceSlices *> step_devices(const SliceLayout &layout, const JobLimits *job,
                                               const SliceEnv &claimed)
{
	std::vector<const DeviceSlices *> out;
	if (!job)
		return out;
	for (const DeviceSlices *d : layout.devices_named(claimed.devices, claimed.vendors))
		if (d && std::any_of(job->devices.begin(), job->devices.end(),
		                     [&](const DeviceLimit &l) { return l.is(*d); }))
			out.push_back(d);
	return out;
}

JobPaths job_paths(const std::string &job_dir, uint32_t job)
{
	JobPaths p;
	p.dir = job_dir + (job_dir.ends_with('/') ? "" : "/") + std::to_string(job);
	p.limits = p.dir + "/limits";
	p.preload_conf = p.dir + "/preload.conf";
	p.preload_cache = p.dir + "/preload.cache";
	p.mps_pipe = p.dir + "/mps-pipe";
	p.mps_log = p.dir + "/mps-log";
	return p;
}

std::optional<uint32_t> job_of_mps_pipe(std::string_view path)
{
	while (path.size() > 1 && path.back() == '/')
		path.remove_suffix(1);
	constexpr std::string_view leaf = "/mps-pipe";
	if (!path.ends_with(leaf))
		return std::nullopt;
	path.remove_suffix(leaf.size());
	const size_t slash = path.rfind('/');
	uint32_t job = 0;
	if (slash == std::string_view::npos ||
	    !parse_number<uint32_t>(path.substr(slash + 1), job, 1, std::numeric_limits<uint32_t>::max()))
		return std::nullopt;
	return job;
}

namespace
{

// HAMi-core's variables for `limits`: the one list behind both the per-job
// file and the tasks' environment.
std::vector<EnvVar> preload_variables(const std::vector<DeviceLimit> &limits, const std::string &cache)
{
	std::vector<EnvVar> vars;
	int sm = 100;
	for (const DeviceLimit &l : limits) {
		sm = std::min(sm, l.compute_percent);
		if (l.memory_mib)
			vars.push_back({"CUDA_DEVICE_MEMORY_LIMIT_" + std::to_string(l.ordinal),
			                std::to_string(l.memory_mib) + "m"});
	}
	vars.push_back({"CUDA_DEVICE_SM_LIMIT", std::to_string(sm)});
	vars.push_back({"CUDA_DEVICE_MEMORY_SHARED_CACHE", cache});
	return vars;
}

} // namespace

std::string preload_config(const std::vector<DeviceLimit> &limits, const std::string &cache)
{
	std::string out;
	for (const EnvVar &v : preload_variables(limits, cache))
		out += v.name + "=" + v.value + "\n";
	return out;
}

std::vector<EnvVar> preload_environment(const std::vector<DeviceLimit> &limits, const std::string &library,
                                        std::string_view current_ld_preload, const std::string &cache)
{
	std::vector<EnvVar> env;
	if (limits.empty())
		return env;
	if (!library.empty()) {
		std::string preload = library;
		if (!current_ld_preload.empty() && current_ld_preload.find(library) == std::string_view::npos)
			preload += ":" + std::string(current_ld_preload);
		else if (!current_ld_preload.empty())
			preload = std::string(current_ld_preload);
		env.push_back({"LD_PRELOAD", preload});
	}
	for (EnvVar &v : preload_variables(limits, cache))
		env.push_back(std::move(v));
	return env;
}

std::string mps_limit_commands(const std::vector<DeviceLimit> &limits, uint32_t uid)
{
	if (limits.empty())
		return "";
	int percent = 100;
	std::string mem;
	for (const DeviceLimit &l : limits) {
		percent = std::min(percent, l.compute_percent);
		if (l.memory_mib)
			mem += "set_default_device_pinned_mem_limit " + std::to_string(l.ordinal) + " " +
			       std::to_string(l.memory_mib) + "M\n";
	}
	return "set_default_active_thread_percentage " + std::to_string(percent) + "\n" + mem +
	       "start_server -uid " + std::to_string(uid) + "\n";
}

} // namespace flexslurm
