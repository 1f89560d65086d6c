// SPDX-License-Identifier: GPL-2.0-or-later
// Check runner for the Slurm-free core. Prints Check's summary line last.
#include "suites.hpp"

#include "core/util/log.hpp"

#include <cstdlib>

namespace
{
// Keep test output readable: the core's debug chatter is not asserted here.
void quiet_sink(flexslurm::LogLevel level, const char *message)
{
	if (level == flexslurm::LogLevel::Error)
		std::fprintf(stderr, "core error: %s\n", message);
}
} // namespace

int main()
{
	flexslurm::set_log_sink(quiet_sink);
	SRunner *runner = srunner_create(config_suite());
	srunner_add_suite(runner, config_rules_suite());
	srunner_add_suite(runner, devices_suite());
	srunner_add_suite(runner, device_identity_suite());
	srunner_add_suite(runner, inventory_suite());
	srunner_add_suite(runner, slice_layout_suite());
	srunner_add_suite(runner, slice_map_suite());
	srunner_add_suite(runner, layout_handoff_suite());
	srunner_add_suite(runner, job_env_suite());
	srunner_add_suite(runner, placement_suite());
	srunner_add_suite(runner, isolation_suite());
	srunner_add_suite(runner, isolation_plan_suite());
	srunner_add_suite(runner, limits_suite());
	srunner_add_suite(runner, cu_mask_suite());
	srunner_add_suite(runner, spank_config_suite());
	srunner_add_suite(runner, lending_suite());
	srunner_add_suite(runner, loan_book_suite());
	srunner_add_suite(runner, loan_book_restart_suite());
	srunner_add_suite(runner, loan_book_random_suite());
	srunner_add_suite(runner, loan_book_state_suite());
	srunner_add_suite(runner, lending_server_suite());
	srunner_add_suite(runner, lending_server_ops_suite());
	srunner_add_suite(runner, report_suite());
	srunner_add_suite(runner, report_intake_suite());
	srunner_add_suite(runner, admin_request_suite());
	srunner_add_suite(runner, channel_suite());
	srunner_add_suite(runner, channel_port_suite());
	srunner_add_suite(runner, munge_suite());
	srunner_add_suite(runner, telemetry_suite());
	srunner_add_suite(runner, nvml_suite());
	srunner_add_suite(runner, vendor_telemetry_suite());
	srunner_add_suite(runner, job_cgroup_suite());
	srunner_add_suite(runner, process_control_suite());
	srunner_add_suite(runner, agent_suite());
	srunner_add_suite(runner, agent_process_suite());
	srunner_add_suite(runner, borrow_rules_suite());
	srunner_add_suite(runner, text_suite());
	srunner_add_suite(runner, names_suite());
	srunner_add_suite(runner, throttle_suite());
	srunner_add_suite(runner, uids_suite());
	srunner_add_suite(runner, file_io_suite());
	srunner_add_suite(runner, metrics_suite());
	srunner_run_all(runner, CK_NORMAL);
	const int failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
