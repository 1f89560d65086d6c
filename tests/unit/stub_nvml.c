/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A stand-in for libnvidia-ml.so.1: the NVML entry points the telemetry
 * backend resolves, over a fake state that the unit test sets through the
 * stub_nvml_* functions (it dlopen()s this same file, so both share one
 * copy of the state). Struct layouts follow nvml.h. */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

typedef int nvmlReturn_t;
#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_GPU_IS_LOST 15

#define STUB_MAX_DEVICES 16
#define STUB_MAX_PROCESSES 64

typedef struct {
	char busIdLegacy[16];
	unsigned int domain;
	unsigned int bus;
	unsigned int device;
	unsigned int pciDeviceId;
	unsigned int pciSubSystemId;
	char busId[32];
} nvmlPciInfo_t;

typedef struct {
	unsigned int gpu;
	unsigned int memory;
} nvmlUtilization_t;

typedef struct {
	unsigned long long total;
	unsigned long long free;
	unsigned long long used;
} nvmlMemory_t;

/* nvmlProcessInfo_t as R535 drivers write it; older and newer ones stop
 * before usedGpuCcProtectedMemory (24 bytes). */
typedef struct {
	unsigned int pid;
	unsigned long long usedGpuMemory;
	unsigned int gpuInstanceId;
	unsigned int computeInstanceId;
	unsigned long long usedGpuCcProtectedMemory;
} stub_process_info_cc;

typedef struct {
	unsigned int pid;
	unsigned long long usedGpuMemory;
	unsigned int gpuInstanceId;
	unsigned int computeInstanceId;
} stub_process_info_v2;

typedef struct {
	unsigned int pid;
	unsigned long long timeStamp;
	unsigned int smUtil;
	unsigned int memUtil;
	unsigned int encUtil;
	unsigned int decUtil;
} nvmlProcessUtilizationSample_t;

struct stub_process {
	unsigned int pid;
	unsigned long long memory;
	unsigned int sm_util;
	unsigned long long time_stamp;
};

struct stub_device {
	nvmlPciInfo_t pci;
	unsigned int utilization;
	unsigned long long memory_used;
	unsigned long long memory_total;
	int fail_utilization;
	int process_count;
	struct stub_process processes[STUB_MAX_PROCESSES];
	unsigned long long last_seen_asked;
};
typedef struct stub_device *nvmlDevice_t;

static struct stub_device devices[STUB_MAX_DEVICES];
static int device_count;
static int init_fails;
static int init_depth;
static int process_stride = 24;
static unsigned long long clock_us;

/* ---- control, for the test ---- */

void stub_nvml_configure(int count)
{
	memset(devices, 0, sizeof devices);
	device_count = count < 0 ? 0 : (count > STUB_MAX_DEVICES ? STUB_MAX_DEVICES : count);
	init_fails = 0;
	process_stride = 24;
}

void stub_nvml_fail_init(int fail)
{
	init_fails = fail;
}

/* 24: nvmlProcessInfo_v2_t entries; 32: R535's larger nvmlProcessInfo_t. */
void stub_nvml_set_process_stride(int bytes)
{
	process_stride = bytes == 32 ? 32 : 24;
}

void stub_nvml_set_device(int i, const char *bus_id, unsigned int utilization, unsigned long long memory_used,
                          unsigned long long memory_total)
{
	struct stub_device *d;
	unsigned int domain = 0, bus = 0, slot = 0, function = 0;
	if (i < 0 || i >= STUB_MAX_DEVICES)
		return;
	d = &devices[i];
	sscanf(bus_id, "%x:%x:%x.%x", &domain, &bus, &slot, &function);
	snprintf(d->pci.busIdLegacy, sizeof d->pci.busIdLegacy, "%04X:%02X:%02X.%X", domain, bus, slot,
	         function);
	snprintf(d->pci.busId, sizeof d->pci.busId, "%08X:%02X:%02X.%X", domain, bus, slot, function);
	d->pci.domain = domain;
	d->pci.bus = bus;
	d->pci.device = slot;
	d->pci.pciDeviceId = 0x233010de;
	d->utilization = utilization;
	d->memory_used = memory_used;
	d->memory_total = memory_total;
}

void stub_nvml_fail_device(int i, int fail)
{
	if (i >= 0 && i < STUB_MAX_DEVICES)
		devices[i].fail_utilization = fail;
}

/* A process with memory on device `dev`; sm_util is reported once, with a
 * timestamp newer than anything reported before. */
