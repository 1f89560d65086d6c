// SPDX-License-Identifier: GPL-2.0-or-later
// Which device nodes a job keeps: its slices' devices and gpu units, and
// the directory its private view covers.
#include "suites.hpp"

#include "core/model/isolation_plan.hpp"
#include "slice_env_fixture.hpp"

#include <string>

using namespace flexslurm;

START_TEST(held_devices_resolve_vendor_indices_in_layout_order)
{
	SliceLayout l = mixed_layout();
	auto held = devices_of(l, "1,0"); // nvidia1, then amd0 (not nvidia0)
	ck_assert_uint_eq(held.size(), 2);
	ck_assert_str(held[0]->device_path, "/d/nvidia1");
	ck_assert_str(held[1]->device_path, "/d/dri/renderD128");
	// A version 1 layout has no gpu units: gres/gpu unit 3 is the fourth device.
	ck_assert_str(paths(gpu_unit_paths(l, "3")), "/d/dri/renderD129");
	ck_assert(!slice_env_of("x,,9"));
	ck_assert(devices_of(l, "9").empty());
	ck_assert(gpu_unit_paths(l, "17").empty());
	IsolationPlan plan = plan_isolation(l, held_device_paths(l, devices_of(l, "0"), "1"));
	ck_assert_str(paths(plan.visible), "/d/nvidia0 /d/nvidia1");
	ck_assert_str(paths(plan.hidden), "/d/dri/renderD128 /d/dri/renderD129");
	plan = plan_isolation(l, {});
	ck_assert_uint_eq(plan.hidden.size(), 4);
}
END_TEST

// The one mapping from SLURM_VSLICE_DEVICES to devices: vendor indices in
// job order (by vendor, then PCI order), one entry per index.
START_TEST(layout_names_devices_in_job_order)
{
	SliceLayout l = mixed_layout();
	auto named = l.devices_named({0, 1, 0, 1});
	ck_assert_uint_eq(named.size(), 4);
	ck_assert_str(named[0]->device_path, "/d/nvidia0");
	ck_assert_str(named[1]->device_path, "/d/nvidia1");
	ck_assert_str(named[2]->device_path, "/d/dri/renderD128");
	ck_assert_str(named[3]->device_path, "/d/dri/renderD129");
	named = l.devices_named({1, 7, 0});
	ck_assert_str(named[0]->device_path, "/d/nvidia1");
	ck_assert_ptr_null(named[1]);
	ck_assert_str(named[2]->device_path, "/d/dri/renderD128");
	ck_assert(l.devices_named({}).empty());
	// the slices' share, the one arithmetic behind the variables and the limits
	const DeviceSlices &d = l.devices()[0];
	ck_assert_int_eq(d.share_percent(3), 75);
	ck_assert_int_eq(d.share_percent(5), 100);
	ck_assert_uint_eq(d.share_mib(3), 0);
}
END_TEST

START_TEST(private_view_covers_the_common_parent)
{
	SliceLayout l = mixed_layout();
	ck_assert_str(plan_isolation(l, held_device_paths(l, devices_of(l, "0"), "")).device_dir(), "/d");
	ck_assert_str(plan_isolation(l, held_device_paths(l, devices_of(l, "1,0,1"), "")).device_dir(), "/d");
	ck_assert_str(plan_isolation(l, held_device_paths(l, devices_of(l, "0,1"), "")).device_dir(),
	              "/d/dri");
	IsolationPlan none;
	ck_assert_str(none.device_dir(), "");
	// the slices' devices and the gpu units', each once
	ck_assert_str(paths(held_device_paths(l, l.devices_named({1}), "1,1")), "/d/nvidia1");
}
END_TEST

Suite *isolation_plan_suite()
{
	Suite *s = suite_create("isolation_plan");
	TCase *tc = tcase_create("isolation_plan");
	tcase_add_test(tc, held_devices_resolve_vendor_indices_in_layout_order);
	tcase_add_test(tc, layout_names_devices_in_job_order);
	tcase_add_test(tc, private_view_covers_the_common_parent);
	suite_add_tcase(s, tc);
	return s;
}
