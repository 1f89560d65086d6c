// SPDX-License-Identifier: GPL-2.0-or-later
// Shared by the fuzz drivers (tests/fuzz/fuzz_*.cpp): a quiet log sink and
// an invariant check that aborts, so that libFuzzer (or the standalone loop
// of standalone_main.cpp) records the input as a crash.
#pragma once

#include "core/util/log.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace fuzz
{

inline void quiet(flexslurm::LogLevel, const char *) {}

// Once per process: the core's log lines would cost more than the parsing.
inline void init()
{
	static const bool done = [] {
		flexslurm::set_log_sink(quiet);
		return true;
	}();
	(void)done;
}

inline std::string_view text(const uint8_t *data, size_t size)
{
	return {reinterpret_cast<const char *>(data), size};
}

[[noreturn]] inline void failed(const char *what, const char *file, int line, const std::string &detail)
{
	std::fprintf(stderr, "%s:%d: invariant failed: %s\n%s\n", file, line, what, detail.c_str());
	std::abort();
}

// Splits the input at the first `sep` bytes: parts for drivers that need
// several strings (a layout, then an environment value...).
inline std::string_view next_part(std::string_view &rest, char sep = '\x01')
{
	const size_t at = rest.find(sep);
	const std::string_view part = rest.substr(0, at);
	rest = at == std::string_view::npos ? std::string_view() : rest.substr(at + 1);
	return part;
}

} // namespace fuzz

#define FUZZ_CHECK(cond, detail)                                                                             \
	do {                                                                                                 \
		if (!(cond))                                                                                 \
			fuzz::failed(#cond, __FILE__, __LINE__, (detail));                                   \
	} while (0)
