// Telemetry backends for idle reclaim: the admin's file format, and the
// backend of vendors without one.
#include "telemetry_fakes.hpp"

using namespace flexslurm;

// ---- file backend ----

START_TEST(file_backend_reads_each_device_file)
{
	record_log();
	TempDir dir;
	write_file(dir.path() + "/nvidia0", "# written by the site's collector\n"
	                                    "busy 3\n"
	                                    "\n"
	                                    "memory_mib 1024   # whole device\n");
	write_file(dir.path() + "/renderD128", "  busy\t55.5 # inline comment\r\n");
	// nvidia2 has no file: absent, quietly
	auto backend = make_file_backend(test_layout(), dir.path());
	ck_assert_str(std::string(backend->name()), "file");
	auto samples = sample_ok(*backend);
	ck_assert_uint_eq(samples.size(), 2);
	ck_assert_int_eq(samples[0].device, 0);
	ck_assert(samples[0].busy_percent == 3.0);
	ck_assert_uint_eq(samples[0].memory_used_bytes, 1024 * MiB);
	ck_assert(!samples[0].per_job);
	ck_assert(samples[0].jobs.empty());
	ck_assert_int_eq(samples[1].device, 2);
	ck_assert(samples[1].busy_percent == 55.5);
	ck_assert_uint_eq(samples[1].memory_used_bytes, 0);
	ck_assert(logged(LogLevel::Error).empty());
	const auto debug = logged(LogLevel::Debug);
	ck_assert_uint_eq(debug.size(), 1);
	ck_assert_str(debug[0],
	              "telemetry: " + dir.path() + "/nvidia2: no such file; the device counts as busy");
}
END_TEST

START_TEST(file_backend_job_lines_make_a_per_job_sample)
{
	record_log();
	TempDir dir;
	write_file(dir.path() + "/nvidia2", "busy 40\n"
	                                    "memory_mib 2048\n"
	                                    "job 12 busy 0 memory_mib 512\n"
	                                    "job 13 memory_mib 1536 busy 40\n"
	                                    "job 14\n");
	auto samples = sample_ok(*make_file_backend(test_layout(), dir.path()));
	ck_assert_uint_eq(samples.size(), 1);
	const DeviceSample &s = samples[0];
	ck_assert_int_eq(s.device, 1);
	ck_assert(s.per_job);
	ck_assert_uint_eq(s.jobs.size(), 3);
	check_job_use(s.jobs[0], 12, 0.0, 512 * MiB);
	check_job_use(s.jobs[1], 13, 40.0, 1536 * MiB);
	ck_assert_uint_eq(s.jobs[2].job, 14);
	ck_assert(s.jobs[2].busy_percent == 0.0 && s.jobs[2].memory_bytes == 0);
	ck_assert(logged(LogLevel::Error).empty());
}
END_TEST

