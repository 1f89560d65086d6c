// SPDX-License-Identifier: GPL-2.0-or-later
// In-device limits of a job's slices: the values (from the slice layout and
// the slice counts Slurm's gres/vslice put in the job's prolog environment,
// never from variables a user sets), the codec of the root-owned per-job
// limits file that carries them to every step (core/io/job_state writes and
// reads it), and what each backend needs to apply them.
#pragma once

#include "core/model/cu_mask.hpp"
#include "core/model/job_env.hpp"
#include "core/model/slice_layout.hpp"
#include "core/model/spank_config.hpp"
#include "core/util/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

struct DeviceLimit {
	Vendor vendor = Vendor::Nvidia;
	int host_index = 0; // the device's vendor index on the node
	int ordinal = 0;    // its number inside the job (or step): from 0 per vendor
	int compute_percent = 0;
	uint64_t memory_mib = 0; // 0: unknown (no memory limit; logged as an error)
	LimitBackend backend = LimitBackend::None;
	// cu_mask: the CUs of the job's slices of the device ("0-25"); empty:
	// unknown (HSA_CU_MASK is not set for it).
	std::string cu_list;
	bool operator==(const DeviceLimit &) const = default;
	bool is(const DeviceSlices &d) const noexcept
	{
		return vendor == d.vendor && host_index == d.vendor_index;
	}
};

// The limits of the devices of a job's slice variables (`env`) that `layout`
// names: each its count's share. A device without a count, or with a count
// beyond its slices, gets none. Backends are left None.
std::vector<DeviceLimit> device_limits(const SliceLayout &layout, const SliceEnv &env);

// A job's limits on one node, written by the job prolog (root) and read by
// each of its steps: every step of the job shares the job's share.
struct JobLimits {
	uint32_t job = 0;
	uint32_t uid = 0;
	std::vector<DeviceLimit> devices;
	bool operator==(const JobLimits &) const = default;
};

// "flexslurm-limits 1" then "job <id> uid <uid>" then one line per device:
// "<vendor> <host index> <ordinal> <percent> <MiB or -> <backend>", and for
// cu_mask a seventh field, the CU list or "-".
// decode() checks every field and bound (at most 64 devices, 16 KiB).
constexpr size_t job_limits_max_bytes = 16384;
std::string encode_job_limits(const JobLimits &limits);
Result<JobLimits> decode_job_limits(std::string_view text);

// A job's limits on this node as its job prolog writes them: device_limits()
// of the slice variables Slurm's gres/vslice put in the prolog environment
// (`env`; users cannot set those) against the layout, or its borrow view
// for units of gres/vborrow (a slice's compute, only memory no slice
// reserved); each device gets its vendor's backend in `config`.
JobLimits job_limits(const SliceLayout &layout, const SliceEnv &env, uint32_t job, uint32_t uid,
                     const SpankConfig &config);

// A device's compute units among KFD's GPUs: matched by its render node
// minor (device path dri/renderD<minor>), else by PCI bus id. 0: not found.
int compute_units_of(const DeviceSlices &device, const std::vector<KfdGpu> &gpus);

// Fills the cu_list of `limits`' cu_mask devices: the CUs of the slices the
// job holds on each (`env`'s SLURM_VSLICE_POSITIONS) out of the device's CU
// count (`gpus`: KFD's topology on this node). A device whose count or
// positions are unknown keeps an empty list; one line per such device
// (naming it and why) is returned.
std::vector<std::string> assign_cu_masks(JobLimits &limits, const SliceLayout &layout, const SliceEnv &env,
                                         const std::vector<KfdGpu> &gpus, std::string_view gpus_problem);

// HSA_CU_MASK's value for a step's cu_mask devices (limits_for_step():
// numbered as the step sees them); empty: do not set it.
std::string hsa_cu_mask_of(const std::vector<DeviceLimit> &limits);

// The job's limits of `backend` on the devices a step holds
// (`step_devices`: as step_devices() gives them, by vendor then PCI order),
// renumbered from 0 per vendor as the step sees them.
std::vector<DeviceLimit> limits_for_step(const JobLimits &job, LimitBackend backend,
                                         const std::vector<const DeviceSlices *> &step_devices);

// The devices a step may use on this node: those its SLURM_VSLICE_DEVICES (`claimed.devices`) names
// that are also the job's allocation here (`job`: the limits file the job prolog wrote as root from
// Slurm's prolog environment), in `claimed`'s order. A user can set SLURM_VSLICE_DEVICES in a step
// (another GRES plugin that protects the environment keeps it): a claim only narrows the allocation,
// never widens it; with no allocation (`job` null: the job holds no slices here), nothing.
std::vector<const DeviceSlices *> step_devices(const SliceLayout &layout, const JobLimits *job,
                                               const SliceEnv &claimed);

// Where a job's state lives on a node, under the `job_dir` plugstack argument.
struct JobPaths {
	std::string dir;           // <job_dir>/<job>, root 0755
	std::string limits;        // root 0644: encode_job_limits()
	std::string preload_conf;  // root 0644: preload_config()
	std::string preload_cache; // the job user's 0600: the library's shared cache
	std::string mps_pipe;      // root 0755: the job's MPS control daemon
	std::string mps_log;       // root 0700
};
JobPaths job_paths(const std::string &job_dir, uint32_t job);
// The job whose JobPaths::mps_pipe `path` is ("<job_dir>/<job>/mps-pipe"), whatever the job_dir.
std::optional<uint32_t> job_of_mps_pipe(std::string_view path);

// The interception library's per-job configuration file, in HAMi-core's
// variable names (SoftMig reads the same keys from a root-owned file).
std::string preload_config(const std::vector<DeviceLimit> &limits, const std::string &cache);

// Variables for an interception library in the HAMi-core convention.
// `library` empty: the library is in /etc/ld.so.preload (LD_PRELOAD is left
// alone). `cache`: CUDA_DEVICE_MEMORY_SHARED_CACHE, private to the job.
std::vector<EnvVar> preload_environment(const std::vector<DeviceLimit> &limits, const std::string &library,
                                        std::string_view current_ld_preload, const std::string &cache);

// The MPS control commands, one per line, that set a job's limits as server
// defaults and then start the job user's server with them: per NVIDIA, a
// later set_default_* only affects the next server.
std::string mps_limit_commands(const std::vector<DeviceLimit> &limits, uint32_t uid);

} // namespace flexslurm
