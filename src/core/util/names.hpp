// SPDX-License-Identifier: GPL-2.0-or-later
// Enum <-> name tables: each enum that has names in a file, on the wire or
// in a message keeps one constexpr table of {value, name} pairs, and both
// directions are read from it (so a name cannot be written one way and
// parsed another).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace flexslurm
{

template <class E>
using NameTable = std::pair<E, std::string_view>;

// The name of `value` in `table`, or `unknown` when the table lacks it. (The
// same lookups serve a table of other codes, e.g. {Vendor, PCI vendor id}.)
template <class E, class T, size_t N>
constexpr T name_of(const std::pair<E, T> (&table)[N], std::type_identity_t<E> value,
                    std::type_identity_t<T> unknown = T("unknown")) noexcept
{
	for (const auto &[v, name] : table)
		if (v == value)
			return name;
	return unknown;
}

// The value named `name` in `table` (exact match), or nullopt.
template <class E, class T, size_t N>
constexpr std::optional<E> value_of(const std::pair<E, T> (&table)[N], std::type_identity_t<T> name) noexcept
{
	for (const auto &[v, n] : table)
		if (n == name)
			return v;
	return std::nullopt;
}

// "a, b or c": the names of `table`, for an error's list of allowed values.
template <class E, size_t N>
std::string names_allowed(const NameTable<E> (&table)[N])
{
	std::string out;
	for (size_t i = 0; i < N; ++i)
		out += std::string(i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(table[i].second);
	return out;
}

} // namespace flexslurm
