// SPDX-License-Identifier: GPL-2.0-or-later
// The few NVML types and entry points the NVML telemetry backend uses,
// declared here so that building needs no CUDA headers: the library is
// dlopen()ed at run time. Layouts as in nvml.h.
#pragma once

#include <cstddef>

namespace flexslurm::nvml
{

using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st *;
constexpr nvmlReturn_t nvml_success = 0;
constexpr nvmlReturn_t nvml_error_not_supported = 3;
constexpr nvmlReturn_t nvml_error_not_found = 6;
constexpr nvmlReturn_t nvml_error_insufficient_size = 7;
constexpr unsigned long long nvml_value_not_available = ~0ULL;

// nvmlPciInfo_t. The _v2 and _v3 queries differ in the string that comes
// first (busId[16] vs busIdLegacy[16]) but agree on the numbers after it,
// which is all the ordering uses; the buffer is sized for the larger layout.
struct NvmlPciInfo {
	char bus_id_legacy[16];
	unsigned int domain;
	unsigned int bus;
	unsigned int device;
	unsigned int pci_device_id;
	unsigned int pci_subsystem_id;
	char bus_id[32];
	char spare[64]; // room for a layout that grows
};

struct NvmlUtilization {
	unsigned int gpu;
	unsigned int memory;
};

struct NvmlMemory {
	unsigned long long total;
	unsigned long long free;
	unsigned long long used;
};

// nvmlProcessUtilizationSample_t
struct NvmlProcessUtilizationSample {
	unsigned int pid;
	unsigned long long time_stamp;
	unsigned int sm_util;
	unsigned int mem_util;
	unsigned int enc_util;
	unsigned int dec_util;
};

// nvmlProcessInfo_v2_t is {pid, usedGpuMemory, gpuInstanceId,
// computeInstanceId}: 24 bytes. The _v3 query takes nvmlProcessInfo_t,
// which R535 drivers grew by usedGpuCcProtectedMemory (32 bytes) without a
// new symbol; later headers went back to 24. Both start with pid at 0 and
// usedGpuMemory at 8, so entries are decoded by offset with the stride
// measured on each answer (see running_processes).
constexpr size_t process_info_v2_size = 24;
constexpr size_t process_info_cc_size = 32;
constexpr size_t process_info_memory_offset = 8;

using NvmlInit = nvmlReturn_t (*)();
using NvmlShutdown = nvmlReturn_t (*)();
using NvmlErrorString = const char *(*)(nvmlReturn_t);
using NvmlGetCount = nvmlReturn_t (*)(unsigned int *);
using NvmlGetHandleByIndex = nvmlReturn_t (*)(unsigned int, nvmlDevice_t *);
using NvmlGetPciInfo = nvmlReturn_t (*)(nvmlDevice_t, NvmlPciInfo *);
using NvmlGetUtilization = nvmlReturn_t (*)(nvmlDevice_t, NvmlUtilization *);
using NvmlGetMemory = nvmlReturn_t (*)(nvmlDevice_t, NvmlMemory *);
using NvmlGetProcesses = nvmlReturn_t (*)(nvmlDevice_t, unsigned int *, void *);
using NvmlGetProcessUtilization = nvmlReturn_t (*)(nvmlDevice_t, NvmlProcessUtilizationSample *,
                                                   unsigned int *, unsigned long long);

} // namespace flexslurm::nvml
