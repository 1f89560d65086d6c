// SPDX-License-Identifier: GPL-2.0-or-later
// Small text readers and writers shared by the core's line formats (slice
// layout, job limits, state files, reports, gres.conf files): bounded
// numbers, field splitting, and untrusted text made safe to show.
#pragma once

#include <algorithm>
#include <charconv>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

// How a number may be written: Any is what from_chars takes (a '-' for a
// signed type, leading zeros); Canonical is the wire format's one spelling
// (no leading zero, no "-0", no '+').
enum class Digits { Any, Canonical };

// The whole of `s` as a number within [lo, hi]; `out` is left alone otherwise.
template <class T>
bool parse_number(std::string_view s, T &out, T lo, T hi, Digits form = Digits::Any)
{
	if (form == Digits::Canonical) {
		const std::string_view d = !s.empty() && s[0] == '-' ? s.substr(1) : s;
		if (d.empty() || d[0] < '0' || d[0] > '9' || (d.size() > 1 && d[0] == '0') ||
		    (d.size() < s.size() && d == "0"))
			return false;
	}
	T v{};
	auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
	if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi)
		return false;
	out = v;
	return true;
}

// The whole of `s` as a number of type T (any value T holds).
template <class T>
bool parse_number(std::string_view s, T &out)
{
	return parse_number(s, out, std::numeric_limits<T>::lowest(), std::numeric_limits<T>::max());
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

// The non-empty runs of `line` between any of `separators`.
inline std::vector<std::string_view> words(std::string_view line, std::string_view separators = " \t\r")
{
	std::vector<std::string_view> out;
	size_t i = 0;
	while ((i = line.find_first_not_of(separators, i)) != std::string_view::npos) {
		const size_t end = std::min(line.find_first_of(separators, i), line.size());
		out.push_back(line.substr(i, end - i));
		i = end;
	}
	return out;
}

// `s` without its leading and trailing blanks (spaces, tabs, CR, LF).
inline std::string_view trim(std::string_view s)
{
	constexpr std::string_view blanks = " \t\r\n";
	const size_t first = s.find_first_not_of(blanks);
	if (first == std::string_view::npos)
		return {};
	return s.substr(first, s.find_last_not_of(blanks) - first + 1);
}

// ASCII lower case.
inline std::string lower(std::string_view s)
{
	std::string out(s);
	for (char &c : out)
		if (c >= 'A' && c <= 'Z')
			c = static_cast<char>(c - 'A' + 'a');
	return out;
}

// Equal but for ASCII case.
inline bool iequals(std::string_view a, std::string_view b)
{
	return a.size() == b.size() && lower(a) == lower(b);
}

// Where `name` stands (0-based) in the comma list `list`, compared without
// blanks and case (GresTypes=gpu, VSlice); -1 when it is not there.
inline int list_position(std::string_view list, std::string_view name)
{
	int i = 0;
	for (std::string_view item : split(list, ',')) {
		if (iequals(trim(item), name))
			return i;
		++i;
	}
	return -1;
}

// How `shown` writes untrusted text into a message.
struct ShowOptions {
	bool quote = false;                        // in "...", with '"' and '\\' escaped
	size_t max_chars = std::string_view::npos; // longer text is cut and ends in "..."
	bool keep_high_bytes = false;              // bytes >= 0x80 (UTF-8) left as they are
	char replacement = '\0';                   // if set, an unprintable byte becomes it, not \xNN
};

// Untrusted text in a log line or an error: control bytes (and, unless
// kept, bytes >= 0x7f) as \xNN, a newline as \n, so that it can neither
// break the one-line message nor forge another line.
inline std::string shown(std::string_view text, ShowOptions how = {})
{
	static constexpr char hex[] = "0123456789abcdef";
	std::string out = how.quote ? "\"" : "";
	for (size_t i = 0; i < text.size() && i < how.max_chars; ++i) {
		const auto c = static_cast<unsigned char>(text[i]);
		if (how.quote && (c == '"' || c == '\\')) {
			out += '\\';
			out += static_cast<char>(c);
		} else if (how.replacement && (c < 0x20 || c == 0x7f)) {
			out += how.replacement;
		} else if (c == '\n') {
			out += "\\n";
		} else if (c < 0x20 || c == 0x7f || (c > 0x7f && !how.keep_high_bytes)) {
			out += "\\x";
			out += hex[c >> 4];
			out += hex[c & 0xf];
		} else {
			out += static_cast<char>(c);
		}
	}
	if (text.size() > how.max_chars)
		out += "...";
	return how.quote ? out + "\"" : out;
}

// Untrusted text in a message, the usual way: quoted, escaped, cut after
// `max_chars` (a hostile value can neither forge log lines nor fill the log).
inline std::string quoted(std::string_view text, size_t max_chars = 32)
{
	return shown(text, {.quote = true, .max_chars = max_chars});
}

} // namespace flexslurm
