// The AMD (AMD SMI, ROCm SMI) and Ascend (DCMI) telemetry backends through
// stub libraries behind the real dlopen() path (stub_vendor_state.h: each
// stub reads the control file its environment variable names), and
// `telemetry: auto` choosing each vendor's backend.
#include "telemetry_fakes.hpp"

#include <dlfcn.h>

#include <cstdlib>

using namespace flexslurm;

namespace
{

const std::string stub_amdsmi = std::string(STUB_LIBS) + "/libstub_amdsmi.so";
const std::string stub_rocmsmi = std::string(STUB_LIBS) + "/libstub_rocmsmi.so";
const std::string stub_rocmsmi_old = std::string(STUB_LIBS) + "/libstub_rocmsmi_old.so";
const std::string stub_dcmi = std::string(STUB_LIBS) + "/libstub_dcmi.so";
const std::string stub_dcmi_old = std::string(STUB_LIBS) + "/libstub_dcmi_old.so";

// What a stub reports: the control file its variable names, rewritten by set().
class StubControl
{
public:
	explicit StubControl(const char *variable) : variable_(variable)
	{
		setenv(variable_, path().c_str(), 1);
	}
	StubControl(const StubControl &) = delete;
	StubControl &operator=(const StubControl &) = delete;
	~StubControl() { unsetenv(variable_); }
	void set(const std::string &text) { write_file(path(), text); }
	std::string path() const { return dir_.path() + "/control"; }

private:
	const char *variable_;
	TempDir dir_;
};

// Two AMD GPUs whose PCI bus ids the inventory knows (vendor index 0 at 43, 1 at 03: not PCI
// order, so matching must go by bus id), an Ascend NPU, and an NVIDIA GPU.
SliceLayout mixed_layout()
{
	auto l = SliceLayout::deserialize(
	        "flexslurm-layout 2\n"
	        "amd\t0\tmi210\t/d/dri/renderD128\t226:128\t0\t4\t25\t0\t\t0\t-\t0000:43:00.0\n"
	        "amd\t1\tmi210\t/d/dri/renderD129\t226:129\t4\t4\t25\t0\t\t0\t-\t0000:03:00.0\n"
	        "ascend\t0\tascend910b\t/d/davinci0\t236:0\t8\t4\t25\t0\t\t0\t-\t0000:81:00.0\n"
	        "nvidia\t0\tt4\t/d/nvidia0\t195:0\t12\t4\t25\t0\t\t0\t-\t0000:18:00.0\n");
	ck_assert_msg(static_cast<bool>(l), "%s", l.error().c_str());
	return *l;
}

// Two Ascend NPUs: vendor index 0 at 01, 1 at 81; the second without a bus id in the layout.
SliceLayout ascend_layout()
{
	auto l = SliceLayout::deserialize(
	        "flexslurm-layout 2\n"
	        "ascend\t0\tascend910b\t/d/davinci0\t236:0\t0\t4\t25\t0\t\t0\t-\t0000:01:00.0\n"
	        "ascend\t1\tascend910b\t/d/davinci1\t236:1\t4\t4\t25\t0\t\t0\t-\t-\n");
	ck_assert_msg(static_cast<bool>(l), "%s", l.error().c_str());
	return *l;
}

AmdLibraries amd_only(const std::string &amd_smi,
                      const std::string &rocm_smi = "/nonexistent/librocm_smi64.so")
{
	AmdLibraries l;
	l.amd_smi = {amd_smi};
	l.rocm_smi = {rocm_smi};
	return l;
}

// A stub held loaded for the whole test, so that its counters outlive the backends (which
// dlclose() it): the backend's dlopen() of the same path gets this same copy.
class HeldStub
{
public:
	explicit HeldStub(const std::string &library)
	    : handle_(dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL))
	{
		ck_assert_msg(handle_ != nullptr, "%s", dlerror());
	}
	HeldStub(const HeldStub &) = delete;
	HeldStub &operator=(const HeldStub &) = delete;
	~HeldStub() { dlclose(handle_); }
	int counter(const char *symbol) const
	{
		auto f = reinterpret_cast<int (*)()>(dlsym(handle_, symbol));
		ck_assert_msg(f != nullptr, "stub lacks %s", symbol);
		return f();
	}

private:
	void *handle_;
};

