// SPDX-License-Identifier: GPL-2.0-or-later
// What flexslurm.yaml's values mean once read (core/model/config.hpp):
// sizes with binary units.
#include "suites.hpp"

#include "core/model/config.hpp"

using namespace flexslurm;

START_TEST(sizes)
{
	ck_assert_uint_eq(*parse_size("80GiB"), 80ULL << 30);
	ck_assert_uint_eq(*parse_size("512m"), 512ULL << 20);
	ck_assert_uint_eq(*parse_size("1T"), 1ULL << 40);
	ck_assert_uint_eq(*parse_size("4096"), 4096);
	ck_assert(!parse_size("GiB"));
	ck_assert(!parse_size("12PB"));
	ck_assert(!parse_size("99999999999999999999"));
	ck_assert(!parse_size("17179869184T")); // overflows
}
END_TEST

Suite *config_rules_suite()
{
	Suite *s = suite_create("config_rules");
	TCase *tc = tcase_create("values");
	tcase_add_test(tc, sizes);
	suite_add_tcase(s, tc);
	return s;
}
