// SPDX-License-Identifier: GPL-2.0-or-later
// AMD compute-unit masks (HSA_CU_MASK): each slice's CUs, a job's list and
// the variable's text.
#include "suites.hpp"

#include "core/model/cu_mask.hpp"

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

Suite *cu_mask_suite()
{
	Suite *s = suite_create("cu_mask");
	TCase *tc = tcase_create("cu_mask");
	tcase_add_test(tc, slices_split_the_compute_units_disjointly);
	tcase_add_test(tc, job_lists_and_the_variable);
	suite_add_tcase(s, tc);
	return s;
}
