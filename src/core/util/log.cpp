// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/util/log.hpp"

#include <atomic>
#include <cstdio>

namespace flexslurm
{
namespace
{
std::atomic<LogSink> current_sink{nullptr};
} // namespace

void set_log_sink(LogSink sink) noexcept
{
	current_sink.store(sink);
}

void log(LogLevel level, const std::string &message) noexcept
{
	if (LogSink sink = current_sink.load()) {
		sink(level, message.c_str());
		return;
	}
	static constexpr const char *names[] = {"error", "info", "verbose", "debug"};
	std::fprintf(stderr, "flexslurm %s: %s\n", names[static_cast<int>(level)], message.c_str());
}

} // namespace flexslurm