std::unique_ptr<TelemetryBackend> backend_ok(Result<std::unique_ptr<TelemetryBackend>> backend)
{
	ck_assert_msg(static_cast<bool>(backend), "%s", backend.error().c_str());
	return std::move(*backend);
}

// A fake /proc: 1001 and 1002 in job 42, 2001 in job 7, 3001 outside any job.
void fake_jobs(const std::string &proc)
{
	fake_process(proc, 1001, v1_cgroup(42), "python");
	fake_process(proc, 1002, "0::/system.slice/slurmstepd.scope/job_42/step_1/user/task_0\n", "python");
	fake_process(proc, 2001, v1_cgroup(7), "train");
	fake_process(proc, 3001, "0::/user.slice/user-0.slice/session-1.scope\n", "amd-smi");
}

const DeviceSample &device_in(const std::vector<DeviceSample> &samples, int device)
{
	for (const DeviceSample &s : samples)
		if (s.device == device)
			return s;
	ck_abort_msg("device %d not in the sample", device);
	return samples.front();
}

} // namespace

// ---- AMD SMI ----

START_TEST(amd_smi_matches_devices_by_pci_bus_id)
{
	record_log();
	StubControl control("FLEXSLURM_STUB_AMDSMI");
	HeldStub held(stub_amdsmi);
	control.set("version 24 7 0 0\n"
	            "device 0000:03:00.0 busy 10 used_mib 100\n"
	            "device 0000:43:00.0 busy 70 used_mib 700 total_mib 65520\n");
	{
		auto backend = backend_ok(make_amd_backend(mixed_layout(), amd_only(stub_amdsmi)));
		ck_assert_str(std::string(backend->name()), "amd_smi");
		ck_assert_int_eq(held.counter("stub_amdsmi_init_depth"), 1);
		auto samples = sample_ok(*backend);
		ck_assert_uint_eq(samples.size(), 2); // the AMD devices only
		ck_assert_int_eq(samples[0].device, 0);
		ck_assert(samples[0].busy_percent == 70.0);
		ck_assert_uint_eq(samples[0].memory_used_bytes, 700 * MiB);
		ck_assert(samples[0].per_job); // the process list answered: no process, no job
		ck_assert(samples[0].jobs.empty());
		ck_assert_int_eq(samples[1].device, 1);
		ck_assert(samples[1].busy_percent == 10.0);
		ck_assert_uint_eq(samples[1].memory_used_bytes, 100 * MiB);

		// What the library says now, not at start.
		control.set("version 24 7 0 0\n"
		            "device 0000:03:00.0 busy 250 used_mib 5\n"
		            "device 0000:43:00.0 busy 0 used_mib 0\n");
		samples = sample_ok(*backend);
		ck_assert(samples[0].busy_percent == 0.0);
		ck_assert(samples[1].busy_percent == 100.0); // clamped
		ck_assert_uint_eq(samples[1].memory_used_bytes, 5 * MiB);
	}
	ck_assert_int_eq(held.counter("stub_amdsmi_init_depth"), 0); // amdsmi_shut_down
	ck_assert(logged(LogLevel::Error).empty());
	auto info = logged(LogLevel::Info);
	ck_assert_uint_eq(info.size(), 1);
	ck_assert_str(info[0], "telemetry: AMD GPUs through " + stub_amdsmi + " (AMD SMI 24.7.0.0)");
}
END_TEST

START_TEST(amd_smi_without_bus_ids_matches_in_pci_order)
{
	record_log();
	StubControl control("FLEXSLURM_STUB_AMDSMI");
	control.set("version 24 0 0 0\n"
	            "device 0000:43:00.0 busy 70 used_mib 700\n"
	            "device 0000:03:00.0 busy 10 used_mib 100\n");
	// test_layout(): one AMD device, vendor index 0, no bus id: the first in PCI order.
	auto samples = sample_ok(*backend_ok(make_amd_backend(test_layout(), amd_only(stub_amdsmi))));
	ck_assert_uint_eq(samples.size(), 1);
	ck_assert_int_eq(samples[0].device, 2);
	ck_assert(samples[0].busy_percent == 10.0);

	// A layout device the library does not have counts as busy, with one error line.
	control.set("version 24 0 0 0\ndevice 0000:03:00.0 busy 10 used_mib 100\n");
	samples = sample_ok(*backend_ok(make_amd_backend(mixed_layout(), amd_only(stub_amdsmi))));
	ck_assert_uint_eq(samples.size(), 1);
	ck_assert_int_eq(samples[0].device, 1);
	auto errors = logged(LogLevel::Error);
	ck_assert_uint_eq(errors.size(), 1);
	ck_assert_str(
	        errors[0],
	        "telemetry: AMD SMI has no device at 0000:43:00.0 (/d/dri/renderD128); it counts as busy");
}
END_TEST

