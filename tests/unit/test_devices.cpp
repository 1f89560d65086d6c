// SPDX-License-Identifier: GPL-2.0-or-later
// The accelerators as data (core/model/devices.hpp): the GRES type a
// device gets from its model name or PCI id.
#include "suites.hpp"

#include "core/model/devices.hpp"

using namespace flexslurm;

START_TEST(gres_type_names)
{
	ck_assert_str(gres_type_for(Vendor::Nvidia, "NVIDIA H100 80GB HBM3", 0).c_str(), "h100");
	ck_assert_str(gres_type_for(Vendor::Nvidia, "NVIDIA A100-SXM4-80GB", 0).c_str(), "a100");
	ck_assert_str(gres_type_for(Vendor::Nvidia, "Tesla T4", 0).c_str(), "t4");
	ck_assert_str(gres_type_for(Vendor::Amd, "AMD Instinct MI210", 0).c_str(), "mi210");
	ck_assert_str(gres_type_for(Vendor::Ascend, "", 0xd801).c_str(), "ascend910");
	ck_assert_str(gres_type_for(Vendor::Nvidia, "", 0x20b2).c_str(), "a100");
	ck_assert_str(gres_type_for(Vendor::Nvidia, "", 0xffff).c_str(), "nvidia");
}
END_TEST

Suite *devices_suite()
{
	Suite *s = suite_create("devices");
	TCase *tc = tcase_create("names");
	tcase_add_test(tc, gres_type_names);
	suite_add_tcase(s, tc);
	return s;
}
