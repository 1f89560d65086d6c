/* A stand-in for librocm_smi64.so: the ROCm SMI entry points the AMD
 * telemetry backend resolves, over the devices of a control file
 * (stub_vendor_state.h, FLEXSLURM_STUB_ROCMSMI). Struct layouts follow
 * rocm_smi.h. A process's "busy" is its CU occupancy. */
#define STUB_ENV "FLEXSLURM_STUB_ROCMSMI"
#include "stub_vendor_state.h"

#include <stdint.h>

#define RSMI_STATUS_SUCCESS 0
#define RSMI_STATUS_INVALID_ARGS 1
#define RSMI_STATUS_INIT_ERROR 8
#define RSMI_STATUS_NOT_FOUND 10
#define RSMI_STATUS_INSUFFICIENT_SIZE 11

typedef struct {
	uint32_t major, minor, patch;
	const char *build;
} rsmi_version_t;

typedef struct {
	uint32_t process_id;
	uint32_t pasid;
	uint64_t vram_usage;
	uint64_t sdma_usage;
	uint32_t cu_occupancy;
} rsmi_process_info_t;

static int init_depth;

int stub_rocmsmi_init_depth(void)
{
	return init_depth;
}

int rsmi_version_get(rsmi_version_t *version)
{
	stub_load();
	version->major = stub.version[0];
	version->minor = stub.version[1];
	version->patch = stub.version[2];
	version->build = "stub";
	return RSMI_STATUS_SUCCESS;
}

int rsmi_status_string(int status, const char **text)
{
	*text = status == 0   ? "RSMI_STATUS_SUCCESS"
	        : status == 8 ? "RSMI_STATUS_INIT_ERROR"
	                      : "RSMI_STATUS_UNKNOWN";
	return RSMI_STATUS_SUCCESS;
}

int rsmi_init(uint64_t flags)
{
	(void)flags;
	stub_load();
	if (stub.fail_init)
		return stub.fail_init;
	init_depth++;
	return RSMI_STATUS_SUCCESS;
}

int rsmi_shut_down(void)
{
	if (!init_depth)
		return RSMI_STATUS_INIT_ERROR;
	init_depth--;
	return RSMI_STATUS_SUCCESS;
}

int rsmi_num_monitor_devices(uint32_t *count)
{
	stub_load();
	*count = (uint32_t)stub.device_count;
	return RSMI_STATUS_SUCCESS;
}

int rsmi_dev_pci_id_get(uint32_t i, uint64_t *bdfid)
{
	stub_load();
	if (i >= (uint32_t)stub.device_count)
		return RSMI_STATUS_INVALID_ARGS;
	if (stub.devices[i].fail_pci)
		return stub.devices[i].fail_pci;
	*bdfid = ((uint64_t)stub.devices[i].domain << 32) | ((uint64_t)stub.devices[i].bus << 8) |
	         ((uint64_t)(stub.devices[i].slot & 0x1f) << 3) | (stub.devices[i].function & 0x7);
	return RSMI_STATUS_SUCCESS;
}

int rsmi_dev_busy_percent_get(uint32_t i, uint32_t *busy)
{
	stub_load();
	if (i >= (uint32_t)stub.device_count)
		return RSMI_STATUS_INVALID_ARGS;
	if (stub.devices[i].fail_busy)
		return stub.devices[i].fail_busy;
	*busy = stub.devices[i].busy;
	return RSMI_STATUS_SUCCESS;
}

int rsmi_dev_memory_usage_get(uint32_t i, int type, uint64_t *used)
{
	stub_load();
	if (i >= (uint32_t)stub.device_count || type != 0)
		return RSMI_STATUS_INVALID_ARGS;
	if (stub.devices[i].fail_memory)
		return stub.devices[i].fail_memory;
	*used = stub.devices[i].used_mib << 20;
	return RSMI_STATUS_SUCCESS;
}

/* Every process once (KFD's list), with its figures summed over its devices. */
int rsmi_compute_process_info_get(rsmi_process_info_t *procs, uint32_t *num_items)
{
	uint32_t n = 0, room = *num_items;
	int i, j;
	stub_load();
	if (stub.fail_processes)
		return stub.fail_processes;
	for (i = 0; i < stub.process_count; i++) {
		for (j = 0; j < i; j++)
			if (stub.processes[j].pid == stub.processes[i].pid)
				break;
		if (j < i)
			continue;
		if (procs && n < room) {
			memset(&procs[n], 0, sizeof procs[n]);
			procs[n].process_id = stub.processes[i].pid;
			for (j = i; j < stub.process_count; j++)
				if (stub.processes[j].pid == stub.processes[i].pid) {
					procs[n].vram_usage += stub.processes[j].mib << 20;
					procs[n].cu_occupancy += stub.processes[j].busy;
				}
		}
		n++;
	}
	*num_items = n;
	return procs && n > room ? RSMI_STATUS_INSUFFICIENT_SIZE : RSMI_STATUS_SUCCESS;
}

int rsmi_compute_process_gpus_get(uint32_t pid, uint32_t *devices, uint32_t *num_devices)
{
	uint32_t n = 0;
	int i;
	stub_load();
	for (i = 0; i < stub.process_count; i++)
		if (stub.processes[i].pid == pid) {
			if (devices && n < *num_devices)
				devices[n] = (uint32_t)stub.processes[i].device;
			n++;
		}
	if (n == 0)
		return RSMI_STATUS_NOT_FOUND;
	if (devices && n > *num_devices)
		return RSMI_STATUS_INSUFFICIENT_SIZE;
	*num_devices = n;
	return RSMI_STATUS_SUCCESS;
}

#ifndef STUB_ROCMSMI_NO_BY_DEVICE
int rsmi_compute_process_info_by_device_get(uint32_t pid, uint32_t device, rsmi_process_info_t *proc)
{
	int i;
	stub_load();
	for (i = 0; i < stub.process_count; i++)
		if (stub.processes[i].pid == pid && (uint32_t)stub.processes[i].device == device) {
			memset(proc, 0, sizeof *proc);
			proc->process_id = pid;
			proc->vram_usage = stub.processes[i].mib << 20;
			proc->cu_occupancy = stub.processes[i].busy;
			return RSMI_STATUS_SUCCESS;
		}
	return RSMI_STATUS_NOT_FOUND;
}
#endif
