// SPDX-License-Identifier: GPL-2.0-or-later
// AMD compute-unit masks (HSA_CU_MASK): each slice's CUs, a job's list and
// the variable's text.
#include "suites.hpp"

#include "core/io/kfd_topology.hpp"
#include "core/model/cu_mask.hpp"
#include "core/model/limits.hpp"

#include <map>

using namespace flexslurm;

START_TEST(slices_split_the_compute_units_disjointly)
{
	// MI210: 104 CUs, 4 slices of 26
	ck_assert(slice_compute_units(104, 4, 0) == (std::vector<CuRange>{{0, 25}}));
	ck_assert(slice_compute_units(104, 4, 3) == (std::vector<CuRange>{{78, 103}}));
	// 110 CUs (MI250X GCD) in 4: 27, 28, 27, 28; every CU exactly once
	for (int cus : {104, 110, 120, 228, 7}) {
		for (int slices : {1, 2, 3, 4, 7}) {
			int next = 0;
			for (int s = 0; s < slices; ++s) {
				auto r = slice_compute_units(cus, slices, s);
				ck_assert_uint_eq(r.size(), 1);
				ck_assert_int_eq(r[0].first, next);
				ck_assert_int_ge(r[0].last, r[0].first);
				const int width = r[0].last - r[0].first + 1;
				ck_assert(width == cus / slices || width == cus / slices + 1);
				next = r[0].last + 1;
			}
			ck_assert_int_eq(next, cus);
		}
	}
	// nonsense gives nothing
	ck_assert(slice_compute_units(104, 0, 0).empty());
	ck_assert(slice_compute_units(104, 4, 4).empty());
	ck_assert(slice_compute_units(104, 4, -1).empty());
	ck_assert(slice_compute_units(3, 4, 0).empty());
	ck_assert(slice_compute_units(1 << 20, 4, 0).empty());
}
END_TEST

START_TEST(job_lists_and_the_variable)
{
	ck_assert_str_eq(cu_list({0, 104, 4, {1}}).c_str(), "26-51");
	// adjacent slices merge, others stay apart, order of `held` does not matter
	ck_assert_str_eq(cu_list({0, 104, 4, {2, 1}}).c_str(), "26-77");
	ck_assert_str_eq(cu_list({0, 104, 4, {3, 0}}).c_str(), "0-25,78-103");
	ck_assert_str_eq(cu_list({0, 2, 2, {1}}).c_str(), "1");
	ck_assert_str_eq(cu_list({0, 104, 4, {9}}).c_str(), "");
	ck_assert_str_eq(cu_list({0, 0, 4, {0}}).c_str(), ""); // CU count unknown
	ck_assert_str_eq(hsa_cu_mask({{0, 104, 4, {0}}, {1, 104, 4, {2, 3}}}).c_str(), "0:0-25;1:52-103");
	// a device without a list keeps all its CUs: left out
	ck_assert_str_eq(hsa_cu_mask({{0, 0, 4, {0}}, {1, 104, 4, {3}}}).c_str(), "1:78-103");
	ck_assert_str_eq(hsa_cu_mask({}).c_str(), "");
}
END_TEST

namespace
{

// KFD properties of an MI210 (104 CUs: 416 SIMDs, 4 per CU) at PCI c1:00.0, render minor 129.
const char *const mi210_properties = "cpu_cores_count 0\n"
                                     "simd_count 416\n"
                                     "simd_per_cu 4\n"
                                     "location_id 49408\n"
                                     "domain 0\n"
                                     "drm_render_minor 129\n";

// An AMD node: two MI210, four slices each (the second at PCI c1:00.0).
SliceLayout amd_layout()
{
	auto l = SliceLayout::deserialize(
	        "flexslurm-layout 2\n"
	        "amd\t0\tmi210\t/d/dri/renderD128\t226:128\t0\t4\t25\t0\t\t0\t-\t0000:83:00.0\n"
	        "amd\t1\tmi210\t/d/dri/card1\t226:1\t4\t4\t25\t0\t\t0\t-\t0000:c1:00.0\n");
	ck_assert_msg(static_cast<bool>(l), "%s", l.error().c_str());
	return *l;
}

SliceEnv env_of(const std::map<std::string, std::string> &vars)
{
	auto env = SliceEnv::decode([&](const char *name) -> std::optional<std::string> {
		auto it = vars.find(name);
		return it == vars.end() ? std::nullopt : std::optional(it->second);
	});
	ck_assert_msg(static_cast<bool>(env), "%s", env.error().c_str());
	return *env;
}

SpankConfig cu_mask_config()
{
	SpankConfig c;
	c.limits[static_cast<int>(Vendor::Amd)] = LimitBackend::CuMask;
	return c;
}

} // namespace

