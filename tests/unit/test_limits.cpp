// SPDX-License-Identifier: GPL-2.0-or-later
// A job's in-device limits: from its slice variables, the root-owned
// limits file's codec, a step's share, and the backends' settings.
#include "suites.hpp"

#include "core/model/limits.hpp"
#include "slice_env_fixture.hpp"

#include <string>

using namespace flexslurm;

namespace
{

// A step's SLURM_VSLICE_DEVICES, decoded.
SliceEnv claim(const std::string &devices)
{
	auto env = SliceEnv::decode([&](const char *name) {
		return std::string_view(name) == devices_variable_name ? std::optional(devices)
		                                                       : std::nullopt;
	});
	ck_assert_msg(static_cast<bool>(env), "%s", env.error().c_str());
	return *env;
}

} // namespace

START_TEST(limits_from_slices)
{
	auto l = SliceLayout::deserialize("flexslurm-layout 1\n"
	                                  "nvidia\t0\tt4\t/d/nvidia0\t195:0\t0\t4\t25\t4026531840\t\n"
	                                  "nvidia\t1\tt4\t/d/nvidia1\t195:1\t4\t4\t25\t4026531840\t\n");
	ck_assert(static_cast<bool>(l));
	auto limits = device_limits(*l, *slice_env_of("0,1", "1,3"));
	ck_assert_uint_eq(limits.size(), 2);
	ck_assert_int_eq(limits[1].ordinal, 1);
	ck_assert_int_eq(limits[1].compute_percent, 75);
	ck_assert_uint_eq(limits[1].memory_mib, 11520);
	ck_assert_str(mps_limit_commands(limits, 1000), "set_default_active_thread_percentage 25\n"
	                                                "set_default_device_pinned_mem_limit 0 3840M\n"
	                                                "set_default_device_pinned_mem_limit 1 11520M\n"
	                                                "start_server -uid 1000\n");
	auto env =
	        preload_environment(limits, "/opt/libvgpu.so", "/usr/lib/other.so", "/run/j/7/preload.cache");
	std::string text;
	for (const auto &v : env)
		text += v.name + "=" + v.value + "\n";
	ck_assert_str(text, "LD_PRELOAD=/opt/libvgpu.so:/usr/lib/other.so\n"
	                    "CUDA_DEVICE_MEMORY_LIMIT_0=3840m\n"
	                    "CUDA_DEVICE_MEMORY_LIMIT_1=11520m\n"
	                    "CUDA_DEVICE_SM_LIMIT=25\n"
	                    "CUDA_DEVICE_MEMORY_SHARED_CACHE=/run/j/7/preload.cache\n");
	// the library in /etc/ld.so.preload: LD_PRELOAD is the user's business
	ck_assert_str(preload_environment(limits, "", "/x.so", "/c").front().name,
	              "CUDA_DEVICE_MEMORY_LIMIT_0");
	ck_assert_str(preload_config(limits, "/c"),
	              "CUDA_DEVICE_MEMORY_LIMIT_0=3840m\n"
	              "CUDA_DEVICE_MEMORY_LIMIT_1=11520m\n"
	              "CUDA_DEVICE_SM_LIMIT=25\nCUDA_DEVICE_MEMORY_SHARED_CACHE=/c\n");
	// counts that gres/vslice could not have written give no limit
	ck_assert(device_limits(*l, *slice_env_of("0,1", "9,9")).empty());
	ck_assert(!slice_env_of("0,1", "9,x"));
	ck_assert(preload_environment({}, "/opt/libvgpu.so", "", "/c").empty());
}
END_TEST

