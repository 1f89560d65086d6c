// SPDX-License-Identifier: GPL-2.0-or-later
// AMD compute-unit masking (HSA_CU_MASK): which compute units each slice of
// an AMD device owns, and the variable's text for a job's devices. Each slice
// owns a contiguous run of CUs, disjoint from every other slice's of the same
// device, so jobs sharing a device run on different CUs.
//
// HSA_CU_MASK syntax (ROCr): CU_Set[;CU_Set]*, CU_Set = GPU_list:CU_list,
// GPU indices as the job sees them (after ROCR_VISIBLE_DEVICES), CU_list a
// list of IDs and ID ranges ("0-25,52-77"). Listed CUs are enabled, the
// others disabled; unlisted GPUs keep all their CUs.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

// The CUs of slice `slice` (0-based, of `slices`) of a device with
// `compute_units` CUs: [slice*cu/slices, (slice+1)*cu/slices). Every CU goes to
// exactly one slice; slices differ by at most one CU. Empty when the
// arguments make no slice (slices < 1, slice outside, fewer CUs than slices).
struct CuRange {
	int first = 0;
	int last = 0; // inclusive
	bool operator==(const CuRange &) const = default;
};
std::vector<CuRange> slice_compute_units(int compute_units, int slices, int slice);

// One AMD device of a job: its number inside the job (ROCR_VISIBLE_DEVICES
// order), its CU count and slices, and the positions (0-based, on the device)
// of the slices the job holds.
struct CuShare {
	int ordinal = 0;
	int compute_units = 0;
	int slices = 0;
	std::vector<int> held; // slice positions on the device
};

// "0-25" style list of the CUs of `share`'s held slices (merged, ascending);
// empty if it makes none.
std::string cu_list(const CuShare &share);

// HSA_CU_MASK's value for a job's AMD devices ("0:0-25;1:52-103"); a device
// whose list is empty is left out (all its CUs stay enabled), and so an
// empty result means: do not set the variable.
std::string hsa_cu_mask(const std::vector<CuShare> &shares);

// Whether `list` is a CU list as cu_list() writes it: ascending IDs and
// ranges, comma-separated, at most 256 characters.
bool valid_cu_list(std::string_view list);

// One GPU of KFD's topology (/sys/class/kfd/kfd/topology/nodes/<n>/properties,
// "name value" lines): its render node minor (dri/renderD<minor>), PCI bus
// id (from domain and location_id) and compute units (simd_count /
// simd_per_cu, as ROCr counts them). nullopt for a CPU node (simd_count 0)
// or text without those fields.
struct KfdGpu {
	int render_minor = -1;  // -1: not given
	std::string pci_bus_id; // "0000:c1:00.0"; empty: not given
	int compute_units = 0;
	bool operator==(const KfdGpu &) const = default;
};
std::optional<KfdGpu> parse_kfd_properties(std::string_view text);

} // namespace flexslurm
