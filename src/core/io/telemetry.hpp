// SPDX-License-Identifier: GPL-2.0-or-later
// Node-side telemetry for idle reclaim: how busy each accelerator is and,
// where the vendor library can tell, which Slurm job uses how much of it.
// slurmd samples a backend periodically; a device a backend cannot read is
// absent from the sample, and the caller treats it as busy, so every failure
// here errs on the side of never lending a slice that is in use.
//
// Here: the interface, the file backend and the one for vendors without a
// backend (telemetry.cpp); NVML in telemetry_nvml.cpp. Which job a process
// belongs to, and the hard-stop killer: job_cgroup.hpp, process_control.hpp.
#pragma once

#include "core/io/job_cgroup.hpp"
#include "core/model/slice_layout.hpp"
#include "core/model/vendor.hpp"
#include "core/util/result.hpp"

#include <cstdint>
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

// AMD and Ascend: a backend that logs once, through log_info, "telemetry: <vendor> devices: no telemetry
// backend yet (unsupported); their slices count as busy and are never lent" and returns an empty sample.
std::unique_ptr<TelemetryBackend> make_unsupported_backend(Vendor vendor);

} // namespace flexslurm
