// SPDX-License-Identifier: GPL-2.0-or-later
// An admin's requests (flexslurm-lending): round trips, and malformed
// requests told apart from texts that are not admin requests at all.
#include "suites.hpp"

#include "core/model/admin_request.hpp"

using namespace flexslurm;

START_TEST(admin_requests)
{
	AdminRequest reclaim;
	reclaim.kind = AdminRequest::Kind::Reclaim;
	reclaim.job = 4242;
	auto back = parse_admin(encode_admin(reclaim));
	ck_assert(back && *back && (*back)->kind == AdminRequest::Kind::Reclaim && (*back)->job == 4242);
	auto status = parse_admin(encode_admin(AdminRequest{}));
	ck_assert(status && *status && (*status)->kind == AdminRequest::Kind::Status);
	AdminRequest devices;
	devices.kind = AdminRequest::Kind::Devices;
	ck_assert_str(encode_admin(devices), "flexslurm-admin 1\ndevices\nend\n");
	auto devices_back = parse_admin(encode_admin(devices));
	ck_assert(devices_back && *devices_back && (*devices_back)->kind == AdminRequest::Kind::Devices);
	// A node report is not an admin request at all.
	ck_assert(!parse_admin("flexslurm-report 1\nnode n1\n"));
	for (const char *bad :
	     {"flexslurm-admin 1\nreclaim 0\nend\n", "flexslurm-admin 1\nreclaim 4294967296\nend\n",
	      "flexslurm-admin 1\nreclaim 12x\nend\n", "flexslurm-admin 1\nreclaim 12\n",
	      "flexslurm-admin 1\nstatus\nend\nmore\n", "flexslurm-admin 1\ncancel 5\nend\n",
	      "flexslurm-admin 1\ndevices cl1\nend\n", "flexslurm-admin 1\ndevices\nend\nmore\n"}) {
		auto r = parse_admin(bad);
		ck_assert_msg(r && !*r, "accepted: %s", bad);
	}
}
END_TEST

Suite *admin_request_suite()
{
	Suite *s = suite_create("admin_request");
	TCase *tc = tcase_create("format");
	tcase_add_test(tc, admin_requests);
	suite_add_tcase(s, tc);
	return s;
}
