// SPDX-License-Identifier: GPL-2.0-or-later
// The one "root or SlurmUser" check (core/util/uids.hpp) and the one
// layout-path default (core/util/node_name.hpp) that both configs start from.
#include "suites.hpp"

#include "core/model/config.hpp"
#include "core/model/spank_config.hpp"
#include "core/util/uids.hpp"

using namespace flexslurm;

START_TEST(root_and_slurm_user_only)
{
	const auto trusted = root_and_slurm_user(64030);
	ck_assert(uid_allowed(trusted, 0));
	ck_assert(uid_allowed(trusted, 64030));
	ck_assert(!uid_allowed(trusted, 1000));
	const auto root_only = root_and_slurm_user(0); // SlurmUser=root
	ck_assert_uint_eq(root_only.size(), 1);
	ck_assert(uid_allowed(root_only, 0) && !uid_allowed(root_only, 64030));
	ck_assert(!uid_allowed({}, 0));
}
END_TEST

START_TEST(one_layout_path_default)
{
	ck_assert(Config{}.layout_file == default_layout_file);
	ck_assert(SpankConfig{}.layout_file == default_layout_file);
	ck_assert(expand_node_name(default_layout_file, "n1") == "/run/flexslurm/layout.n1");
}
END_TEST

Suite *uids_suite()
{
	Suite *s = suite_create("uids");
	TCase *tc = tcase_create("uids");
	tcase_add_test(tc, root_and_slurm_user_only);
	tcase_add_test(tc, one_layout_path_default);
	suite_add_tcase(s, tc);
	return s;
}