START_TEST(file_backend_skips_malformed_files_with_one_error_each)
{
	std::string many_jobs = "busy 1\n";
	for (int j = 1; j <= 1025; ++j)
		many_jobs += "job " + std::to_string(j) + "\n";
	const std::pair<std::string, std::string> cases[] = {
	        {"busy abc\n", "line 1: busy \"abc\" is not a number"},
	        {"busy 3x\n", "line 1: busy \"3x\" is not a number"},
	        {"# load\nbusy 101\n", "line 2: busy \"101\" is out of range (0..100)"},
	        {"busy -1\n", "line 1: busy \"-1\" is out of range (0..100)"},
	        {"busy nan\n", "line 1: busy \"nan\" is not a finite number"},
	        {"busy 1e999\n", "line 1: busy \"1e999\" is not a finite number"},
	        {"busy 3\ntemperature 40\n",
	         "line 2: unknown keyword \"temperature\" (allowed: busy, memory_mib, job)"},
	        {"busy 3\nmemory_mib 1.5\n", "line 2: memory_mib \"1.5\" is not a whole number of MiB"},
	        {"busy 3\nmemory_mib 99999999999999999\n",
	         "line 2: memory_mib \"99999999999999999\" is too large"},
	        {"busy 3\nbusy 4\n", "line 2: busy given twice"},
	        {"busy\n", "line 1: busy needs a value"},
	        {"busy 3 4\n", "line 1: unexpected \"4\" after busy"},
	        {"memory_mib 5\n", "no \"busy\" line (it is required)"},
	        {"busy 1\njob 0\n", "line 2: job \"0\" is not a job id"},
	        {"busy 1\njob 4294967296\n", "line 2: job \"4294967296\" is not a job id"},
	        {"busy 1\njob 5 gpu 1\n", "line 2: unknown job field \"gpu\" (allowed: busy, memory_mib)"},
	        {"busy 1\njob 5 busy\n", "line 2: job 5: busy needs a value"},
	        {"busy 1\njob 5 busy 150\n", "line 2: busy \"150\" is out of range (0..100)"},
	        {"busy 1\njob 5\njob 5 busy 2\n", "line 3: job 5 listed twice"},
	        {many_jobs, "line 1026: more than 1024 job lines"},
	        {std::string(70 * 1024, '#'), "larger than 64 KiB"},
	};
	for (const auto &[text, problem] : cases) {
		record_log();
		TempDir dir;
		write_file(dir.path() + "/nvidia0", text);
		write_file(dir.path() + "/nvidia2", "busy 7\n");
		auto backend = make_file_backend(test_layout(), dir.path());
		auto samples = sample_ok(*backend);
		ck_assert_uint_eq(samples.size(), 1); // nvidia0 skipped, nvidia2 read
		ck_assert_int_eq(samples[0].device, 1);
		auto errors = logged(LogLevel::Error);
		ck_assert_uint_eq(errors.size(), 1);
		ck_assert_str(errors[0], "telemetry: " + dir.path() + "/nvidia0: " + problem +
		                                 "; the device counts as busy");
		// The same problem on the next sample: not another error line.
		samples = sample_ok(*backend);
		ck_assert_uint_eq(samples.size(), 1);
		ck_assert_uint_eq(logged(LogLevel::Error).size(), 1);
	}
}
END_TEST

START_TEST(file_backend_reports_a_fixed_file_again_when_it_breaks)
{
	record_log();
	TempDir dir;
	write_file(dir.path() + "/nvidia0", "busy x\n");
	auto backend = make_file_backend(test_layout(), dir.path());
	ck_assert(sample_ok(*backend).empty());
	write_file(dir.path() + "/nvidia0", "busy 5\n");
	ck_assert_uint_eq(sample_ok(*backend).size(), 1);
	write_file(dir.path() + "/nvidia0", "busy x\n");
	ck_assert(sample_ok(*backend).empty());
	ck_assert_uint_eq(logged(LogLevel::Error).size(), 2);
}
END_TEST

START_TEST(file_backend_without_its_directory_fails)
{
	auto backend = make_file_backend(test_layout(), "/nonexistent/flexslurm-telemetry");
	auto s = backend->sample();
	ck_assert(!s);
	ck_assert_str(
	        s.error(),
	        "telemetry: cannot read directory /nonexistent/flexslurm-telemetry: No such file or directory");
}

// ---- other vendors ----

START_TEST(unsupported_backend_logs_once)
{
	record_log();
	auto backend = make_unsupported_backend(Vendor::Amd);
	ck_assert(sample_ok(*backend).empty());
	ck_assert(sample_ok(*backend).empty());
	auto info = logged(LogLevel::Info);
	ck_assert_uint_eq(info.size(), 1);
	ck_assert_str(
	        info[0],
	        "telemetry: amd devices: no usable telemetry library; their slices count as busy and are never lent");
	auto ascend = make_unsupported_backend(Vendor::Ascend);
	ck_assert(sample_ok(*ascend).empty());
	ck_assert_str(
	        logged(LogLevel::Info).back(),
	        "telemetry: ascend devices: no usable telemetry library; their slices count as busy and are never lent");
}

Suite *telemetry_suite()
{
	Suite *s = suite_create("telemetry");
	TCase *tc = tcase_create("telemetry");
	tcase_add_test(tc, file_backend_reads_each_device_file);
	tcase_add_test(tc, file_backend_job_lines_make_a_per_job_sample);
	tcase_add_test(tc, file_backend_skips_malformed_files_with_one_error_each);
	tcase_add_test(tc, file_backend_reports_a_fixed_file_again_when_it_breaks);
	tcase_add_test(tc, file_backend_without_its_directory_fails);
	tcase_add_test(tc, unsupported_backend_logs_once);
	suite_add_tcase(s, tc);
	return s;
}
