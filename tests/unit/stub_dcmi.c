/* A stand-in for libdcmi.so: the DCMI entry points the Ascend telemetry
 * backend resolves, over the devices of a control file (stub_vendor_state.h,
 * FLEXSLURM_STUB_DCMI). Struct layouts follow dcmi_interface_api.h. A card
 * holds the devices with its "card" number, in file order (device_id 0, 1..).
 * Built twice: libstub_dcmi_old (STUB_DCMI_OLD) lacks
 * dcmi_get_device_pcie_info_v2 and dcmi_get_dcmi_version, as an old driver. */
#define STUB_ENV "FLEXSLURM_STUB_DCMI"
#include "stub_vendor_state.h"

#define DCMI_OK 0
#define DCMI_ERR_CODE_INVALID_PARAMETER (-8001)
#define DCMI_ERR_CODE_DEVICE_NOT_EXIST (-8008)
#define DCMI_ERR_CODE_NOT_SUPPORT (-8255)

struct dcmi_pcie_info_all {
	unsigned int venderid, subvenderid, deviceid, subdeviceid;
	int domain;
	unsigned int bdf_busid, bdf_deviceid, bdf_funcid;
	unsigned char reserve[32];
};

struct dcmi_hbm_info {
	unsigned long long memory_size;
	unsigned int freq;
	unsigned long long memory_usage;
	int temp;
	unsigned int bandwith_util_rate;
};

struct dcmi_get_memory_info_stru {
	unsigned long long memory_size;
	unsigned long long memory_available;
	unsigned int freq;
	unsigned long hugepagesize;
	unsigned long hugepages_total;
	unsigned long hugepages_free;
	unsigned int utiliza;
	unsigned char reserve[60];
};

struct dcmi_proc_mem_info {
	int proc_id;
	unsigned long proc_mem_usage;
};

static int initialized;

/* The file's device that is device `chip` of card `card`; -1 if none. */
static int device_at(int card, int chip)
{
	int i, seen = 0;
	stub_load();
	for (i = 0; i < stub.device_count; i++)
		if (stub.devices[i].card == card && seen++ == chip)
			return i;
	return -1;
}

int dcmi_init(void)
{
	stub_load();
	if (stub.fail_init)
		return stub.fail_init;
	initialized = 1;
	return DCMI_OK;
}

int dcmi_get_card_list(int *card_num, int *card_list, int list_len)
{
	int i, j, n = 0;
	stub_load();
	if (!initialized)
		return DCMI_ERR_CODE_DEVICE_NOT_EXIST;
	for (i = 0; i < stub.device_count; i++) {
		for (j = 0; j < i; j++)
			if (stub.devices[j].card == stub.devices[i].card)
				break;
		if (j < i)
			continue;
		if (n >= list_len)
			return DCMI_ERR_CODE_INVALID_PARAMETER;
		card_list[n++] = stub.devices[i].card;
	}
	*card_num = n;
	return DCMI_OK;
}

int dcmi_get_device_num_in_card(int card, int *device_num)
{
	int i, n = 0;
	stub_load();
	for (i = 0; i < stub.device_count; i++)
		n += stub.devices[i].card == card;
	if (n == 0)
		return DCMI_ERR_CODE_DEVICE_NOT_EXIST;
	*device_num = n;
	return DCMI_OK;
}

#ifndef STUB_DCMI_OLD
int dcmi_get_device_pcie_info_v2(int card, int chip, struct dcmi_pcie_info_all *info)
{
	int i = device_at(card, chip);
	if (i < 0)
		return DCMI_ERR_CODE_DEVICE_NOT_EXIST;
	if (stub.devices[i].fail_pci)
		return stub.devices[i].fail_pci;
	memset(info, 0, sizeof *info);
	info->venderid = 0x19e5;
	info->deviceid = 0xd802;
	info->domain = (int)stub.devices[i].domain;
	info->bdf_busid = stub.devices[i].bus;
	info->bdf_deviceid = stub.devices[i].slot;
	info->bdf_funcid = stub.devices[i].function;
	return DCMI_OK;
}

int dcmi_get_dcmi_version(char *version, int size)
{
	stub_load();
	snprintf(version, (size_t)size, "%u.%u.%u", stub.version[0], stub.version[1], stub.version[2]);
	return DCMI_OK;
}
#endif

int dcmi_get_device_utilization_rate(int card, int chip, int type, unsigned int *rate)
{
	int i = device_at(card, chip);
	if (i < 0)
		return DCMI_ERR_CODE_DEVICE_NOT_EXIST;
	if (type != 2) /* AI Core: the only type the backend should ask */
		return DCMI_ERR_CODE_INVALID_PARAMETER;
	if (stub.devices[i].fail_busy)
		return stub.devices[i].fail_busy;
	*rate = stub.devices[i].busy;
	return DCMI_OK;
}

int dcmi_get_device_hbm_info(int card, int chip, struct dcmi_hbm_info *hbm)
{
	int i = device_at(card, chip);
	if (i < 0)
		return DCMI_ERR_CODE_DEVICE_NOT_EXIST;
	if (stub.devices[i].ddr)
		return DCMI_ERR_CODE_NOT_SUPPORT;
	if (stub.devices[i].fail_memory)
		return stub.devices[i].fail_memory;
	memset(hbm, 0, sizeof *hbm);
	hbm->memory_size = stub.devices[i].total_mib;
	hbm->memory_usage = stub.devices[i].used_mib;
	hbm->freq = 1600;
	return DCMI_OK;
}

int dcmi_get_device_memory_info_v3(int card, int chip, struct dcmi_get_memory_info_stru *memory)
{
	int i = device_at(card, chip);
	if (i < 0)
		return DCMI_ERR_CODE_DEVICE_NOT_EXIST;
	if (stub.devices[i].fail_memory)
		return stub.devices[i].fail_memory;
	memset(memory, 0, sizeof *memory);
	memory->memory_size = stub.devices[i].total_mib;
	memory->memory_available = stub.devices[i].total_mib - stub.devices[i].used_mib;
	memory->hugepagesize = 2048;
	return DCMI_OK;
}

int dcmi_get_device_resource_info(int card, int chip, struct dcmi_proc_mem_info *procs, int *proc_num)
{
	int i = device_at(card, chip), j, n = 0;
	if (i < 0)
		return DCMI_ERR_CODE_DEVICE_NOT_EXIST;
	if (stub.fail_processes)
		return stub.fail_processes;
	for (j = 0; j < stub.process_count; j++)
		if (stub.processes[j].device == i) {
			procs[n].proc_id = (int)stub.processes[j].pid;
			procs[n].proc_mem_usage = (unsigned long)(stub.processes[j].mib << 20);
			n++;
		}
	*proc_num = n;
	return DCMI_OK;
}
