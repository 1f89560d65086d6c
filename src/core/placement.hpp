// Slice placement on one node: which devices a job may draw its slices
// from, and which units must look taken so that whole-device (gpu) and slice
// (vslice) jobs never share a device. select/flex turns the answer into
// masks over Slurm's GRES state before it lets select/cons_tres choose.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

enum class Placement {
	BestFit, // the device that leaves the least free: packs devices
	Spread,  // the device with the most free: spreads load
};

std::string_view placement_name(Placement p) noexcept;
std::optional<Placement> parse_placement(std::string_view s) noexcept;

// One accelerator of a node as slurmctld sees it.
struct DeviceView {
	std::string type;             // GRES type ("t4")
	int first_slice = 0;          // vslice unit index of its first slice
	int slices = 0;               // vslice units on it
	std::vector<int> used_slices; // vslice unit indices held by jobs
	int gpu_unit = -1;            // its gpu unit index, -1 if gpu is not configured for it
	bool whole_used = false;      // its gpu unit is held by a job

	int free_slices() const noexcept { return slices - static_cast<int>(used_slices.size()); }
};

// What a job asks of one node.
struct NodeRequest {
	int slices = 0;    // vslice units on this node; 0: none, or unknown per node (-1)
	std::string type;  // requested GRES type, empty: any
	bool gpus = false; // asks for whole devices
};

// Units to hide from select/cons_tres for one job on one node.
struct UnitMasks {
	std::vector<int> slices; // vslice unit indices
	std::vector<int> gpus;   // gpu unit indices
	bool operator==(const UnitMasks &) const = default;
};

// Devices (indices into `devices`) the job's slices should come from: as few
// devices as possible; whole free devices first when a job needs more than
// one device holds, the remainder by policy. nullopt: the node cannot hold it.
std::optional<std::vector<size_t>> choose_devices(const std::vector<DeviceView> &devices, int slices,
                                                  std::string_view type, Placement policy);

// Exclusivity (slices never on a device held whole, whole devices never with
// a slice in use) plus, when the job's per-node slice count is known, the
// placement choice: every free slice outside the chosen devices is hidden
// (devices that tie with a single-device choice stay open, for cons_tres to
// pick the one near the job's cores), and a job that also asks for whole
// devices cannot get the chosen ones.
UnitMasks masks_for(const std::vector<DeviceView> &devices, const NodeRequest &request, Placement policy);

} // namespace flexslurm
