// The few DCMI (Ascend device-management library, libdcmi.so) types and
// entry points the Ascend telemetry backend uses, declared here so that
// building needs no Ascend driver headers: the library is dlopen()ed at run
// time. Layouts as in dcmi_interface_api.h (Huawei, Apache-2.0; the copy
// read is "Copyright(C) 2021-2023", the DCMI_VERSION_2 interface that
// Ascend's MindX device plugin and NPU exporter call from Go).
#pragma once

#include <cstddef>

namespace flexslurm::dcmi
{

constexpr int dcmi_ok = 0;
constexpr int dcmi_err_not_support = -8255;      // DCMI_ERR_CODE_NOT_SUPPORT
constexpr int dcmi_utilization_ai_core = 2;      // dcmi_get_device_utilization_rate's input_type
constexpr unsigned long long dcmi_mib = 1 << 20; // memory figures are in MB (MiB)

// struct dcmi_pcie_info_all: 64 bytes.
struct DcmiPcieInfo {
	unsigned int vendor_id;
	unsigned int subvendor_id;
	unsigned int device_id;
	unsigned int subdevice_id;
	int domain;
	unsigned int bdf_bus;
	unsigned int bdf_device;
	unsigned int bdf_function;
	unsigned char reserve[32];
};
static_assert(sizeof(DcmiPcieInfo) == 64);

// struct dcmi_hbm_info (HBM devices: Ascend 910 family)
struct DcmiHbmInfo {
	unsigned long long memory_size; // MB
	unsigned int freq;
	unsigned long long memory_usage; // MB
	int temp;
	unsigned int bandwidth_util_rate;
};

// struct dcmi_get_memory_info_stru (DDR devices: Ascend 310 family): 96 bytes on LP64.
struct DcmiMemoryInfo {
	unsigned long long memory_size;      // MB
	unsigned long long memory_available; // MB: free + free huge pages
	unsigned int freq;
	unsigned long hugepagesize; // KB
	unsigned long hugepages_total;
	unsigned long hugepages_free;
	unsigned int utilization;
	unsigned char reserve[60];
};

// struct dcmi_proc_mem_info: one process holding device memory.
struct DcmiProcessMemory {
	int pid;
	unsigned long memory_bytes;
};

using DcmiInit = int (*)();
using DcmiGetCardList = int (*)(int *card_num, int *card_list, int list_len);
using DcmiGetDeviceNumInCard = int (*)(int card_id, int *device_num);
using DcmiGetPcieInfo = int (*)(int card_id, int device_id, DcmiPcieInfo *);
using DcmiGetUtilization = int (*)(int card_id, int device_id, int input_type, unsigned int *rate);
using DcmiGetHbmInfo = int (*)(int card_id, int device_id, DcmiHbmInfo *);
using DcmiGetMemoryInfo = int (*)(int card_id, int device_id, DcmiMemoryInfo *);
using DcmiGetResourceInfo = int (*)(int card_id, int device_id, DcmiProcessMemory *, int *proc_num);
using DcmiGetVersion = int (*)(char *version, int buf_size);

} // namespace flexslurm::dcmi
