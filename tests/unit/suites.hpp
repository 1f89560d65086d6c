// SPDX-License-Identifier: GPL-2.0-or-later
#pragma once

// check.h defines a macro named `fail`, which breaks standard headers
// (std::basic_ios::fail) included after it: include those first.
#include <chrono>
#include <sstream>
#include <string>

#include <check.h>

Suite *agent_suite();
Suite *agent_process_suite();
Suite *borrow_rules_suite();
Suite *text_suite();
Suite *names_suite();
Suite *file_io_suite();
Suite *throttle_suite();
Suite *uids_suite();
Suite *config_suite();
Suite *config_rules_suite();
Suite *devices_suite();
Suite *device_identity_suite();
Suite *inventory_suite();
Suite *job_env_suite();
Suite *layout_handoff_suite();
Suite *placement_suite();
Suite *isolation_suite();
Suite *isolation_plan_suite();
Suite *limits_suite();
Suite *cu_mask_suite();
Suite *spank_config_suite();
Suite *job_cgroup_suite();
Suite *lending_suite();
Suite *lending_server_suite();
Suite *lending_server_ops_suite();
Suite *loan_book_suite();
Suite *loan_book_restart_suite();
Suite *loan_book_random_suite();
Suite *nvml_suite();
Suite *vendor_telemetry_suite();
Suite *process_control_suite();
Suite *loan_book_state_suite();
Suite *report_suite();
Suite *report_intake_suite();
Suite *admin_request_suite();
Suite *channel_suite();
Suite *channel_port_suite();
Suite *munge_suite();
Suite *telemetry_suite();
Suite *slice_layout_suite();
Suite *metrics_suite();
Suite *slice_map_suite();

#include <string>

// ck_assert_str_eq evaluates its arguments more than once; C++ temporaries
// (std::string(...).c_str()) would dangle, so compare owned copies.
#define ck_assert_str(a, b)                                                                                  \
	do {                                                                                                 \
		const std::string ck_a_(a), ck_b_(b);                                                        \
		ck_assert_str_eq(ck_a_.c_str(), ck_b_.c_str());                                              \
	} while (0)
