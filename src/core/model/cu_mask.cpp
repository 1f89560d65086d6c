// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/cu_mask.hpp"

#include "core/util/text.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace flexslurm
{

namespace
{

// Bounds that keep the arithmetic in int: no device has more CUs or slices.
constexpr int max_compute_units = 1 << 16;
constexpr int max_slices = 1 << 10;

} // namespace

std::vector<CuRange> slice_compute_units(int compute_units, int slices, int slice)
{
	if (slices < 1 || slices > max_slices || compute_units < slices ||
	    compute_units > max_compute_units || slice < 0 || slice >= slices)
		return {};
	const int first = slice * compute_units / slices;
	const int end = (slice + 1) * compute_units / slices;
	return {{first, end - 1}};
}

std::string cu_list(const CuShare &share)
{
	std::vector<CuRange> ranges;
	for (int s : share.held)
		for (const CuRange &r : slice_compute_units(share.compute_units, share.slices, s))
			ranges.push_back(r);
	std::sort(ranges.begin(), ranges.end(),
	          [](const CuRange &a, const CuRange &b) { return a.first < b.first; });
	std::vector<CuRange> merged;
	for (const CuRange &r : ranges) {
		if (!merged.empty() && r.first <= merged.back().last + 1)
			merged.back().last = std::max(merged.back().last, r.last);
		else
			merged.push_back(r);
	}
	std::string out;
	for (const CuRange &r : merged) {
		if (!out.empty())
			out += ',';
		out += std::to_string(r.first);
		if (r.last != r.first)
			out += '-' + std::to_string(r.last);
	}
	return out;
}

std::string hsa_cu_mask(const std::vector<CuShare> &shares)
{
	std::string out;
	for (const CuShare &s : shares) {
		const std::string list = cu_list(s);
		if (list.empty() || s.ordinal < 0)
			continue;
		if (!out.empty())
			out += ';';
		out += std::to_string(s.ordinal) + ':' + list;
	}
	return out;
}

bool valid_cu_list(std::string_view list)
{
	if (list.empty() || list.size() > 256)
		return false;
	int last = -1;
	for (std::string_view item : split(list, ',')) {
		const auto dash = item.find('-');
		int first = 0, end = 0;
		if (!parse_number(item.substr(0, dash), first, 0, max_compute_units - 1))
			return false;
		end = first;
		if (dash != std::string_view::npos &&
		    (!parse_number(item.substr(dash + 1), end, 0, max_compute_units - 1) || end <= first))
			return false;
		if (first <= last)
			return false;
		last = end;
	}
	return true;
}

std::optional<KfdGpu> parse_kfd_properties(std::string_view text)
{
	KfdGpu gpu;
	long long simd_count = -1, simd_per_cu = -1, location = -1, domain = -1, minor = -1;
	size_t lines = 0;
	for (std::string_view line : split(text, '\n')) {
		if (++lines > 200)
			break;
		const auto f = split(trim(line), ' ');
		if (f.size() != 2)
			continue;
		long long *field = f[0] == "simd_count"         ? &simd_count
		                   : f[0] == "simd_per_cu"      ? &simd_per_cu
		                   : f[0] == "location_id"      ? &location
		                   : f[0] == "domain"           ? &domain
		                   : f[0] == "drm_render_minor" ? &minor
		                                                : nullptr;
		if (field && !parse_number(f[1], *field, 0LL, (1LL << 32) - 1))
			*field = -1;
	}
	if (simd_count <= 0 || simd_per_cu <= 0 || simd_count / simd_per_cu > max_compute_units)
		return std::nullopt;
	gpu.compute_units = static_cast<int>(simd_count / simd_per_cu);
	if (gpu.compute_units < 1)
		return std::nullopt;
	if (minor > 0 && minor < (1 << 20))
		gpu.render_minor = static_cast<int>(minor);
	if (location >= 0 && location <= 0xffff) {
		char id[32];
		std::snprintf(id, sizeof id, "%04llx:%02llx:%02llx.%01llx", domain > 0 ? domain & 0xffff : 0,
		              location >> 8, (location >> 3) & 0x1f, location & 0x7);
		gpu.pci_bus_id = id;
	}
	return gpu;
}

} // namespace flexslurm
