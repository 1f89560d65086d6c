// SPDX-License-Identifier: GPL-2.0-or-later
// The slice model: which GRES unit index is which slice of which device.
// Slice indices are the bit positions of Slurm's gres/vslice bitmap on the
// node; devices are laid out in inventory order, each taking a contiguous
// run of indices. select/flex derives the same map from gres/vslice's GRES
// topology (plugins/select_flex/gres_view.hpp, node_slices).
#pragma once

#include "core/model/config.hpp"
#include "core/model/devices.hpp"
#include "core/util/result.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

struct Inventory; // core/io/inventory.hpp

struct DeviceId {
	uint32_t major = 0;
	uint32_t minor = 0;
};

struct DeviceSlices {
	Vendor vendor = Vendor::Nvidia;
	int vendor_index = 0;
	std::string model;       // GRES type
	std::string device_path; // absolute path of the node a slice is bound to
	DeviceId device_id;
	std::vector<unsigned> cpus;
	int first_slice = 0;
	int slices = 0;
	int compute_percent = 0;         // per slice
	uint64_t slice_memory_bytes = 0; // per slice; 0: unknown
	// Per borrow unit (gres/vborrow): this device's memory that no slice
	// reserved, shared by its borrow units. Borrowers get compute, never
	// the memory promised to slices. 0: nothing to lend here.
	uint64_t borrow_memory_bytes = 0;
	std::string uuid;       // empty: unknown
	std::string pci_bus_id; // empty: unknown

	// The share of `count` of its slices: compute percent (at most 100) and memory in MiB.
	int share_percent(int count) const noexcept
	{
		return count * compute_percent < 100 ? count * compute_percent : 100;
	}
	uint64_t share_mib(int count) const noexcept
	{
		return slice_memory_bytes * static_cast<uint64_t>(count) >> 20;
	}
};

// Looks up a character device's major:minor; nullopt (and why) if absent.
// Defined with save() and load() in core/io/slice_layout_file.cpp; build()
// in core/io/slice_layout_build.cpp: the model itself makes no system calls.
using DeviceProbe = std::function<std::optional<DeviceId>(const std::string &path, std::string &why)>;
std::optional<DeviceId> stat_char_device(const std::string &path, std::string &why);

class SliceLayout
{
public:
	// Devices whose node is missing are left out with one log line each,
	// so that slurmctld sees fewer slices than configured and drains the
	// node with its usual reason instead of jobs failing later.
	static SliceLayout build(const IdentifiedDevices &devices, const Config &config,
	                         const DeviceProbe &probe = stat_char_device);
	// hwloc only (no gres.conf gpu records): every device it finds.
	static SliceLayout build(const Inventory &inventory, const Config &config,
	                         const std::string &device_dir, const DeviceProbe &probe = stat_char_device);

	const std::vector<DeviceSlices> &devices() const noexcept { return devices_; }
	// The same devices as borrowers see them: each unit's memory is the
	// unreserved share (borrow_memory_bytes). Built once, then cached.
	const SliceLayout &borrow_view() const;
	int total_slices() const noexcept;
	const DeviceSlices *device_of_slice(int index) const noexcept;
	// Slurm's gpu units on this node (SLURM_JOB_GPUS numbers) and their
	// device nodes; accelerator nodes that are not sliced (MIG, excluded).
	const std::vector<GpuUnit> &gpu_units() const noexcept { return gpu_units_; }
	const std::vector<std::string> &unsliced() const noexcept { return unsliced_; }
	// The sliced devices by vendor, then the vendor's PCI order: the order
	// in which a job's devices are listed and numbered (CUDA_DEVICE_ORDER=PCI_BUS_ID).
	std::vector<const DeviceSlices *> devices_in_pci_order() const;
	// The devices a list of vendor indices in that order names (SLURM_VSLICE_DEVICES), one per
	// index: nullptr where it names no later device. With `vendors` (SLURM_VSLICE_VENDORS, as
	// long as the indices), each index names that vendor's device only: without them, "0" on a
	// mixed node is the first vendor's device 0, whichever vendor the job holds.
	std::vector<const DeviceSlices *> devices_named(const std::vector<int> &vendor_indices,
	                                                const std::vector<Vendor> &vendors = {}) const;
	// Every accelerator device node of the node, sliced or not.
	std::vector<std::string> accelerator_paths() const;

	// A line-based text form that slurmd hands to slurmstepd, which does
	// not run discovery itself; deserialize() validates every field.
	std::string serialize() const;
	static Result<SliceLayout> deserialize(std::string_view text);

	// The same text in a file, written atomically (temporary + rename) so
	// that a reader never sees half a layout; load() refuses a file that
	// is not root's or that others may write.
	Result<bool> save(const std::string &path) const;
	static Result<SliceLayout> load(const std::string &path);

private:
	mutable std::shared_ptr<SliceLayout> borrow_view_;
	std::vector<DeviceSlices> devices_;
	std::vector<GpuUnit> gpu_units_;
	std::vector<std::string> unsliced_;
};

} // namespace flexslurm
