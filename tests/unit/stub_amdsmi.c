/* A stand-in for libamd_smi.so: the AMD SMI entry points the AMD telemetry
 * backend resolves, over the devices of a control file (stub_vendor_state.h,
 * FLEXSLURM_STUB_AMDSMI). Struct layouts follow amdsmi.h (library year 24). */
#define STUB_ENV "FLEXSLURM_STUB_AMDSMI"
#include "stub_vendor_state.h"

#include <stdint.h>
#include <time.h>

#define AMDSMI_STATUS_SUCCESS 0
#define AMDSMI_STATUS_INVAL 1
#define AMDSMI_STATUS_NOT_INIT 32
#define AMDSMI_STATUS_OUT_OF_RESOURCES 15
#define AMDSMI_INIT_AMD_GPUS (1 << 1)

typedef struct {
	uint32_t year, major, minor, release;
	const char *build;
} amdsmi_version_t;

typedef struct {
	uint32_t gfx_activity, umc_activity, mm_activity;
	uint32_t reserved[13];
} amdsmi_engine_usage_t;

typedef struct {
	char name[32];
	uint32_t pid;
	uint64_t mem;
	struct {
		uint64_t gfx, enc;
		uint32_t reserved[12];
	} engine_usage;
	struct {
		uint64_t gtt_mem, cpu_mem, vram_mem;
		uint32_t reserved[10];
	} memory_usage;
	char container_name[32];
	uint32_t reserved[4];
} amdsmi_proc_info_t;

static char sockets[STUB_MAX_DEVICES];
static char processors[STUB_MAX_DEVICES];
static int init_depth;
/* Processes given as "busy N": their graphics time grows N% of real time. */
static struct {
	int device;
	unsigned pid;
	unsigned long long gfx_ns, at_ns;
} clocks[STUB_MAX_PROCESSES];
static int clock_count;

/* amdsmi_init calls not yet matched by amdsmi_shut_down. */
int stub_amdsmi_init_depth(void)
{
	return init_depth;
}

static int device_of(void *processor)
{
	long i = (char *)processor - processors;
	return i >= 0 && i < stub.device_count ? (int)i : -1;
}

