// SPDX-License-Identifier: GPL-2.0-or-later
// SliceLayout::deserialize: the layout file slurmd writes and slurmstepd
// (as root) reads. An accepted layout re-serializes to a fixed point, its
// slices are contiguous from 0, and every slice index maps to its device.
#include "fuzz_common.hpp"

#include "core/model/slice_layout.hpp"

#include <set>
#include <utility>

using namespace flexslurm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	const std::string_view in = fuzz::text(data, size);
	const Result<SliceLayout> l = SliceLayout::deserialize(in);
	if (!l)
		return 0;
	int next = 0;
	std::set<std::pair<Vendor, int>> indices;
	for (const DeviceSlices &d : l->devices()) {
		FUZZ_CHECK(indices.insert({d.vendor, d.vendor_index}).second, std::string(in));
		FUZZ_CHECK(d.first_slice == next && d.slices >= 1 && d.slices <= max_slices_per_device,
		           std::string(in));
		FUZZ_CHECK(d.compute_percent >= 1 && d.compute_percent <= 100, std::string(in));
		FUZZ_CHECK(!d.device_path.empty() && d.device_path[0] == '/', std::string(in));
		for (int s = d.first_slice; s < d.first_slice + d.slices; ++s)
			FUZZ_CHECK(l->device_of_slice(s) == &d, std::string(in));
		next += d.slices;
	}
	FUZZ_CHECK(l->total_slices() == next, std::string(in));
	FUZZ_CHECK(l->device_of_slice(-1) == nullptr && l->device_of_slice(next) == nullptr, std::string(in));
	const std::string once = l->serialize();
	const Result<SliceLayout> again = SliceLayout::deserialize(once);
	FUZZ_CHECK(again, once + again.error());
	FUZZ_CHECK(again->serialize() == once, once);
	FUZZ_CHECK(l->borrow_view().total_slices() == next, once);
	(void)l->devices_in_pci_order();
	(void)l->accelerator_paths();
	return 0;
}