START_TEST(kfd_properties_give_the_compute_units)
{
	auto gpu = parse_kfd_properties(mi210_properties);
	ck_assert(gpu.has_value());
	ck_assert_int_eq(gpu->compute_units, 104);
	ck_assert_int_eq(gpu->render_minor, 129);
	ck_assert_str(gpu->pci_bus_id, "0000:c1:00.0");
	// a CPU node (no SIMDs), no simd_per_cu, nonsense: no GPU
	ck_assert(!parse_kfd_properties("cpu_cores_count 64\nsimd_count 0\nsimd_per_cu 0\n"));
	ck_assert(!parse_kfd_properties("simd_count 416\n"));
	ck_assert(!parse_kfd_properties("simd_count x\nsimd_per_cu 4\n"));
	ck_assert(!parse_kfd_properties(""));
	// without location or render minor: the count alone
	gpu = parse_kfd_properties("simd_count 440\nsimd_per_cu 4\n");
	ck_assert(gpu.has_value());
	ck_assert_int_eq(gpu->compute_units, 110);
	ck_assert_int_eq(gpu->render_minor, -1);
	ck_assert(gpu->pci_bus_id.empty());
}
END_TEST

START_TEST(kfd_topology_is_read_through_injected_io)
{
	std::map<std::string, std::string> files = {
	        {"/fake/nodes/0/properties", "cpu_cores_count 64\nsimd_count 0\n"},
	        {"/fake/nodes/1/properties", mi210_properties},
	        {"/fake/nodes/2/properties", "simd_count 416\nsimd_per_cu 4\ndrm_render_minor 128\n"}};
	auto list = [](const std::string &dir, std::string &why) -> std::optional<std::vector<std::string>> {
		if (dir != "/fake/nodes") {
			why = "No such file or directory";
			return std::nullopt;
		}
		return std::vector<std::string>{".", "..", "2", "1", "0", "3"};
	};
	auto read = [&](const std::string &path) -> std::optional<std::string> {
		auto it = files.find(path);
		return it == files.end() ? std::nullopt : std::optional(it->second);
	};
	auto gpus = read_kfd_gpus("/fake/nodes", list, read);
	ck_assert(static_cast<bool>(gpus));
	ck_assert_uint_eq(gpus->size(), 2);
	ck_assert_int_eq((*gpus)[0].render_minor, 129); // node 1, then node 2
	ck_assert_int_eq((*gpus)[1].render_minor, 128);
	auto missing = read_kfd_gpus("/nowhere", list, read);
	ck_assert(!missing);
	ck_assert_str(missing.error(), "cannot list /nowhere: No such file or directory");
	// the real file system: an absent directory says so
	auto real = read_kfd_gpus("/nonexistent-kfd-topology");
	ck_assert(!real);
	ck_assert_str(real.error(), "cannot list /nonexistent-kfd-topology: No such file or directory");
}
END_TEST

START_TEST(cu_lists_are_checked)
{
	for (const char *ok : {"0", "0-25", "0-25,52-77", "1,3,5-6"})
		ck_assert_msg(valid_cu_list(ok), "%s", ok);
	for (const char *bad : {"", "-", "25-0", "0-25,10", "3,3", "a", "0-", "0,,1", "0-65536", "0;1"})
		ck_assert_msg(!valid_cu_list(bad), "%s", bad);
	ck_assert(!valid_cu_list(std::string(257, '1')));
}
END_TEST

START_TEST(a_jobs_slices_become_its_cus)
{
	const SliceLayout layout = amd_layout();
	const std::vector<KfdGpu> gpus = {{128, "", 104}, {-1, "0000:c1:00.0", 110}};
	// matched by render minor (renderD128), and by PCI bus id (card1)
	ck_assert_int_eq(compute_units_of(layout.devices()[0], gpus), 104);
	ck_assert_int_eq(compute_units_of(layout.devices()[1], gpus), 110);
	ck_assert_int_eq(compute_units_of(layout.devices()[1], {{128, "", 104}}), 0);

	// slices 1 and 2 of amd0, slice 3 of amd1
	const SliceEnv env = env_of({{"SLURM_VSLICE_DEVICES", "0,1"},
	                             {"SLURM_VSLICE_COUNTS", "2,1"},
	                             {"SLURM_VSLICE_POSITIONS", "1+2,3"}});
	JobLimits limits = job_limits(layout, env, 7, 1000, cu_mask_config());
	auto problems = assign_cu_masks(limits, layout, env, gpus, "");
	ck_assert_uint_eq(problems.size(), 0);
	ck_assert_str(limits.devices[0].cu_list, "26-77");
	ck_assert_str(limits.devices[1].cu_list, "82-109");
	ck_assert_str(hsa_cu_mask_of(limits.devices), "0:26-77;1:82-109");
	// the limits file carries the lists, and gives them back
	const std::string text = encode_job_limits(limits);
	ck_assert_str(text, "flexslurm-limits 1\njob 7 uid 1000\n"
	                    "amd 0 0 50 - cu_mask 26-77\n"
	                    "amd 1 1 25 - cu_mask 82-109\n");
	auto back = decode_job_limits(text);
	ck_assert_msg(static_cast<bool>(back), "%s", back.error().c_str());
	ck_assert(*back == limits);
	// a step holding amd1 only sees it as its GPU 0
	const DeviceSlices *amd1 = &layout.devices()[1];
	ck_assert_str(hsa_cu_mask_of(limits_for_step(limits, LimitBackend::CuMask, {amd1})), "0:82-109");
	// other backends set no mask
	JobLimits none = job_limits(layout, env, 7, 1000, SpankConfig{});
	ck_assert_uint_eq(assign_cu_masks(none, layout, env, gpus, "").size(), 0);
	ck_assert_str(hsa_cu_mask_of(none.devices), "");
}
END_TEST

