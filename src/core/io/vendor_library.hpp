// SPDX-License-Identifier: GPL-2.0-or-later
// What the AMD and Ascend telemetry backends share (telemetry_amd.cpp,
// telemetry_dcmi.cpp): loading a vendor library at run time, matching the
// library's devices to the layout's by PCI bus id, and attributing the
// processes a library reports to Slurm jobs through their cgroups
// (process_control.hpp), as the NVML backend does.
#pragma once

#include "core/io/job_cgroup.hpp"
#include "core/io/telemetry.hpp"
#include "core/model/slice_layout.hpp"

#include <dlfcn.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace flexslurm
{

struct VendorLibraryCloser {
	void operator()(void *handle) const noexcept { dlclose(handle); }
};
using VendorLibraryHandle = std::unique_ptr<void, VendorLibraryCloser>;

struct LoadedLibrary {
	VendorLibraryHandle handle;
	std::string name; // the candidate that loaded
};

// dlopen()s the first of `candidates` that loads (RTLD_NOW | RTLD_LOCAL). The error names every
// candidate and why the last failed.
Result<LoadedLibrary> load_first_library(const std::vector<std::string> &candidates);

template <class F>
F library_symbol(void *library, const char *name) noexcept
{
	// POSIX guarantees that a dlsym() result converts to a function pointer.
	return reinterpret_cast<F>(dlsym(library, name));
}

// The name of the first entry point in `required` ({found, name}) that the library lacks; empty
// when it has them all.
inline std::string first_missing(std::initializer_list<std::pair<bool, const char *>> required)
{
	for (const auto &[present, symbol_name] : required)
		if (!present)
			return symbol_name;
	return {};
}

// "dddd:bb:dd.f", lowercase, as the inventory (hwloc) writes a device's PCI bus id.
std::string pci_bus_id(uint64_t domain, unsigned bus, unsigned device, unsigned function);

// One device as a vendor library numbers it.
struct LibraryDevice {
	std::string bus_id; // pci_bus_id()
	size_t key = 0;     // the backend's own index of the device
};

struct MatchedDevice {
	int layout_index = 0;
	size_t key = 0;
	std::string bus_id;
};

// The layout's devices of `vendor` matched to the library's: by PCI bus id where the layout knows
// it, else (as for NVML) the vendor_index-th of the library's devices in PCI bus order. A layout
// device left unmatched is logged (log_error, naming `library_label`) and left out: it counts as busy.
std::vector<MatchedDevice> match_library_devices(const SliceLayout &layout, Vendor vendor,
                                                 std::vector<LibraryDevice> found,
                                                 const std::string &library_label);

// One process a library reports on one device. busy_percent: its share of the device's compute
// where the library tells it; nullopt where it does not.
struct LibraryProcess {
	unsigned pid = 0;
	uint64_t memory_bytes = 0;
	std::optional<double> busy_percent;
};

// Fills sample.jobs (and sets per_job) from `processes`: each process's job by its cgroup
// (proc_root/<pid>/cgroup); processes outside any job, or gone, are left out. A job with a process
// whose busy share the library does not tell is given the whole device's busy % if it is the only
// job on the device; with another job beside it, the sample stays whole-device (per_job false), as
// one busy job's use cannot be told from another's. Never a partial attribution.
void attribute_processes(const std::vector<LibraryProcess> &processes, const std::string &proc_root,
                         const SlurmMarks &marks, DeviceSample &sample);

} // namespace flexslurm
