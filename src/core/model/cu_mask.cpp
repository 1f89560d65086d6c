// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/cu_mask.hpp"

#include <algorithm>
#include <cstdint>

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

} // namespace flexslurm