int amdsmi_get_lib_version(amdsmi_version_t *version)
{
	stub_load();
	version->year = stub.version[0];
	version->major = stub.version[1];
	version->minor = stub.version[2];
	version->release = stub.version[3];
	version->build = "stub";
	return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_status_code_to_string(int status, const char **text)
{
	*text = status == 0    ? "AMDSMI_STATUS_SUCCESS"
	        : status == 34 ? "AMDSMI_STATUS_DRIVER_NOT_LOADED"
	                       : "AMDSMI_STATUS_UNKNOWN";
	return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_init(uint64_t flags)
{
	stub_load();
	if (stub.fail_init)
		return stub.fail_init;
	if (!(flags & AMDSMI_INIT_AMD_GPUS))
		return AMDSMI_STATUS_INVAL;
	init_depth++;
	return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_shut_down(void)
{
	if (!init_depth)
		return AMDSMI_STATUS_NOT_INIT;
	init_depth--;
	return AMDSMI_STATUS_SUCCESS;
}

/* One socket per device, one GPU per socket. */
int amdsmi_get_socket_handles(uint32_t *count, void **handles)
{
	int i;
	stub_load();
	if (!init_depth)
		return AMDSMI_STATUS_NOT_INIT;
	if (!handles || *count < (uint32_t)stub.device_count) {
		*count = (uint32_t)stub.device_count;
		return handles ? AMDSMI_STATUS_OUT_OF_RESOURCES : AMDSMI_STATUS_SUCCESS;
	}
	for (i = 0; i < stub.device_count; i++)
		handles[i] = &sockets[i];
	*count = (uint32_t)stub.device_count;
	return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_processor_handles(void *socket, uint32_t *count, void **handles)
{
	long i = (char *)socket - sockets;
	if (i < 0 || i >= STUB_MAX_DEVICES)
		return AMDSMI_STATUS_INVAL;
	if (!handles || *count < 1) {
		*count = 1;
		return AMDSMI_STATUS_SUCCESS;
	}
	handles[0] = &processors[i];
	*count = 1;
	return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_gpu_device_bdf(void *processor, uint64_t *bdf)
{
	int i;
	stub_load();
	if ((i = device_of(processor)) < 0)
		return AMDSMI_STATUS_INVAL;
	if (stub.devices[i].fail_pci)
		return stub.devices[i].fail_pci;
	*bdf = ((uint64_t)stub.devices[i].domain << 16) | ((uint64_t)stub.devices[i].bus << 8) |
	       ((uint64_t)(stub.devices[i].slot & 0x1f) << 3) | (stub.devices[i].function & 0x7);
	return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_gpu_activity(void *processor, amdsmi_engine_usage_t *usage)
{
	int i;
	stub_load();
	if ((i = device_of(processor)) < 0)
		return AMDSMI_STATUS_INVAL;
	if (stub.devices[i].fail_busy)
		return stub.devices[i].fail_busy;
	memset(usage, 0, sizeof *usage);
	usage->gfx_activity = stub.devices[i].busy;
	return AMDSMI_STATUS_SUCCESS;
}

int amdsmi_get_gpu_memory_usage(void *processor, int type, uint64_t *used)
{
	int i;
	stub_load();
	if ((i = device_of(processor)) < 0 || type != 0)
		return AMDSMI_STATUS_INVAL;
	if (stub.devices[i].fail_memory)
		return stub.devices[i].fail_memory;
	*used = stub.devices[i].used_mib << 20;
	return AMDSMI_STATUS_SUCCESS;
}

static unsigned long long gfx_of(int device, const struct stub_process *p)
{
	struct timespec now;
	unsigned long long now_ns;
	int i;
	if (p->has_gfx)
		return p->gfx_ns;
	clock_gettime(CLOCK_MONOTONIC, &now);
	now_ns = (unsigned long long)now.tv_sec * 1000000000ULL + (unsigned long long)now.tv_nsec;
	for (i = 0; i < clock_count; i++)
		if (clocks[i].device == device && clocks[i].pid == p->pid)
			break;
	if (i == clock_count) {
		if (clock_count == STUB_MAX_PROCESSES)
			return 0;
		clock_count++;
		clocks[i].device = device;
		clocks[i].pid = p->pid;
		clocks[i].gfx_ns = 0;
		clocks[i].at_ns = now_ns;
	}
	clocks[i].gfx_ns += (now_ns - clocks[i].at_ns) * p->busy / 100;
	clocks[i].at_ns = now_ns;
	return clocks[i].gfx_ns;
}

int amdsmi_get_gpu_process_list(void *processor, uint32_t *max_processes, amdsmi_proc_info_t *list)
{
	int i, d;
	uint32_t n = 0, room = *max_processes;
	stub_load();
	if ((d = device_of(processor)) < 0)
		return AMDSMI_STATUS_INVAL;
	if (stub.fail_processes)
		return stub.fail_processes;
	for (i = 0; i < stub.process_count; i++) {
		const struct stub_process *p = &stub.processes[i];
		if (p->device != d)
			continue;
		if (list && n < room) {
			memset(&list[n], 0, sizeof list[n]);
			snprintf(list[n].name, sizeof list[n].name, "stub%u", p->pid);
			list[n].pid = p->pid;
			list[n].mem = p->mib << 20;
			list[n].memory_usage.vram_mem = p->mib << 20;
			list[n].engine_usage.gfx = gfx_of(d, p);
		}
		n++;
	}
	*max_processes = n;
	return room && n > room ? AMDSMI_STATUS_OUT_OF_RESOURCES : AMDSMI_STATUS_SUCCESS;
}
