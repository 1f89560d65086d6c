// SPDX-License-Identifier: GPL-2.0-or-later
// The NVML telemetry backend through a stub library behind the real
// dlopen() path: devices in PCI order, per-job use from processes.
#include "telemetry_fakes.hpp"

#include <dlfcn.h>

using namespace flexslurm;

// ---- NVML through the stub ----

namespace
{

struct StubNvml {
	void *library = nullptr;
	void (*configure)(int) = nullptr;
	void (*fail_init)(int) = nullptr;
	void (*set_process_stride)(int) = nullptr;
	void (*set_device)(int, const char *, unsigned, unsigned long long, unsigned long long) = nullptr;
	void (*fail_device)(int, int) = nullptr;
	void (*add_process)(int, unsigned, unsigned long long, unsigned) = nullptr;
	unsigned long long (*last_seen)(int) = nullptr;
	int (*init_depth)() = nullptr;

	// The backend's dlopen() of the same path gets this same copy.
	StubNvml()
	{
		library = dlopen(STUB_NVML, RTLD_NOW | RTLD_LOCAL);
		ck_assert_msg(library != nullptr, "%s", dlerror());
		resolve(configure, "stub_nvml_configure");
		resolve(fail_init, "stub_nvml_fail_init");
		resolve(set_process_stride, "stub_nvml_set_process_stride");
		resolve(set_device, "stub_nvml_set_device");
		resolve(fail_device, "stub_nvml_fail_device");
		resolve(add_process, "stub_nvml_add_process");
		resolve(last_seen, "stub_nvml_last_seen");
		resolve(init_depth, "stub_nvml_init_depth");
	}
	StubNvml(const StubNvml &) = delete;
	StubNvml &operator=(const StubNvml &) = delete;
	~StubNvml() { dlclose(library); }

	template <class F>
	void resolve(F &f, const char *name)
	{
		f = reinterpret_cast<F>(dlsym(library, name));
		ck_assert_msg(f != nullptr, "stub lacks %s", name);
	}

	// NVML's index order is not PCI order: 0 is the last device on the bus.
	void three_devices()
	{
		configure(3);
		set_device(0, "0000:af:00.0", 70, 7 * MiB, 16384 * MiB);
		set_device(1, "0000:18:00.0", 10, 1 * MiB, 16384 * MiB);
		set_device(2, "0000:3b:00.0", 30, 3 * MiB, 16384 * MiB);
	}
};

std::unique_ptr<TelemetryBackend> nvml_backend(const std::string &proc_root = "/proc")
{
	auto backend = make_nvml_backend(test_layout(), STUB_NVML, proc_root);
	ck_assert_msg(static_cast<bool>(backend), "%s", backend.error().c_str());
	return std::move(*backend);
}

} // namespace

START_TEST(nvml_matches_devices_in_pci_order)
{
	record_log();
	StubNvml stub;
	stub.three_devices();
	{
		auto backend = nvml_backend();
		ck_assert_str(std::string(backend->name()), "nvml");
		ck_assert_int_eq(stub.init_depth(), 1);
		auto samples = sample_ok(*backend);
		// PCI order 18, 3b, af: vendor index 0 is NVML's 1, vendor index 2 is NVML's 0; AMD absent.
		ck_assert_uint_eq(samples.size(), 2);
		ck_assert_int_eq(samples[0].device, 0);
		ck_assert(samples[0].busy_percent == 10.0);
		ck_assert_uint_eq(samples[0].memory_used_bytes, 1 * MiB);
		ck_assert(samples[0].per_job); // NVML answered: no process, no job
		ck_assert(samples[0].jobs.empty());
		ck_assert_int_eq(samples[1].device, 1);
		ck_assert(samples[1].busy_percent == 70.0);
		ck_assert_uint_eq(samples[1].memory_used_bytes, 7 * MiB);
	}
	ck_assert_int_eq(stub.init_depth(), 0); // nvmlShutdown on destruction
	ck_assert(logged(LogLevel::Error).empty());
}
END_TEST

START_TEST(nvml_device_beyond_nvmls_count_is_absent)
{
	record_log();
	StubNvml stub;
	stub.configure(2);
	stub.set_device(0, "0000:3b:00.0", 30, 0, 1024 * MiB);
	stub.set_device(1, "0000:18:00.0", 10, 0, 1024 * MiB);
	auto samples = sample_ok(*nvml_backend());
	ck_assert_uint_eq(samples.size(), 1);
	ck_assert_int_eq(samples[0].device, 0);
	ck_assert(samples[0].busy_percent == 10.0);
	auto errors = logged(LogLevel::Error);
	ck_assert_uint_eq(errors.size(), 1);
	ck_assert_str(
	        errors[0],
	        "telemetry: NVML sees 2 NVIDIA devices, none for /d/nvidia2 (vendor index 2); it counts as busy");
}
END_TEST

