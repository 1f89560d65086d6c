// Node-side telemetry for idle reclaim: how busy each accelerator is and,
// where the vendor library can tell, which Slurm job uses how much of it.
// slurmd samples a backend periodically; a device a backend cannot read is
// absent from the sample, and the caller treats it as busy, so every failure
// here errs on the side of never lending a slice that is in use.
//
// Here: the interface, the file backend and the one for vendors without a
// backend, and `auto` (telemetry.cpp); NVML in telemetry_nvml.cpp, AMD in
// telemetry_amd.cpp, Ascend in telemetry_dcmi.cpp. Which job a process
// belongs to, and the hard-stop killer: job_cgroup.hpp, process_control.hpp.
#pragma once

#include "core/io/job_cgroup.hpp"
#include "core/model/slice_layout.hpp"
#include "core/model/vendor.hpp"
#include "core/util/result.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

struct JobUse {
	uint32_t job = 0;          // Slurm job id
	double busy_percent = 0;   // that job's share of the device's compute, 0..100
	uint64_t memory_bytes = 0; // device memory that job's processes hold
};

struct DeviceSample {
	int device = 0;                 // index into SliceLayout::devices()
	double busy_percent = 0;        // whole device, 0..100
	uint64_t memory_used_bytes = 0; // whole device
	// true: `jobs` attributes all use by Slurm jobs (jobs absent from it use
	// nothing); use by processes outside any job shows only in the whole-device
	// figures above.
	bool per_job = false;
	std::vector<JobUse> jobs;
};

class TelemetryBackend
{
public:
	virtual ~TelemetryBackend() = default;
	virtual std::string_view name() const noexcept = 0;
	// One sample of every device the backend can read. Devices it cannot read are simply absent
	// (the caller treats them as busy); a failure of the whole backend is an error value.
	virtual Result<std::vector<DeviceSample>> sample() = 0;
};

// Reads <dir>/<basename of the device's path> for each device of the layout (e.g. dir/nvidia0):
//   busy 3                          whole device busy %, 0..100 (required)
//   memory_mib 1024                 whole device memory used, MiB (optional, default 0)
//   job 12 busy 0 memory_mib 512    any number (at most 1024); one or more: per_job = true
// with blank lines and # comments. A malformed or oversized (> 64 KiB) file leaves its device out
// of the sample, with one log_error line (repeated problems of the same file: debug only); a missing
// file leaves it out quietly (debug). A missing directory fails the whole sample.
std::unique_ptr<TelemetryBackend> make_file_backend(const SliceLayout &layout, std::string dir);

// NVIDIA through NVML, dlopen()ed at run time (no build dependency). Error value if the library
// cannot be loaded, nvmlInit fails, or a device's PCI bus id cannot be read (the layout's NVIDIA
// device with vendor_index k is NVML's k-th in PCI bus order, which an unreadable device would
// shift). Only the layout's NVIDIA devices are sampled; per-job use comes from the processes NVML
// reports, attributed to jobs through proc_root/<pid>/cgroup (process_control.hpp).
// In telemetry_nvml.cpp, with the ABI it uses in nvml_abi.hpp.
Result<std::unique_ptr<TelemetryBackend>> make_nvml_backend(const SliceLayout &layout,
                                                            std::string library = "libnvidia-ml.so.1",
                                                            std::string proc_root = "/proc",
                                                            SlurmMarks marks = SlurmMarks::for_node("", ""));

// Ascend NPUs through DCMI (the driver's device-management library, as npu-smi uses it), dlopen()ed
// at run time from the first of `libraries` that loads. Per device: AI Core use and HBM use (DDR on
// devices without HBM); per job: the memory of the processes DCMI reports, attributed through
// proc_root/<pid>/cgroup (vendor_library.hpp: DCMI tells no per-process compute, so a job alone on
// a device is given the device's busy %, and two jobs on one leave the sample whole-device).
// Devices are matched to the layout's by PCI bus id. Error value if no library loads, one lacks an
// entry point used (too old), dcmi_init fails, or a device's PCI bus id cannot be read.
// In telemetry_dcmi.cpp, with the ABI it uses in dcmi_abi.hpp.
Result<std::unique_ptr<TelemetryBackend>> make_dcmi_backend(
        const SliceLayout &layout,
        const std::vector<std::string> &libraries = {"libdcmi.so",
                                                     "/usr/local/Ascend/driver/lib64/driver/libdcmi.so"},
        std::string proc_root = "/proc", SlurmMarks marks = SlurmMarks::for_node("", ""));

// Where the AMD backend looks for its libraries, in order.
struct AmdLibraries {
	std::vector<std::string> amd_smi{"libamd_smi.so", "/opt/rocm/lib/libamd_smi.so"};
	std::vector<std::string> rocm_smi{"librocm_smi64.so", "/opt/rocm/lib/librocm_smi64.so"};
};

// AMD GPUs through AMD SMI, or ROCm SMI where AMD SMI is absent or unusable, dlopen()ed at run time.
// Per device: graphics busy % and VRAM used; per job: the processes KFD reports (AMD SMI: their
// VRAM and graphics-engine time between two samples, over the time between them; ROCm SMI: their
// VRAM and CU occupancy), attributed through proc_root/<pid>/cgroup. Devices are matched to the
// layout's by PCI bus id. The library's version is checked at load (AMD SMI year 23 or later: an
// older one, or one without amdsmi_get_lib_version, is refused; per-process entries are read only
// where their layout is the one amdsmi_abi.hpp declares; ROCm SMI 5.0 or later). Error value (both
// libraries' reasons) if neither can be used. clock_ns: the clock between samples (tests);
// default CLOCK_MONOTONIC. In telemetry_amd.cpp, with the ABI it uses in amdsmi_abi.hpp.
Result<std::unique_ptr<TelemetryBackend>> make_amd_backend(const SliceLayout &layout,
                                                           const AmdLibraries &libraries = {},
                                                           std::string proc_root = "/proc",
                                                           SlurmMarks marks = SlurmMarks::for_node("", ""),
                                                           std::function<uint64_t()> clock_ns = {});

// Where `telemetry: auto` looks for each vendor's library.
struct VendorLibraries {
	std::string nvml = "libnvidia-ml.so.1";
	AmdLibraries amd;
	std::vector<std::string> dcmi{"libdcmi.so", "/usr/local/Ascend/driver/lib64/driver/libdcmi.so"};
};

// `telemetry: auto`: for each vendor the layout has, that vendor's backend (NVML, AMD SMI / ROCm
// SMI, DCMI). One whose library cannot be used is logged (log_error, one line naming the vendor and
// why) and its devices are absent from every sample: they count as busy and are never lent. A
// single vendor's backend is returned as it is; several are sampled together (a failing one leaves
// only its devices out). No usable backend at all: make_unsupported_backend of the first vendor.
std::unique_ptr<TelemetryBackend> make_auto_backend(const SliceLayout &layout,
                                                    const VendorLibraries &libraries,
                                                    const std::string &proc_root, const SlurmMarks &marks);

// A vendor without a usable library: a backend that logs once, through log_info, "telemetry: <vendor>
// devices: no usable telemetry library; their slices count as busy and are never lent" and returns an
// empty sample.
std::unique_ptr<TelemetryBackend> make_unsupported_backend(Vendor vendor);

} // namespace flexslurm
