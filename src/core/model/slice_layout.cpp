// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/slice_layout.hpp"

#include "core/util/log.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

namespace flexslurm
{

int SliceLayout::total_slices() const noexcept
{
	return devices_.empty() ? 0 : devices_.back().first_slice + devices_.back().slices;
}

const DeviceSlices *SliceLayout::device_of_slice(int index) const noexcept
{
	for (const DeviceSlices &d : devices_)
		if (index >= d.first_slice && index < d.first_slice + d.slices)
			return &d;
	return nullptr;
}

namespace
{

// Version 2 adds UUID and PCI bus id per device, the gpu units and the
// accelerators that are not sliced; version 1 is still read.
constexpr std::string_view layout_magic = "flexslurm-layout 2";
constexpr std::string_view layout_magic_v1 = "flexslurm-layout 1";

bool printable_field(std::string_view s)
{
	for (char c : s)
		if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
			return false;
	return !s.empty();
}

} // namespace

std::vector<const DeviceSlices *> SliceLayout::devices_in_pci_order() const
{
	std::vector<const DeviceSlices *> order;
	for (const DeviceSlices &d : devices_)
		order.push_back(&d);
	std::stable_sort(order.begin(), order.end(), [](const DeviceSlices *a, const DeviceSlices *b) {
		return std::tie(a->vendor, a->vendor_index) < std::tie(b->vendor, b->vendor_index);
	});
	return order;
}

std::vector<const DeviceSlices *> SliceLayout::devices_named(const std::vector<int> &vendor_indices,
                                                             const std::vector<Vendor> &vendors) const
{
	const bool typed = vendors.size() == vendor_indices.size();
	// Scan forward, so that equal vendor indices of different vendors
	// resolve to the right one.
	const auto order = devices_in_pci_order();
	std::vector<const DeviceSlices *> named(vendor_indices.size(), nullptr);
	size_t from = 0;
	for (size_t n = 0; n < vendor_indices.size(); ++n) {
		for (size_t i = from; i < order.size(); ++i) {
			if (order[i]->vendor_index == vendor_indices[n] &&
			    (!typed || order[i]->vendor == vendors[n])) {
				named[n] = order[i];
				from = i + 1;
				break;
			}
		}
	}
	return named;
}

std::vector<std::string> SliceLayout::accelerator_paths() const
{
	std::vector<std::string> paths;
	auto add = [&](const std::string &p) {
		if (std::find(paths.begin(), paths.end(), p) == paths.end())
			paths.push_back(p);
	};
	for (const DeviceSlices &d : devices_)
		add(d.device_path);
	for (const GpuUnit &u : gpu_units_)
		add(u.path);
	for (const std::string &p : unsliced_)
		add(p);
	return paths;
}

const SliceLayout &SliceLayout::borrow_view() const
{
	if (!borrow_view_) {
		auto view = std::make_shared<SliceLayout>();
		view->devices_ = devices_;
		view->gpu_units_ = gpu_units_;
		view->unsliced_ = unsliced_;
		for (DeviceSlices &d : view->devices_)
			d.slice_memory_bytes = d.borrow_memory_bytes;
		borrow_view_ = std::move(view);
	}
	return *borrow_view_;
}

std::string SliceLayout::serialize() const
{
	std::ostringstream out;
	out << layout_magic << '\n';
	for (const DeviceSlices &d : devices_) {
		out << vendor_name(d.vendor) << '\t' << d.vendor_index << '\t' << d.model << '\t'
		    << d.device_path << '\t' << d.device_id.major << ':' << d.device_id.minor << '\t'
		    << d.first_slice << '\t' << d.slices << '\t' << d.compute_percent << '\t'
		    << d.slice_memory_bytes << '\t';
		for (size_t i = 0; i < d.cpus.size(); ++i)
			out << (i ? "," : "") << d.cpus[i];
		out << '\t' << d.borrow_memory_bytes << '\t' << (d.uuid.empty() ? "-" : d.uuid) << '\t'
		    << (d.pci_bus_id.empty() ? "-" : d.pci_bus_id) << '\n';
	}
	for (const GpuUnit &u : gpu_units_)
		out << "gpu\t" << u.unit << '\t' << u.path << '\t' << (u.mig ? 1 : 0) << '\t'
		    << (u.type.empty() ? "-" : u.type) << '\n';
	for (const std::string &p : unsliced_)
		out << "unsliced\t" << p << '\n';
	return out.str();
}

Result<SliceLayout> SliceLayout::deserialize(std::string_view text)
{
	auto bad = [](const std::string &why) {
		return Result<SliceLayout>::failure("slice layout: " + why);
	};
	constexpr size_t max_layout_bytes = 1 << 20;
	if (text.size() > max_layout_bytes)
		return bad("too large");
	auto lines = split(text, '\n');
	if (lines.empty() || (lines[0] != layout_magic && lines[0] != layout_magic_v1))
		return bad("unknown format");
	SliceLayout layout;
	int next = 0;
	std::set<std::pair<Vendor, int>> indices;
	for (size_t li = 1; li < lines.size(); ++li) {
		if (lines[li].empty() && li + 1 == lines.size())
			break;
		auto f = split(lines[li], '\t');
		const std::string where = "line " + std::to_string(li + 1);
		if (f[0] == "gpu") {
			GpuUnit u;
			int mig = 0;
			if (f.size() != 5 || !parse_number(f[1], u.unit, 0, 1 << 16) ||
			    !printable_field(f[2]) || f[2][0] != '/' || !parse_number(f[3], mig, 0, 1) ||
			    !printable_field(f[4]) || u.unit != static_cast<int>(layout.gpu_units_.size()))
				return bad(where + ": malformed gpu unit");
			u.path = f[2];
			u.mig = mig == 1;
			u.type = f[4] == "-" ? "" : f[4];
			layout.gpu_units_.push_back(std::move(u));
			continue;
		}
		if (f[0] == "unsliced") {
			if (f.size() != 2 || !printable_field(f[1]) || f[1][0] != '/')
				return bad(where + ": malformed unsliced device");
			layout.unsliced_.emplace_back(f[1]);
			continue;
		}
		// The 11th field (memory per borrow unit) is optional: 0; the
		// 12th and 13th (UUID, PCI bus id) come with version 2.
		if (f.size() != 10 && f.size() != 11 && f.size() != 13)
			return bad(where + ": expected 10, 11 or 13 fields");
		DeviceSlices d;
		if (f.size() == 13) {
			if (!printable_field(f[11]) || !printable_field(f[12]))
				return bad(where + ": malformed UUID or PCI bus id");
			d.uuid = f[11] == "-" ? "" : f[11];
			d.pci_bus_id = f[12] == "-" ? "" : f[12];
		}
		if (f.size() >= 11 &&
		    !parse_number(f[10], d.borrow_memory_bytes, uint64_t{0}, max_device_memory_bytes))
			return bad(where + ": malformed borrow memory");
		auto vendor = parse_vendor(f[0]);
		if (!vendor)
			return bad(where + ": unknown vendor");
		d.vendor = *vendor;
		auto majmin = split(f[4], ':');
		if (!parse_number(f[1], d.vendor_index, 0, max_vendor_index) || !printable_field(f[2]) ||
		    !printable_field(f[3]) || f[3][0] != '/' || majmin.size() != 2 ||
		    !parse_number(majmin[0], d.device_id.major, 0U, std::numeric_limits<uint32_t>::max()) ||
		    !parse_number(majmin[1], d.device_id.minor, 0U, std::numeric_limits<uint32_t>::max()) ||
		    !parse_number(f[5], d.first_slice, 0, 1 << 20) ||
		    !parse_number(f[6], d.slices, 1, max_slices_per_device) ||
		    !parse_number(f[7], d.compute_percent, 1, 100) ||
		    !parse_number(f[8], d.slice_memory_bytes, uint64_t{0}, max_device_memory_bytes))
			return bad(where + ": malformed field");
		if (d.first_slice != next)
			return bad(where + ": slice indices not contiguous");
		// Jobs name their devices by vendor index (SLURM_VSLICE_DEVICES).
		if (!indices.emplace(d.vendor, d.vendor_index).second)
			return bad(where + ": a second " + std::string(vendor_name(d.vendor)) + " device " +
			           std::to_string(d.vendor_index));
		d.model = f[2];
		d.device_path = f[3];
		if (!f[9].empty()) {
			for (auto c : split(f[9], ',')) {
				unsigned cpu = 0;
				if (!parse_number(c, cpu, 0U, 1U << 20))
					return bad(where + ": malformed cpu list");
				d.cpus.push_back(cpu);
			}
		}
		next += d.slices;
		layout.devices_.push_back(std::move(d));
	}
	return layout;
}

} // namespace flexslurm
