// SPDX-License-Identifier: GPL-2.0-or-later
// The unit tests' one log sink: every line the core logs, with its level,
// kept for the test to read (from any thread). Check runs each test in its
// own process, so what a test records does not outlive it.
#pragma once

#include "core/util/log.hpp"

#include <mutex>
#include <string>
#include <utility>
#include <vector>

struct LoggedLine {
	flexslurm::LogLevel level;
	std::string message;
};

inline std::mutex logged_lines_mutex;
inline std::vector<LoggedLine> logged_lines_kept;

inline void record_log_line(flexslurm::LogLevel level, const char *message)
{
	std::lock_guard<std::mutex> lock(logged_lines_mutex);
	logged_lines_kept.push_back({level, message});
}

// Forgets what was recorded.
inline void clear_log()
{
	std::lock_guard<std::mutex> lock(logged_lines_mutex);
	logged_lines_kept.clear();
}

// From now on, records every line (and forgets what was recorded).
inline void record_log()
{
	clear_log();
	flexslurm::set_log_sink(record_log_line);
}

// Every line recorded, in order.
inline std::vector<LoggedLine> logged_lines()
{
	std::lock_guard<std::mutex> lock(logged_lines_mutex);
	return logged_lines_kept;
}

// The messages of `level` recorded, in order.
inline std::vector<std::string> logged(flexslurm::LogLevel level)
{
	std::vector<std::string> out;
	for (const LoggedLine &l : logged_lines())
		if (l.level == level)
			out.push_back(l.message);
	return out;
}

// The same, forgetting every line recorded so far.
inline std::vector<std::string> take_logged(flexslurm::LogLevel level)
{
	std::vector<LoggedLine> lines;
	{
		std::lock_guard<std::mutex> lock(logged_lines_mutex);
		lines = std::exchange(logged_lines_kept, {});
	}
	std::vector<std::string> out;
	for (const LoggedLine &l : lines)
		if (l.level == level)
			out.push_back(l.message);
	return out;
}
