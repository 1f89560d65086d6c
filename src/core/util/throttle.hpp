// SPDX-License-Identifier: GPL-2.0-or-later
// Log throttling: what anyone can cause (a peer's bad reports, refused admin
// requests, a flood on the listener) or what stays broken (a telemetry file)
// must not fill a daemon's log. One throttle per kind of line, keyed by its
// source; the caller owns the lock and the clock.
#pragma once

#include "core/util/log.hpp"
#include "core/util/time.hpp"

#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace flexslurm
{

// Per key: up to `burst` lines a `window`; past that the key is throttled,
// its lines are counted, and one line a window is let through carrying the
// count. A key whose held-back lines fell below the burst is let through
// line by line again. At `max_keys` keys, keys quiet for two windows are
// forgotten, and new ones then share the budget of `overflow_key`.
class LogThrottle
{
public:
	struct Pass {
		std::string_view key; // the key the line was counted under (the overflow key if full)
		uint64_t held = 0;    // lines of this key held back before this one
		Seconds since{0};     // since the last line of this key let through
	};

	LogThrottle(Seconds window, int burst, size_t max_keys, std::string overflow_key = "other sources")
	    : window_(window), burst_(burst), max_keys_(max_keys), overflow_key_(std::move(overflow_key))
	{
	}

	// Whether a line for `key` at `now` is logged (and with what count).
	std::optional<Pass> admit(const std::string &key, Instant now)
	{
		auto &[name, st] = *entry(key, now);
		st.last_seen = now;
		if (!st.throttled) {
			if (now - st.window_start >= window_) {
				st.window_start = now;
				st.lines = 0;
			}
			if (st.lines < burst_) {
				++st.lines;
				st.last_line = now;
				return Pass{name, 0, Seconds(0)};
			}
			st.throttled = true;
			st.held = 1;
			return std::nullopt;
		}
		if (now - st.last_line < window_) {
			++st.held;
			return std::nullopt;
		}
		const Pass pass{name, st.held, now - st.last_line};
		if (st.held < static_cast<uint64_t>(burst_)) {
			st.throttled = false;
			st.window_start = now;
			st.lines = 1;
		}
		st.held = 0;
		st.last_line = now;
		return pass;
	}

	// Forgets the keys whose last line let through is a window old, calling
	// `report(key, held)` for each that held lines back since.
	template <class Report>
	void expire(Instant now, Report &&report)
	{
		for (auto it = keys_.begin(); it != keys_.end();) {
			if (now - it->second.last_line < window_) {
				++it;
				continue;
			}
			if (it->second.held)
				report(it->first, it->second.held);
			it = keys_.erase(it);
		}
	}

	size_t size() const noexcept { return keys_.size(); }

private:
	struct State {
		Instant window_start{};
		Instant last_line{};
		Instant last_seen{};
		int lines = 0;
		bool throttled = false;
		uint64_t held = 0;
	};
	using Map = std::map<std::string, State, std::less<>>;

	Map::iterator entry(const std::string &key, Instant now)
	{
		if (auto found = keys_.find(key); found != keys_.end())
			return found;
		if (keys_.size() >= max_keys_) {
			std::erase_if(keys_,
			              [&](const auto &e) { return now - e.second.last_seen > 2 * window_; });
			if (keys_.size() >= max_keys_)
				return keys_.try_emplace(overflow_key_, State{now, now, now}).first;
		}
		return keys_.try_emplace(key, State{now, now, now}).first;
	}

	Seconds window_;
	int burst_;
	size_t max_keys_;
	std::string overflow_key_;
	Map keys_;
};

// For a problem that stays (a telemetry file or device that stays broken,
// sampled every few seconds): its first report, or a changed one, is an
// error; repeats go to debug.
class ProblemLog
{
public:
	void report(const std::string &subject, const std::string &problem)
	{
		auto [it, inserted] = last_.try_emplace(subject, problem);
		if (inserted || it->second != problem) {
			it->second = problem;
			log_error(problem);
		} else {
			log_debug(problem);
		}
	}
	void clear(const std::string &subject) { last_.erase(subject); }

private:
	std::map<std::string, std::string> last_;
};

} // namespace flexslurm