// The job prolog's limits: the slice variables against the layout (or its
// borrow view), each vendor's backend.
START_TEST(job_limits_from_the_prolog_environment)
{
	auto l = SliceLayout::deserialize(
	        "flexslurm-layout 1\n"
	        "nvidia\t0\tt4\t/d/nvidia0\t195:0\t0\t4\t25\t4026531840\t\t1073741824\n"
	        "amd\t0\tmi\t/d/dri/renderD128\t226:128\t4\t4\t25\t0\t\n");
	ck_assert_msg(static_cast<bool>(l), "%s", l.error().c_str());
	SliceEnv env;
	env.devices = {0, 0};
	env.counts = {2, 1};
	SpankConfig cfg;
	cfg.limits[static_cast<int>(Vendor::Nvidia)] = LimitBackend::Mps;
	JobLimits job = job_limits(*l, env, 7, 1000, cfg);
	ck_assert_uint_eq(job.job, 7);
	ck_assert_uint_eq(job.uid, 1000);
	ck_assert(job.devices ==
	          (std::vector<DeviceLimit>{{Vendor::Nvidia, 0, 0, 50, 7680, LimitBackend::Mps, {}},
	                                    {Vendor::Amd, 0, 0, 25, 0, LimitBackend::None, {}}}));
	env.borrowed = true; // a borrower: only memory no slice reserved
	job = job_limits(*l, env, 7, 1000, cfg);
	ck_assert_uint_eq(job.devices[0].memory_mib, 2048);
	// an index the layout does not know drops its own count, not the next one's
	env.borrowed = false;
	env.devices = {5, 0};
	job = job_limits(*l, env, 7, 1000, cfg);
	ck_assert_uint_eq(job.devices.size(), 1);
	ck_assert_int_eq(job.devices[0].compute_percent, 25);
	// a count beyond the device's slices: no limit
	env.devices = {0};
	env.counts = {5};
	ck_assert(job_limits(*l, env, 7, 1000, cfg).devices.empty());
}
END_TEST

START_TEST(job_limits_file_round_trip_and_bounds)
{
	JobLimits job;
	job.job = 42;
	job.uid = 1000;
	job.devices = {{Vendor::Nvidia, 1, 0, 50, 7680, LimitBackend::Mps, {}},
	               {Vendor::Amd, 0, 0, 25, 0, LimitBackend::Preload, {}}};
	const std::string text = encode_job_limits(job);
	ck_assert_str(text,
	              "flexslurm-limits 1\njob 42 uid 1000\nnvidia 1 0 50 7680 mps\namd 0 0 25 - preload\n");
	auto back = decode_job_limits(text);
	ck_assert_msg(static_cast<bool>(back), "%s", back.error().c_str());
	ck_assert(*back == job);
	auto err = [](const std::string &t) { return decode_job_limits(t).error(); };
	ck_assert_str(err("flexslurm-layout 1\n"), "limits file: not a flexslurm limits file (version 1)");
	ck_assert_str(err("flexslurm-limits 1\n"), "limits file: truncated");
	ck_assert_str(err("flexslurm-limits 1\njob 0 uid 1\n"),
	              "limits file: line 2: expected \"job <id> uid <uid>\"");
	const std::string head = "flexslurm-limits 1\njob 4 uid 1\n";
	for (const char *line : {"nvidia 1 0 101 5 mps", "nvidia 1 0 0 5 mps", "nvidia -1 0 5 5 mps",
	                         "intel 1 0 5 5 mps", "nvidia 1 0 5 0 mps", "nvidia 1 0 5 5",
	                         "nvidia 1 0 5 5 mps x", "nvidia 1 0 5 99999999999999999 mps"})
		ck_assert_msg(!decode_job_limits(head + line + "\n"), "accepted: %s", line);
	ck_assert_str(err(head + "amd 1 0 5 5 mps\n"), "limits file: line 3: unknown backend \"mps\"");
	ck_assert_str(err(head + "nvidia 1 0 5 5 mps"), "limits file: line 3 is not terminated");
	std::string many = head;
	for (int i = 0; i < 65; ++i)
		many += "nvidia " + std::to_string(i) + " 0 5 5 mps\n";
	ck_assert_str(err(many), "limits file: more than 64 devices");
	ck_assert_str(err(std::string(job_limits_max_bytes + 1, 'x')),
	              "limits file: larger than 16384 bytes");

	// a step that holds the job's second device only sees it as its device 0
	auto l = SliceLayout::deserialize("flexslurm-layout 1\n"
	                                  "nvidia\t0\tt4\t/d/nvidia0\t195:0\t0\t4\t25\t4026531840\t\n"
	                                  "nvidia\t1\tt4\t/d/nvidia1\t195:1\t4\t4\t25\t4026531840\t\n");
	JobLimits two;
	two.job = 5;
	two.devices = {{Vendor::Nvidia, 0, 0, 25, 3840, LimitBackend::Preload, {}},
	               {Vendor::Nvidia, 1, 1, 75, 11520, LimitBackend::Preload, {}}};
	auto step = limits_for_step(two, LimitBackend::Preload, l->devices_named({1}));
	ck_assert_uint_eq(step.size(), 1);
	ck_assert_int_eq(step[0].ordinal, 0);
	ck_assert_int_eq(step[0].compute_percent, 75);
	ck_assert(limits_for_step(two, LimitBackend::Mps, l->devices_named({0, 1})).empty());

	auto p = job_paths("/run/flexslurm/jobs/", 42);
	ck_assert_str(p.dir, "/run/flexslurm/jobs/42");
	ck_assert_str(p.limits, "/run/flexslurm/jobs/42/limits");
	ck_assert_str(p.preload_cache, "/run/flexslurm/jobs/42/preload.cache");
	ck_assert_str(p.mps_pipe, "/run/flexslurm/jobs/42/mps-pipe");
}
END_TEST