void stub_nvml_add_process(int dev, unsigned int pid, unsigned long long memory, unsigned int sm_util)
{
	struct stub_device *d;
	struct timeval now;
	if (dev < 0 || dev >= STUB_MAX_DEVICES || devices[dev].process_count >= STUB_MAX_PROCESSES)
		return;
	d = &devices[dev];
	gettimeofday(&now, NULL);
	clock_us = (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_usec > clock_us
	                   ? (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_usec
	                   : clock_us + 1;
	d->processes[d->process_count].pid = pid;
	d->processes[d->process_count].memory = memory;
	d->processes[d->process_count].sm_util = sm_util;
	d->processes[d->process_count].time_stamp = clock_us;
	d->process_count++;
}

/* The lastSeenTimeStamp the backend passed on its latest query of `dev`. */
unsigned long long stub_nvml_last_seen(int dev)
{
	return dev >= 0 && dev < STUB_MAX_DEVICES ? devices[dev].last_seen_asked : 0;
}

/* nvmlInit_v2 calls not yet matched by nvmlShutdown. */
int stub_nvml_init_depth(void)
{
	return init_depth;
}

/* ---- NVML ---- */

const char *nvmlErrorString(nvmlReturn_t result)
{
	switch (result) {
	case NVML_SUCCESS:
		return "Success";
	case NVML_ERROR_DRIVER_NOT_LOADED:
		return "Driver Not Loaded";
	case NVML_ERROR_GPU_IS_LOST:
		return "GPU is lost";
	default:
		return "Unknown Error";
	}
}

nvmlReturn_t nvmlInit_v2(void)
{
	if (init_fails)
		return NVML_ERROR_DRIVER_NOT_LOADED;
	init_depth++;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void)
{
	if (init_depth == 0)
		return NVML_ERROR_UNINITIALIZED;
	init_depth--;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
	if (!init_depth)
		return NVML_ERROR_UNINITIALIZED;
	*count = (unsigned int)device_count;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
	if (!init_depth)
		return NVML_ERROR_UNINITIALIZED;
	if (index >= (unsigned int)device_count)
		return NVML_ERROR_INVALID_ARGUMENT;
	*device = &devices[index];
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
	*pci = device->pci;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
	if (device->fail_utilization)
		return NVML_ERROR_GPU_IS_LOST;
	utilization->gpu = device->utilization;
	utilization->memory = 0;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
	memory->total = device->memory_total;
	memory->used = device->memory_used;
	memory->free = device->memory_total - device->memory_used;
	return NVML_SUCCESS;
}

static nvmlReturn_t running_processes(nvmlDevice_t device, unsigned int *count, void *infos, int stride)
{
	int i;
	if (*count < (unsigned int)device->process_count || (!infos && device->process_count > 0)) {
		*count = (unsigned int)device->process_count;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	for (i = 0; i < device->process_count; i++) {
		if (stride == 32) {
			stub_process_info_cc info = {device->processes[i].pid, device->processes[i].memory,
			                             0xFFFFFFFFu, 0xFFFFFFFFu, 0};
			memcpy((char *)infos + (size_t)i * 32, &info, 32);
		} else {
			stub_process_info_v2 info = {device->processes[i].pid, device->processes[i].memory,
			                             0xFFFFFFFFu, 0xFFFFFFFFu};
			memcpy((char *)infos + (size_t)i * 24, &info, 24);
		}
	}
	*count = (unsigned int)device->process_count;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, void *infos)
{
	return running_processes(device, count, infos, process_stride);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *count, void *infos)
{
	return running_processes(device, count, infos, 24);
}

/* No MPS daemon in the stub's world. */
nvmlReturn_t nvmlDeviceGetMPSComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count, void *infos)
{
	(void)device;
	(void)infos;
	*count = 0;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *utilization,
                                             unsigned int *count, unsigned long long last_seen)
{
	unsigned int found = 0;
	int i;
	device->last_seen_asked = last_seen;
	for (i = 0; i < device->process_count; i++)
		if (device->processes[i].time_stamp > last_seen)
			found++;
	if (found == 0)
		return NVML_ERROR_NOT_FOUND;
	if (!utilization || *count < found) {
		*count = found;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	found = 0;
	for (i = 0; i < device->process_count; i++) {
		if (device->processes[i].time_stamp <= last_seen)
			continue;
		memset(&utilization[found], 0, sizeof utilization[found]);
		utilization[found].pid = device->processes[i].pid;
		utilization[found].timeStamp = device->processes[i].time_stamp;
		utilization[found].smUtil = device->processes[i].sm_util;
		found++;
	}
	*count = found;
	return NVML_SUCCESS;
}