START_TEST(unknown_cus_leave_the_variable_unset)
{
	const SliceLayout layout = amd_layout();
	const SliceEnv env = env_of({{"SLURM_VSLICE_DEVICES", "0,1"},
	                             {"SLURM_VSLICE_COUNTS", "1,1"},
	                             {"SLURM_VSLICE_POSITIONS", "0,0"}});
	JobLimits limits = job_limits(layout, env, 7, 1000, cu_mask_config());
	// KFD knows amd0 only
	auto problems = assign_cu_masks(limits, layout, env, {{128, "", 104}}, "");
	ck_assert_uint_eq(problems.size(), 1);
	ck_assert_str(
	        problems[0],
	        "amd device 1 (/d/dri/card1): its compute units are unknown (not in KFD's topology): HSA_CU_MASK is not set, its slices are scheduled and fenced, not limited");
	ck_assert_str(hsa_cu_mask_of(limits.devices), "0:0-25");
	ck_assert_str(encode_job_limits(limits), "flexslurm-limits 1\njob 7 uid 1000\n"
	                                         "amd 0 0 25 - cu_mask 0-25\n"
	                                         "amd 1 1 25 - cu_mask -\n");
	// no topology at all: every device, with the reader's reason
	JobLimits again = job_limits(layout, env, 7, 1000, cu_mask_config());
	problems = assign_cu_masks(again, layout, env, {}, "cannot list /sys/x: Permission denied");
	ck_assert_uint_eq(problems.size(), 2);
	ck_assert_str(
	        problems[0],
	        "amd device 0 (/d/dri/renderD128): its compute units are unknown (cannot list /sys/x: Permission denied): HSA_CU_MASK is not set, its slices are scheduled and fenced, not limited");
	ck_assert_str(hsa_cu_mask_of(again.devices), "");
	// no positions (an older gres/vslice): counts alone do not say which CUs
	const SliceEnv counts_only = env_of({{"SLURM_VSLICE_DEVICES", "0"}, {"SLURM_VSLICE_COUNTS", "1"}});
	JobLimits old = job_limits(layout, counts_only, 7, 1000, cu_mask_config());
	problems = assign_cu_masks(old, layout, counts_only, {{128, "", 104}}, "");
	ck_assert_uint_eq(problems.size(), 1);
	ck_assert_str(
	        problems[0],
	        "amd device 0 (/d/dri/renderD128): no SLURM_VSLICE_POSITIONS (gres/vslice older than the SPANK plugin?): HSA_CU_MASK is not set, its slices are scheduled and fenced, not limited");
}
END_TEST

START_TEST(limits_file_cu_lists_are_checked)
{
	auto err = [](const std::string &device_line) {
		auto r = decode_job_limits("flexslurm-limits 1\njob 7 uid 1000\n" + device_line + "\n");
		ck_assert(!r);
		return r.error();
	};
	ck_assert_str(err("amd 0 0 25 - cu_mask 0-25,10"),
	              "limits file: line 3: \"0-25,10\" is not a CU list");
	ck_assert_str(err("amd 0 0 25 - preload 0-25"),
	              "limits file: line 3: a CU list goes with cu_mask, and only with it");
	ck_assert_str(err("amd 0 0 25 - cu_mask"),
	              "limits file: line 3: a CU list goes with cu_mask, and only with it");
	ck_assert_str(err("nvidia 0 0 25 - cu_mask 0-25"),
	              "limits file: line 3: unknown backend \"cu_mask\"");
	ck_assert_str(err("amd 0 0 25 - vnpu"), "limits file: line 3: unknown backend \"vnpu\"");
	auto ok = decode_job_limits("flexslurm-limits 1\njob 7 uid 1000\nascend 100 0 100 - vnpu\n");
	ck_assert_msg(static_cast<bool>(ok), "%s", ok.error().c_str());
	ck_assert(ok->devices[0].backend == LimitBackend::Vnpu);
}
END_TEST

Suite *cu_mask_suite()
{
	Suite *s = suite_create("cu_mask");
	TCase *tc = tcase_create("cu_mask");
	tcase_add_test(tc, slices_split_the_compute_units_disjointly);
	tcase_add_test(tc, job_lists_and_the_variable);
	tcase_add_test(tc, kfd_properties_give_the_compute_units);
	tcase_add_test(tc, kfd_topology_is_read_through_injected_io);
	tcase_add_test(tc, cu_lists_are_checked);
	tcase_add_test(tc, a_jobs_slices_become_its_cus);
	tcase_add_test(tc, unknown_cus_leave_the_variable_unset);
	tcase_add_test(tc, limits_file_cu_lists_are_checked);
	suite_add_tcase(s, tc);
	return s;
}