// What a step may use comes from the job's allocation (the prolog's root
// file), never from SLURM_VSLICE_DEVICES alone: a user can set that.
START_TEST(step_devices_never_exceed_the_jobs_allocation)
{
	SliceLayout l = mixed_layout();
	JobLimits job;
	job.job = 9;
	job.devices = {{Vendor::Nvidia, 1, 0, 25, 0, LimitBackend::None, {}},
	               {Vendor::Amd, 0, 1, 25, 0, LimitBackend::None, {}}};
	auto names = [](const std::vector<const DeviceSlices *> &v) {
		std::string out;
		for (const DeviceSlices *d : v)
			out += (out.empty() ? "" : " ") + d->device_path;
		return out;
	};
	// Slurm's own value: the job's devices (nvidia1, amd0).
	ck_assert_str(names(step_devices(l, &job, claim("1,0"))), "/d/nvidia1 /d/dri/renderD128");
	// A step holding part of them.
	ck_assert_str(names(step_devices(l, &job, claim("1"))), "/d/nvidia1");
	// A user's value naming devices the job does not hold: dropped.
	ck_assert_str(names(step_devices(l, &job, claim("0,1,0,1"))), "/d/nvidia1 /d/dri/renderD128");
	ck_assert_str(names(step_devices(l, &job, claim("0"))), "");
	ck_assert_str(names(step_devices(l, &job, claim("0,1,2,3,4,5,6,7"))), "/d/nvidia1");
	// No allocation on this node (no prolog state): nothing, whatever is claimed.
	ck_assert(step_devices(l, nullptr, claim("0,1")).empty());
	ck_assert(step_devices(l, &job, claim("")).empty());
	// The limits a step gets are then the job's for those devices.
	job.devices[0].backend = LimitBackend::Preload;
	auto lim = limits_for_step(job, LimitBackend::Preload, step_devices(l, &job, claim("0,1")));
	ck_assert_uint_eq(lim.size(), 1);
	ck_assert_int_eq(lim[0].host_index, 1);
	ck_assert_int_eq(lim[0].ordinal, 0);
}
END_TEST

