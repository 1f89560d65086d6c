// Small text readers shared by the core's line formats (slice layout, job
// limits, gres.conf files): bounded numbers and field splitting.
#pragma once

#include <charconv>
#include <string_view>
#include <vector>

namespace flexslurm
{

// The whole of `s` as a number within [lo, hi]; `out` is left alone otherwise.
template <class T>
bool parse_number(std::string_view s, T &out, T lo, T hi)
{
	T v{};
	auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
	if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi)
		return false;
	out = v;
	return true;
}

// "a,b,,c" -> {"a", "b", "", "c"}; "" -> {""}.
inline std::vector<std::string_view> split(std::string_view s, char sep)
{
	std::vector<std::string_view> out;
	size_t start = 0;
	for (;;) {
		const size_t pos = s.find(sep, start);
		out.push_back(s.substr(start,
		                       pos == std::string_view::npos ? std::string_view::npos : pos - start));
		if (pos == std::string_view::npos)
			return out;
		start = pos + 1;
	}
}

} // namespace flexslurm