START_TEST(amd_smi_attributes_processes_to_jobs)
{
	record_log();
	TempDir proc;
	fake_jobs(proc.path());
	StubControl control("FLEXSLURM_STUB_AMDSMI");
	auto processes = [&](uint64_t gfx_1001, uint64_t gfx_2001) {
		control.set("version 24 7 0 0\n"
		            "device 0000:03:00.0 busy 0 used_mib 0\n"
		            "device 0000:43:00.0 busy 60 used_mib 4000\n"
		            "process 0000:43:00.0 pid 1001 mib 512 gfx_ns " +
		            std::to_string(gfx_1001) +
		            "\n"
		            "process 0000:43:00.0 pid 1002 mib 256 gfx_ns 0\n"
		            "process 0000:43:00.0 pid 2001 mib 1024 gfx_ns " +
		            std::to_string(gfx_2001) +
		            "\n"
		            "process 0000:43:00.0 pid 3001 mib 64 gfx_ns 0\n"
		            "process 0000:43:00.0 pid 4001 mib 8 gfx_ns 0\n"); // 4001: gone
	};
	uint64_t now = 1'000'000'000;
	processes(5'000'000'000, 7'000'000'000);
	auto backend = backend_ok(make_amd_backend(mixed_layout(), amd_only(stub_amdsmi), proc.path(),
	                                           SlurmMarks::for_node("", ""), [&] { return now; }));
	// First sight: no process's share is known, and two jobs share the device: whole-device.
	auto samples = sample_ok(*backend);
	ck_assert(!device_in(samples, 0).per_job);
	ck_assert(device_in(samples, 0).busy_percent == 60.0);

	// One second later: 1001 used the graphics engine for half of it, 2001 not at all.
	now += 1'000'000'000;
	processes(5'500'000'000, 7'000'000'000);
	samples = sample_ok(*backend);
	const DeviceSample &s = device_in(samples, 0);
	ck_assert(s.per_job);
	ck_assert_uint_eq(s.jobs.size(), 2);
	check_job_use(s.jobs[0], 7, 0.0, 1024 * MiB);
	check_job_use(s.jobs[1], 42, 50.0, 768 * MiB);
	ck_assert(device_in(samples, 1).per_job && device_in(samples, 1).jobs.empty());

	// A counter that went backwards (a new process under the same pid) is not a share.
	now += 1'000'000'000;
	processes(100, 7'000'000'000);
	ck_assert(!device_in(sample_ok(*backend), 0).per_job);
}
END_TEST

START_TEST(amd_smi_job_alone_gets_the_device_busy_until_its_share_is_known)
{
	record_log();
	TempDir proc;
	fake_jobs(proc.path());
	StubControl control("FLEXSLURM_STUB_AMDSMI");
	control.set("version 23 1 0 0\n"
	            "device 0000:43:00.0 busy 35 used_mib 900\n"
	            "process 0000:43:00.0 pid 2001 mib 900 gfx_ns 10\n");
	auto backend = backend_ok(make_amd_backend(mixed_layout(), amd_only(stub_amdsmi), proc.path()));
	const DeviceSample s = device_in(sample_ok(*backend), 0);
	ck_assert(s.per_job);
	ck_assert_uint_eq(s.jobs.size(), 1);
	check_job_use(s.jobs[0], 7, 35.0, 900 * MiB);
}
END_TEST

START_TEST(amd_smi_errors)
{
	record_log();
	TempDir proc;
	fake_jobs(proc.path());
	StubControl control("FLEXSLURM_STUB_AMDSMI");
	HeldStub held(stub_amdsmi);
	// A device whose activity cannot be read is absent (once in the error log); a failing process
	// list leaves the sample whole-device.
	control.set("version 24 7 0 0\n"
	            "fail processes 2\n"
	            "device 0000:03:00.0 busy 10 used_mib 100 fail_busy 34\n"
	            "device 0000:43:00.0 busy 70 used_mib 700\n"
	            "process 0000:43:00.0 pid 2001 mib 900 gfx_ns 10\n");
	auto backend = backend_ok(make_amd_backend(mixed_layout(), amd_only(stub_amdsmi), proc.path()));
	auto samples = sample_ok(*backend);
	ck_assert_uint_eq(samples.size(), 1);
	ck_assert_int_eq(samples[0].device, 0);
	ck_assert(!samples[0].per_job);
	sample_ok(*backend);
	auto errors = logged(LogLevel::Error);
	ck_assert_uint_eq(errors.size(), 1);
	ck_assert_str(
	        errors[0],
	        "telemetry: AMD device 0000:03:00.0: amdsmi_get_gpu_activity failed: AMDSMI_STATUS_DRIVER_NOT_LOADED (AMD SMI error 34); it counts as busy");

	control.set("version 24 7 0 0\ndevice 0000:03:00.0 busy 10 used_mib 100 fail_memory 12\n");
	ck_assert_uint_eq(sample_ok(*backend).size(), 0);
	ck_assert_str(
	        logged(LogLevel::Error).back(),
	        "telemetry: AMD device 0000:03:00.0: amdsmi_get_gpu_memory_usage (VRAM) failed: AMDSMI_STATUS_UNKNOWN (AMD SMI error 12); it counts as busy");

	control.set("version 24 7 0 0\nfail init 34\ndevice 0000:03:00.0 busy 10\n");
	auto failed = make_amd_backend(mixed_layout(), amd_only(stub_amdsmi));
	ck_assert(!failed);
	ck_assert_str(
	        failed.error(),
	        "telemetry: amdsmi_init failed: AMDSMI_STATUS_DRIVER_NOT_LOADED (AMD SMI error 34); ROCm SMI: cannot load /nonexistent/librocm_smi64.so: /nonexistent/librocm_smi64.so: cannot open shared object file: No such file or directory");

	control.set("version 24 7 0 0\ndevice 0000:03:00.0 busy 10 fail_pci 2\n");
	failed = make_amd_backend(mixed_layout(), amd_only(stub_amdsmi));
	ck_assert(!failed);
	ck_assert_msg(failed.error().starts_with(
	                      "telemetry: GPU 0: cannot read its PCI bus id (so cannot match devices): "),
	              "%s", failed.error().c_str());
	ck_assert_int_eq(held.counter("stub_amdsmi_init_depth"), 1); // the first backend's
	backend.reset();
	ck_assert_int_eq(held.counter("stub_amdsmi_init_depth"), 0); // every one shut down
}
END_TEST

START_TEST(amd_smi_version_is_checked)
{
	record_log();
	StubControl control("FLEXSLURM_STUB_AMDSMI");
	HeldStub held(stub_amdsmi);
	control.set("version 22 0 0 0\ndevice 0000:03:00.0 busy 10\n");
	auto old = make_amd_backend(mixed_layout(), amd_only(stub_amdsmi));
	ck_assert(!old);
	ck_assert_msg(
	        old.error().starts_with("telemetry: " + stub_amdsmi +
	                                " is AMD SMI 22.0.0.0, too old (need 23.0 or later); ROCm SMI: "),
	        "%s", old.error().c_str());
	ck_assert_int_eq(held.counter("stub_amdsmi_init_depth"), 0); // never initialised

	// A later library whose process entries may be laid out otherwise: whole-device samples.
	TempDir proc;
	fake_jobs(proc.path());
	control.set("version 26 1 0 0\n"
	            "device 0000:43:00.0 busy 35 used_mib 900\n"
	            "process 0000:43:00.0 pid 2001 mib 900 gfx_ns 10\n");
	auto newer = backend_ok(make_amd_backend(mixed_layout(), amd_only(stub_amdsmi), proc.path()));
	ck_assert(!device_in(sample_ok(*newer), 0).per_job);
	ck_assert_str(
	        logged(LogLevel::Info).back(),
	        "telemetry: AMD GPUs through " + stub_amdsmi +
	                " (AMD SMI 26.1.0.0); its process list layout is not one this build reads: whole-device samples");

	// A library that is not AMD SMI at all.
	auto wrong = make_amd_backend(mixed_layout(), amd_only("libc.so.6"));
	ck_assert(!wrong);
	ck_assert_msg(
	        wrong.error().starts_with(
	                "telemetry: libc.so.6 lacks amdsmi_init (AMD SMI too old, or not AMD SMI); ROCm SMI: "),
	        "%s", wrong.error().c_str());
}
END_TEST

// ---- ROCm SMI ----

START_TEST(rocm_smi_when_amd_smi_is_absent)
{
	record_log();
	TempDir proc;
	fake_jobs(proc.path());
	StubControl control("FLEXSLURM_STUB_ROCMSMI");
	HeldStub held(stub_rocmsmi);
	control.set("version 7 0 0\n"
	            "device 0000:43:00.0 busy 80 used_mib 3000\n"
	            "device 0000:03:00.0 busy 20 used_mib 200\n"
	            "process 0000:43:00.0 pid 1001 mib 512 busy 30\n"
	            "process 0000:43:00.0 pid 2001 mib 1024 busy 40\n"
	            "process 0000:03:00.0 pid 1001 mib 128 busy 5\n"
	            "process 0000:03:00.0 pid 3001 mib 64 busy 15\n");
	{
		auto backend = backend_ok(make_amd_backend(
		        mixed_layout(), amd_only("/nonexistent/libamd_smi.so", stub_rocmsmi), proc.path()));
		ck_assert_str(std::string(backend->name()), "rocm_smi");
		ck_assert_int_eq(held.counter("stub_rocmsmi_init_depth"), 1);
		auto samples = sample_ok(*backend);
		ck_assert_uint_eq(samples.size(), 2);
		const DeviceSample &a = device_in(samples, 0); // 43
		ck_assert(a.busy_percent == 80.0);
		ck_assert_uint_eq(a.memory_used_bytes, 3000 * MiB);
		ck_assert(a.per_job);
		ck_assert_uint_eq(a.jobs.size(), 2);
		check_job_use(a.jobs[0], 7, 40.0, 1024 * MiB);
		check_job_use(a.jobs[1], 42, 30.0, 512 * MiB);
		const DeviceSample &b = device_in(samples, 1); // 03: 3001 is no job's
		ck_assert(b.busy_percent == 20.0);
		ck_assert_uint_eq(b.jobs.size(), 1);
		check_job_use(b.jobs[0], 42, 5.0, 128 * MiB);
	}
	ck_assert_int_eq(held.counter("stub_rocmsmi_init_depth"), 0);
	auto info = logged(LogLevel::Info);
	ck_assert_uint_eq(info.size(), 2);
	ck_assert_msg(info[0].starts_with("telemetry: AMD SMI: cannot load /nonexistent/libamd_smi.so: "),
	              "%s", info[0].c_str());
	ck_assert_str(info[1], "telemetry: AMD GPUs through " + stub_rocmsmi + " (ROCm SMI 7.0.0)");
}
END_TEST

START_TEST(rocm_smi_without_per_device_process_figures)
{
	record_log();
	TempDir proc;
	fake_jobs(proc.path());
	StubControl control("FLEXSLURM_STUB_ROCMSMI");
	// No rsmi_compute_process_info_by_device_get: a process's figures are its totals, on each of
	// its devices.
	control.set("version 5 7 0\n"
	            "device 0000:43:00.0 busy 80 used_mib 3000\n"
	            "device 0000:03:00.0 busy 20 used_mib 200\n"
	            "process 0000:43:00.0 pid 1001 mib 512 busy 30\n"
	            "process 0000:03:00.0 pid 1001 mib 128 busy 5\n");
	auto backend = backend_ok(make_amd_backend(
	        mixed_layout(), amd_only("/nonexistent/libamd_smi.so", stub_rocmsmi_old), proc.path()));
	auto samples = sample_ok(*backend);
	check_job_use(device_in(samples, 0).jobs.at(0), 42, 35.0, 640 * MiB);
	check_job_use(device_in(samples, 1).jobs.at(0), 42, 35.0, 640 * MiB);

	control.set("version 5 7 0\nfail processes 5\ndevice 0000:43:00.0 busy 80 used_mib 3000\n");
	samples = sample_ok(*backend);
	ck_assert_uint_eq(samples.size(), 1);
	ck_assert(!samples[0].per_job);
}
END_TEST

START_TEST(rocm_smi_errors_and_version)
{
	record_log();
	StubControl control("FLEXSLURM_STUB_ROCMSMI");
	const AmdLibraries rocm = amd_only("/nonexistent/libamd_smi.so", stub_rocmsmi);
	control.set("version 4 1 0\ndevice 0000:43:00.0 busy 80\n");
	auto old = make_amd_backend(mixed_layout(), rocm);
	ck_assert(!old);
	ck_assert_msg(
	        old.error().starts_with(
	                "telemetry: " + stub_rocmsmi +
	                " is ROCm SMI 4.1.0, too old (need 5.0 or later) (and AMD SMI: cannot load /nonexistent/libamd_smi.so: "),
	        "%s", old.error().c_str());

	control.set("version 6 0 0\nfail init 8\n");
	auto failed = make_amd_backend(mixed_layout(), rocm);
	ck_assert(!failed);
	ck_assert_msg(
	        failed.error().starts_with(
	                "telemetry: rsmi_init failed: RSMI_STATUS_INIT_ERROR (ROCm SMI error 8) (and AMD SMI: "),
	        "%s", failed.error().c_str());

	control.set("version 6 0 0\n"
	            "device 0000:43:00.0 busy 80 used_mib 3000 fail_memory 3\n"
	            "device 0000:03:00.0 busy 20 used_mib 200\n");
	auto samples = sample_ok(*backend_ok(make_amd_backend(mixed_layout(), rocm)));
	ck_assert_uint_eq(samples.size(), 1);
	ck_assert_int_eq(samples[0].device, 1);
	ck_assert_str(
	        logged(LogLevel::Error).back(),
	        "telemetry: AMD device 0000:43:00.0: rsmi_dev_memory_usage_get (VRAM) failed: RSMI_STATUS_UNKNOWN (ROCm SMI error 3); it counts as busy");

	// Neither library: both reasons.
	auto none = make_amd_backend(mixed_layout(), amd_only("/nonexistent/libamd_smi.so"));
	ck_assert(!none);
	ck_assert_msg(none.error().find("; ROCm SMI: cannot load /nonexistent/librocm_smi64.so") !=
	                      std::string::npos,
	              "%s", none.error().c_str());
}
END_TEST

// ---- DCMI ----

START_TEST(dcmi_reads_ai_core_and_hbm)
{
	record_log();
	StubControl control("FLEXSLURM_STUB_DCMI");
	// Card 5 holds two NPUs (81 first), card 2 one; the layout's davinci1 has no bus id: the second
	// Ascend device in PCI order (81).
	control.set("version 24 1 0\n"
	            "device 0000:81:00.0 card 5 busy 55 used_mib 20000 total_mib 65536\n"
	            "device 0000:c1:00.0 card 5 busy 99 used_mib 1\n"
	            "device 0000:01:00.0 card 2 busy 5 used_mib 3000 total_mib 65536\n");
	auto backend = backend_ok(make_dcmi_backend(ascend_layout(), {"/nonexistent/libdcmi.so", stub_dcmi}));
	ck_assert_str(std::string(backend->name()), "dcmi");
	auto samples = sample_ok(*backend);
	ck_assert_uint_eq(samples.size(), 2);
	ck_assert_int_eq(samples[0].device, 0);
	ck_assert(samples[0].busy_percent == 5.0);
	ck_assert_uint_eq(samples[0].memory_used_bytes, 3000 * MiB);
	ck_assert(samples[0].per_job && samples[0].jobs.empty());
	ck_assert_int_eq(samples[1].device, 1);
	ck_assert(samples[1].busy_percent == 55.0);
	ck_assert_uint_eq(samples[1].memory_used_bytes, 20000 * MiB);
	ck_assert(logged(LogLevel::Error).empty());
	ck_assert_str(logged(LogLevel::Info).back(),
	              "telemetry: Ascend NPUs through " + stub_dcmi + " (DCMI version 24.1.0)");

	// A device without HBM: its DDR, from dcmi_get_device_memory_info_v3.
	control.set("version 24 1 0\n"
	            "device 0000:01:00.0 card 2 busy 7 used_mib 1500 total_mib 8192 ddr 1\n");
	samples = sample_ok(*backend_ok(make_dcmi_backend(ascend_layout(), {stub_dcmi})));
	ck_assert_uint_eq(samples.size(), 1);
	ck_assert(samples[0].busy_percent == 7.0);
	ck_assert_uint_eq(samples[0].memory_used_bytes, 1500 * MiB);
}
END_TEST

START_TEST(dcmi_attributes_memory_to_jobs)
{
	record_log();
	TempDir proc;
	fake_jobs(proc.path());
	StubControl control("FLEXSLURM_STUB_DCMI");
	// DCMI tells each process's memory, not its compute: a job alone on the device gets the
	// device's busy %, processes outside any job aside.
	control.set("version 24 1 0\n"
	            "device 0000:01:00.0 busy 45 used_mib 3000\n"
	            "process 0000:01:00.0 pid 1001 mib 512\n"
	            "process 0000:01:00.0 pid 1002 mib 256\n"
	            "process 0000:01:00.0 pid 3001 mib 64\n");
	auto backend = backend_ok(make_dcmi_backend(ascend_layout(), {stub_dcmi}, proc.path()));
	auto samples = sample_ok(*backend);
	ck_assert(samples[0].per_job);
	ck_assert_uint_eq(samples[0].jobs.size(), 1);
	check_job_use(samples[0].jobs[0], 42, 45.0, 768 * MiB);

	// Two jobs: whose the AI Core use is cannot be told, so the sample is whole-device.
	control.set("version 24 1 0\n"
	            "device 0000:01:00.0 busy 45 used_mib 3000\n"
	            "process 0000:01:00.0 pid 1001 mib 512\n"
	            "process 0000:01:00.0 pid 2001 mib 256\n");
	samples = sample_ok(*backend);
	ck_assert(!samples[0].per_job);
	ck_assert(samples[0].busy_percent == 45.0);

	// The process query failing: whole-device too.
	control.set("version 24 1 0\nfail processes -8255\ndevice 0000:01:00.0 busy 45 used_mib 3000\n"
	            "process 0000:01:00.0 pid 1001 mib 512\n");
	ck_assert(!sample_ok(*backend)[0].per_job);
}
END_TEST

START_TEST(dcmi_errors)
{
	record_log();
	StubControl control("FLEXSLURM_STUB_DCMI");
	control.set("device 0000:01:00.0 busy 45 used_mib 3000 fail_busy -8255\n"
	            "device 0000:81:00.0 busy 5 used_mib 30 fail_memory -8001\n");
	auto samples = sample_ok(*backend_ok(make_dcmi_backend(ascend_layout(), {stub_dcmi})));
	ck_assert_uint_eq(samples.size(), 0);
	auto errors = logged(LogLevel::Error);
	ck_assert_uint_eq(errors.size(), 2);
	ck_assert_str(
	        errors[0],
	        "telemetry: Ascend device 0000:01:00.0: dcmi_get_device_utilization_rate (AI Core) failed: DCMI error -8255 (not supported); it counts as busy");
	ck_assert_str(
	        errors[1],
	        "telemetry: Ascend device 0000:81:00.0: dcmi_get_device_memory_info_v3 failed: DCMI error -8001; it counts as busy");

	control.set("fail init -8008\ndevice 0000:01:00.0 busy 45\n");
	auto failed = make_dcmi_backend(ascend_layout(), {stub_dcmi});
	ck_assert(!failed);
	ck_assert_str(failed.error(), "telemetry: dcmi_init failed: DCMI error -8008");

	control.set("device 0000:01:00.0 busy 45 fail_pci -8007\n");
	failed = make_dcmi_backend(ascend_layout(), {stub_dcmi});
	ck_assert(!failed);
	ck_assert_str(
	        failed.error(),
	        "telemetry: card 0 device 0: cannot read its PCI bus id (so cannot match devices): DCMI error -8007");

	// An old library without the calls used.
	control.set("device 0000:01:00.0 busy 45\n");
	failed = make_dcmi_backend(ascend_layout(), {stub_dcmi_old});
	ck_assert(!failed);
	ck_assert_str(failed.error(),
	              "telemetry: " + stub_dcmi_old +
	                      " lacks dcmi_get_device_pcie_info_v2 (DCMI too old, or not DCMI)");

	failed = make_dcmi_backend(ascend_layout(),
	                           {"/nonexistent/libdcmi.so", "/nonexistent/driver/libdcmi.so"});
	ck_assert(!failed);
	ck_assert_msg(
	        failed.error().starts_with(
	                "telemetry: cannot load /nonexistent/libdcmi.so, /nonexistent/driver/libdcmi.so: "),
	        "%s", failed.error().c_str());
}
END_TEST

// ---- auto ----

START_TEST(auto_picks_each_vendors_backend)
{
	record_log();
	StubControl amd("FLEXSLURM_STUB_AMDSMI");
	StubControl ascend("FLEXSLURM_STUB_DCMI");
	amd.set("version 24 7 0 0\n"
	        "device 0000:03:00.0 busy 10 used_mib 100\n"
	        "device 0000:43:00.0 busy 70 used_mib 700\n");
	ascend.set("version 24 1 0\ndevice 0000:81:00.0 busy 33 used_mib 1000\n");
	VendorLibraries libraries;
	libraries.nvml = "/nonexistent/libnvidia-ml.so.1";
	libraries.amd = amd_only(stub_amdsmi);
	libraries.dcmi = {stub_dcmi};
	auto backend = make_auto_backend(mixed_layout(), libraries, "/proc", SlurmMarks::for_node("", ""));
	ck_assert_str(std::string(backend->name()), "auto");
	auto samples = sample_ok(*backend);
	ck_assert_uint_eq(samples.size(), 3); // the NVIDIA device counts as busy
	ck_assert(device_in(samples, 0).busy_percent == 70.0);
	ck_assert(device_in(samples, 1).busy_percent == 10.0);
	ck_assert(device_in(samples, 2).busy_percent == 33.0);
	auto errors = logged(LogLevel::Error);
	ck_assert_uint_eq(errors.size(), 1);
	ck_assert_msg(errors[0].starts_with(
	                      "lending.telemetry: nvidia: cannot load /nonexistent/libnvidia-ml.so.1: "),
	              "%s", errors[0].c_str());
	ck_assert_msg(errors[0].ends_with("; this node's nvidia slices count as busy (never lent)"), "%s",
	              errors[0].c_str());

	// One vendor's backend alone is itself; none usable: nothing is sampled.
	auto amd_alone = SliceLayout::deserialize(
	        "flexslurm-layout 2\namd\t0\tmi210\t/d/dri/renderD128\t226:128\t0\t4\t25\t0\t\t0\t-\t0000:43:00.0\n");
	ck_assert(static_cast<bool>(amd_alone));
	ck_assert_str(
	        std::string(make_auto_backend(*amd_alone, libraries, "/proc", SlurmMarks::for_node("", ""))
	                            ->name()),
	        "amd_smi");
	libraries.amd = amd_only("/nonexistent/libamd_smi.so");
	auto none = make_auto_backend(*amd_alone, libraries, "/proc", SlurmMarks::for_node("", ""));
	ck_assert_str(std::string(none->name()), "unsupported");
	ck_assert_uint_eq(sample_ok(*none).size(), 0);
}
END_TEST

Suite *vendor_telemetry_suite()
{
	Suite *s = suite_create("vendor_telemetry");
	TCase *tc = tcase_create("vendor_telemetry");
	tcase_add_test(tc, amd_smi_matches_devices_by_pci_bus_id);
	tcase_add_test(tc, amd_smi_without_bus_ids_matches_in_pci_order);
	tcase_add_test(tc, amd_smi_attributes_processes_to_jobs);
	tcase_add_test(tc, amd_smi_job_alone_gets_the_device_busy_until_its_share_is_known);
	tcase_add_test(tc, amd_smi_errors);
	tcase_add_test(tc, amd_smi_version_is_checked);
	tcase_add_test(tc, rocm_smi_when_amd_smi_is_absent);
	tcase_add_test(tc, rocm_smi_without_per_device_process_figures);
	tcase_add_test(tc, rocm_smi_errors_and_version);
	tcase_add_test(tc, dcmi_reads_ai_core_and_hbm);
	tcase_add_test(tc, dcmi_attributes_memory_to_jobs);
	tcase_add_test(tc, dcmi_errors);
	tcase_add_test(tc, auto_picks_each_vendors_backend);
	suite_add_tcase(s, tc);
	return s;
}
