// SPDX-License-Identifier: GPL-2.0-or-later
// Logging for the Slurm-free core. The core never prints by itself: each plugin
// injects Slurm's own log functions (error/info/debug) so messages land in
// slurmd/slurmctld logs with Slurm's prefixes and levels; unit tests inject a
// recorder. Without a sink, messages go to stderr.
#pragma once

#include <string>

namespace flexslurm
{

enum class LogLevel { Error, Info, Verbose, Debug };

using LogSink = void (*)(LogLevel level, const char *message);

void set_log_sink(LogSink sink) noexcept;
void log(LogLevel level, const std::string &message) noexcept;

inline void log_error(const std::string &m) noexcept
{
	log(LogLevel::Error, m);
}
inline void log_info(const std::string &m) noexcept
{
	log(LogLevel::Info, m);
}
inline void log_verbose(const std::string &m) noexcept
{
	log(LogLevel::Verbose, m);
}
inline void log_debug(const std::string &m) noexcept
{
	log(LogLevel::Debug, m);
}

} // namespace flexslurm