namespace
{

void check_per_job_attribution(int process_stride)
{
	record_log();
	StubNvml stub;
	stub.three_devices();
	stub.set_process_stride(process_stride);
	TempDir proc;
	fake_process(proc.path(), 1001, v1_cgroup(42), "python");
	fake_process(proc.path(), 1002, "0::/system.slice/slurmstepd.scope/job_42/step_1/user/task_0\n",
	             "python");
	fake_process(proc.path(), 2001, v1_cgroup(7), "train");
	fake_process(proc.path(), 3001, "0::/user.slice/user-0.slice/session-1.scope\n", "nvtop");
	// NVML's device 1 is the layout's nvidia0; 4001 has exited since NVML saw it
	stub.add_process(1, 1001, 512 * MiB, 30);
	stub.add_process(1, 1002, 256 * MiB, 20);
	stub.add_process(1, 2001, 1024 * MiB, 0);
	stub.add_process(1, 3001, 64 * MiB, 5);
	stub.add_process(1, 4001, 8 * MiB, 90);
	auto backend = nvml_backend(proc.path());
	auto samples = sample_ok(*backend);
	ck_assert_uint_eq(samples.size(), 2);
	const DeviceSample &s = samples[0];
	ck_assert_int_eq(s.device, 0);
	ck_assert(s.per_job);
	ck_assert_uint_eq(s.jobs.size(), 2);
	check_job_use(s.jobs[0], 7, 0.0, 1024 * MiB);
	check_job_use(s.jobs[1], 42, 50.0, 768 * MiB);
	ck_assert_uint_eq(stub.last_seen(1), 0);

	// Nothing ran since: memory still held, no SM use, and the backend
	// asked only for samples newer than the last one it read.
	samples = sample_ok(*backend);
	ck_assert_uint_eq(samples[0].jobs.size(), 2);
	ck_assert(samples[0].jobs[1].busy_percent == 0.0);
	ck_assert_uint_eq(samples[0].jobs[1].memory_bytes, 768 * MiB);
	ck_assert_uint_gt(stub.last_seen(1), 0);
	ck_assert(logged(LogLevel::Error).empty());
}

} // namespace

START_TEST(nvml_attributes_use_to_jobs)
{
	check_per_job_attribution(24);
}
END_TEST

// R535 drivers write 32-byte process entries through the same _v3 symbol.
START_TEST(nvml_attributes_use_to_jobs_with_larger_process_entries)
{
	check_per_job_attribution(32);
}
END_TEST

// Under MPS NVML's utilization samples name the job's MPS server and its
// memory lists the clients (as seen on an H200, driver 580).
START_TEST(nvml_attributes_mps_server_use_to_its_job)
{
	using namespace std::string_literals;
	StubNvml stub;
	stub.three_devices();
	stub.set_process_stride(24);
	TempDir proc;
	fake_mps(proc.path(), 500, "nvidia-cuda-mps-control", 1, 0,
	         "CUDA_MPS_PIPE_DIRECTORY=/run/flexslurm/jobs/42/mps-pipe\0"s);
	fake_mps(proc.path(), 501, "nvidia-cuda-mps-server", 500, 1000, "");
	fake_process(proc.path(), 1001, "0::/system.slice/slurmstepd.scope/job_42/step_0/user/task_0\n",
	             "python3");
	stub.add_process(1, 501, 66 * MiB, 90);
	stub.add_process(1, 1001, 758 * MiB, 0);
	auto backend = nvml_backend(proc.path());
	auto samples = sample_ok(*backend);
	const DeviceSample &s = samples[0];
	ck_assert(s.per_job);
	ck_assert_uint_eq(s.jobs.size(), 1);
	check_job_use(s.jobs[0], 42, 90.0, (66 + 758) * MiB);
}
END_TEST

START_TEST(nvml_unreadable_device_is_absent)
{
	record_log();
	StubNvml stub;
	stub.three_devices();
	stub.fail_device(0, 1); // PCI af: the layout's nvidia2
	auto backend = nvml_backend();
	auto samples = sample_ok(*backend);
	ck_assert_uint_eq(samples.size(), 1);
	ck_assert_int_eq(samples[0].device, 0);
	samples = sample_ok(*backend);
	auto errors = logged(LogLevel::Error);
	ck_assert_uint_eq(errors.size(), 1); // not again on the second sample
	ck_assert_str(
	        errors[0],
	        "telemetry: NVIDIA device 0000:af:00.0: nvmlDeviceGetUtilizationRates failed: GPU is lost (NVML error 15); it counts as busy");
}
END_TEST

START_TEST(nvml_failures_are_error_values)
{
	StubNvml stub;
	stub.three_devices();
	stub.fail_init(1);
	auto failed = make_nvml_backend(test_layout(), STUB_NVML);
	ck_assert(!failed);
	ck_assert_str(failed.error(), "telemetry: nvmlInit_v2 failed: Driver Not Loaded (NVML error 9)");
	ck_assert_int_eq(stub.init_depth(), 0);

	auto missing = make_nvml_backend(test_layout(), "/nonexistent/libnvidia-ml.so.1");
	ck_assert(!missing);
	ck_assert_msg(missing.error().starts_with("telemetry: cannot load /nonexistent/libnvidia-ml.so.1: "),
	              "%s", missing.error().c_str());

	// A library that is not NVML at all.
	auto wrong = make_nvml_backend(test_layout(), "libc.so.6");
	ck_assert(!wrong);
	ck_assert_str(wrong.error(), "telemetry: libc.so.6 lacks nvmlInit_v2");
}

Suite *nvml_suite()
{
	Suite *s = suite_create("nvml");
	TCase *tc = tcase_create("nvml");
	tcase_add_test(tc, nvml_matches_devices_in_pci_order);
	tcase_add_test(tc, nvml_device_beyond_nvmls_count_is_absent);
	tcase_add_test(tc, nvml_attributes_use_to_jobs);
	tcase_add_test(tc, nvml_attributes_mps_server_use_to_its_job);
	tcase_add_test(tc, nvml_attributes_use_to_jobs_with_larger_process_entries);
	tcase_add_test(tc, nvml_unreadable_device_is_absent);
	tcase_add_test(tc, nvml_failures_are_error_values);
	suite_add_tcase(s, tc);
	return s;
}