// A mixed node: vendor indices restart per vendor, so a job holding only
// amd0 has SLURM_VSLICE_DEVICES=0, which alone would name nvidia0 (its
// limits, its private /dev). SLURM_VSLICE_VENDORS says whose device 0.
START_TEST(mixed_node_devices_are_named_by_vendor)
{
	SliceLayout l = mixed_layout();
	// gres/vslice's variables for slices 8-9 (amd0) and 4 (nvidia1)
	auto vars = slice_environment(l, {8, 9}, DeviceNumbering::Physical);
	auto get = [&](const char *name) -> std::optional<std::string> {
		for (const EnvVar &v : vars)
			if (v.name == name)
				return v.value;
		return std::nullopt;
	};
	ck_assert_str(get("SLURM_VSLICE_DEVICES").value_or("-"), "0");
	ck_assert_str(get("SLURM_VSLICE_VENDORS").value_or("-"), "amd");
	ck_assert_str(get("ROCR_VISIBLE_DEVICES").value_or("-"), "0");
	ck_assert(!get("CUDA_VISIBLE_DEVICES"));
	auto env = SliceEnv::decode(get);
	ck_assert_msg(static_cast<bool>(env), "%s", env.error().c_str());
	SpankConfig cfg;
	JobLimits job = job_limits(l, *env, 3, 1000, cfg);
	ck_assert_uint_eq(job.devices.size(), 1);
	ck_assert(job.devices[0].vendor == Vendor::Amd);
	ck_assert_int_eq(job.devices[0].compute_percent, 50);
	auto step = step_devices(l, &job, *env);
	ck_assert_uint_eq(step.size(), 1);
	ck_assert_str(step[0]->device_path, "/d/dri/renderD128");
	// without the vendors (an older gres/vslice): the first vendor's device 0
	ck_assert_str(l.devices_named({0})[0]->device_path, "/d/nvidia0");
	// both vendors, in job order
	vars = slice_environment(l, {4, 8}, DeviceNumbering::Local);
	ck_assert_str(get("SLURM_VSLICE_DEVICES").value_or("-"), "1,0");
	ck_assert_str(get("SLURM_VSLICE_VENDORS").value_or("-"), "nvidia,amd");
	ck_assert_str(get("CUDA_VISIBLE_DEVICES").value_or("-"), "0");
	ck_assert_str(get("ROCR_VISIBLE_DEVICES").value_or("-"), "0");
	env = SliceEnv::decode(get);
	ck_assert_msg(static_cast<bool>(env), "%s", env.error().c_str());
	auto named = l.devices_named(env->devices, env->vendors);
	ck_assert_str(named[0]->device_path, "/d/nvidia1");
	ck_assert_str(named[1]->device_path, "/d/dri/renderD128");
	// The prolog's environment: Slurm calls gres/vslice once per type, on one
	// environment. The second call (amd0's slices 8-9) joins the first's (nvidia1: 1 slice).
	vars = slice_environment(l, {5}, DeviceNumbering::Physical);
	auto first = SliceEnv::decode(get);
	ck_assert(static_cast<bool>(first));
	auto joined = with_earlier_slices(l, *first, {8, 9});
	// the earlier slice where it is (SLURM_VSLICE_POSITIONS: nvidia1's second), not the first
	ck_assert(joined == (std::vector<int>{5, 8, 9}));
	ck_assert_str(get("SLURM_VSLICE_POSITIONS").value_or("-"), "1");
	// without positions (an older gres/vslice): as many of its first slices as counted
	SliceEnv counts_only = *first;
	counts_only.positions.clear();
	ck_assert(with_earlier_slices(l, counts_only, {8, 9}) == (std::vector<int>{4, 8, 9}));
	vars = slice_environment(l, joined, DeviceNumbering::Physical);
	ck_assert_str(get("SLURM_VSLICE_DEVICES").value_or("-"), "1,0");
	ck_assert_str(get("SLURM_VSLICE_VENDORS").value_or("-"), "nvidia,amd");
	ck_assert_str(get("SLURM_VSLICE_COUNTS").value_or("-"), "1,2");
	ck_assert_str(get("SLURM_VSLICE_POSITIONS").value_or("-"), "1,0+1");
	// a device the call holds itself keeps its own slices; nothing earlier: unchanged
	ck_assert(with_earlier_slices(l, *first, {5, 6}) == (std::vector<int>{5, 6}));
	ck_assert(with_earlier_slices(l, SliceEnv{}, {9, 8}) == (std::vector<int>{8, 9}));
	// a malformed list is refused, naming the variable
	auto bad = SliceEnv::decode([](const char *name) -> std::optional<std::string> {
		if (std::string_view(name) == "SLURM_VSLICE_DEVICES")
			return "0,1";
		if (std::string_view(name) == "SLURM_VSLICE_VENDORS")
			return "amd,intel";
		return std::nullopt;
	});
	ck_assert(!bad);
	ck_assert_msg(bad.error().starts_with("SLURM_VSLICE_VENDORS: entry 2"), "%s", bad.error().c_str());
	bad = SliceEnv::decode([](const char *name) -> std::optional<std::string> {
		if (std::string_view(name) == "SLURM_VSLICE_DEVICES")
			return "0,1";
		if (std::string_view(name) == "SLURM_VSLICE_VENDORS")
			return "amd";
		return std::nullopt;
	});
	ck_assert(!bad);
	ck_assert_msg(bad.error().find("1 entries for the 2 devices") != std::string::npos, "%s",
	              bad.error().c_str());
}
END_TEST

Suite *limits_suite()
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("limits");
	tcase_add_test(tc, limits_from_slices);
	tcase_add_test(tc, job_limits_from_the_prolog_environment);
	tcase_add_test(tc, job_limits_file_round_trip_and_bounds);
	tcase_add_test(tc, step_devices_never_exceed_the_jobs_allocation);
	tcase_add_test(tc, mixed_node_devices_are_named_by_vendor);
	suite_add_tcase(s, tc);
	return s;
}
