// The few AMD SMI (libamd_smi.so) and ROCm SMI (librocm_smi64.so) types and
// entry points the AMD telemetry backend uses, declared here so that building
// needs no ROCm headers: the libraries are dlopen()ed at run time. Layouts as
// in amdsmi.h of ROCm/amdsmi (AMDSMI_LIB_VERSION 24.7.0, Oct 2024; the
// amdsmi_version_t with `year` first dates from Jul 2023, library year 23) and
// rocm_smi.h of ROCm/rocm_smi_lib (Oct 2024).
#pragma once

#include <cstddef>
#include <cstdint>

namespace flexslurm::amdsmi
{

using amdsmi_status_t = int;
using amdsmi_handle = void *; // amdsmi_socket_handle, amdsmi_processor_handle
constexpr amdsmi_status_t amdsmi_success = 0;
constexpr amdsmi_status_t amdsmi_not_supported = 2;
constexpr amdsmi_status_t amdsmi_out_of_resources = 15;
constexpr uint64_t amdsmi_init_amd_gpus = 1 << 1;
constexpr int amdsmi_mem_type_vram = 0;

// amdsmi_version_t since library year 23.
struct AmdsmiVersion {
	uint32_t year;
	uint32_t major;
	uint32_t minor;
	uint32_t release;
	const char *build;
	char spare[64]; // room for a layout that grows
};
// The oldest and newest library years whose amdsmi_proc_info_t is the layout below (name[32]
// first); another year's per-process entries are not read (whole-device samples).
constexpr uint32_t amdsmi_min_year = 23;
constexpr uint32_t amdsmi_proc_info_max_year = 24;

// amdsmi_bdf_t: function 3 bits, device 5, bus 8, domain 48.
constexpr unsigned bdf_function(uint64_t bdf) noexcept
{
	return static_cast<unsigned>(bdf & 0x7);
}
constexpr unsigned bdf_device(uint64_t bdf) noexcept
{
	return static_cast<unsigned>((bdf >> 3) & 0x1f);
}
constexpr unsigned bdf_bus(uint64_t bdf) noexcept
{
	return static_cast<unsigned>((bdf >> 8) & 0xff);
}
constexpr uint64_t bdf_domain(uint64_t bdf) noexcept
{
	return bdf >> 16;
}

// amdsmi_engine_usage_t
struct AmdsmiEngineUsage {
	uint32_t gfx_activity; // %
	uint32_t umc_activity;
	uint32_t mm_activity;
	uint32_t reserved[13];
};

// amdsmi_proc_info_t (years 23, 24): 224 bytes.
struct AmdsmiProcInfo {
	char name[32];
	uint32_t pid;
	uint64_t mem; // bytes
	struct {
		uint64_t gfx; // ns of graphics engine time, since the process started
		uint64_t enc;
		uint32_t reserved[12];
	} engine_usage;
	struct {
		uint64_t gtt_mem;
		uint64_t cpu_mem;
		uint64_t vram_mem;
		uint32_t reserved[10];
	} memory_usage;
	char container_name[32];
	uint32_t reserved[4];
};
static_assert(sizeof(AmdsmiProcInfo) == 224);

using AmdsmiInit = amdsmi_status_t (*)(uint64_t flags);
using AmdsmiShutDown = amdsmi_status_t (*)();
using AmdsmiGetLibVersion = amdsmi_status_t (*)(AmdsmiVersion *);
using AmdsmiStatusString = amdsmi_status_t (*)(amdsmi_status_t, const char **);
using AmdsmiGetSockets = amdsmi_status_t (*)(uint32_t *count, amdsmi_handle *sockets);
using AmdsmiGetProcessors = amdsmi_status_t (*)(amdsmi_handle socket, uint32_t *count,
                                                amdsmi_handle *processors);
using AmdsmiGetBdf = amdsmi_status_t (*)(amdsmi_handle processor, uint64_t *bdf);
using AmdsmiGetActivity = amdsmi_status_t (*)(amdsmi_handle processor, AmdsmiEngineUsage *);
using AmdsmiGetMemoryUsage = amdsmi_status_t (*)(amdsmi_handle processor, int mem_type, uint64_t *used);
using AmdsmiGetProcessList = amdsmi_status_t (*)(amdsmi_handle processor, uint32_t *max_processes,
                                                 AmdsmiProcInfo *list);

} // namespace flexslurm::amdsmi

namespace flexslurm::rsmi
{

using rsmi_status_t = int;
constexpr rsmi_status_t rsmi_success = 0;
constexpr rsmi_status_t rsmi_not_supported = 2;
constexpr rsmi_status_t rsmi_not_found = 10;
constexpr rsmi_status_t rsmi_insufficient_size = 11;
constexpr int rsmi_mem_type_vram = 0;
constexpr uint32_t rsmi_min_major = 5; // ROCm 5.0's library: every call below, rsmi_process_info_t as here

// rsmi_version_t
struct RsmiVersion {
	uint32_t major;
	uint32_t minor;
	uint32_t patch;
	const char *build;
};

// rsmi_dev_pci_id_get's BDFID: domain in bits 63..32, bus 15..8, device 7..3, function 2..0.
constexpr uint64_t bdfid_domain(uint64_t bdfid) noexcept
{
	return bdfid >> 32;
}

// rsmi_process_info_t
struct RsmiProcessInfo {
	uint32_t process_id;
	uint32_t pasid;
	uint64_t vram_usage; // bytes
	uint64_t sdma_usage;
	uint32_t cu_occupancy; // % of the device's compute units
};

using RsmiInit = rsmi_status_t (*)(uint64_t flags);
using RsmiShutDown = rsmi_status_t (*)();
using RsmiVersionGet = rsmi_status_t (*)(RsmiVersion *);
using RsmiStatusString = rsmi_status_t (*)(rsmi_status_t, const char **);
using RsmiNumDevices = rsmi_status_t (*)(uint32_t *);
using RsmiPciId = rsmi_status_t (*)(uint32_t device, uint64_t *bdfid);
using RsmiBusyPercent = rsmi_status_t (*)(uint32_t device, uint32_t *percent);
using RsmiMemoryUsage = rsmi_status_t (*)(uint32_t device, int mem_type, uint64_t *used);
using RsmiProcesses = rsmi_status_t (*)(RsmiProcessInfo *procs, uint32_t *num_items);
using RsmiProcessGpus = rsmi_status_t (*)(uint32_t pid, uint32_t *devices, uint32_t *num_devices);
using RsmiProcessOnDevice = rsmi_status_t (*)(uint32_t pid, uint32_t device, RsmiProcessInfo *);

} // namespace flexslurm::rsmi
