// SPDX-License-Identifier: GPL-2.0-or-later
// Idle reclaim, the trust gate: which of the reports that reach the
// listener in slurmctld to believe. Each is checked in turn (size,
// credential, uid, parse, node, address, staleness, replay, flood) and
// every drop is counted and logged, the log throttled per peer.
#pragma once

#include "core/model/credential.hpp"
#include "core/model/report.hpp"
#include "core/util/throttle.hpp"
#include "core/util/time.hpp"

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

enum class DropReason {
	BadCredential,
	Replayed,
	WrongUid,
	Malformed,
	Oversized,
	UnknownNode,
	WrongAddress,
	Stale,
	Flood
};
constexpr size_t drop_reason_count = 9;
std::string_view drop_reason_name(DropReason r) noexcept; // "bad-credential", "replayed", ...

struct IntakeRules {
	std::vector<uid_t> allowed_uids; // root and SlurmUser; empty: nobody
	// Both callbacks are asked with a node name that passed valid_node_name(). An empty
	// function answers false. `peer` is the TCP peer address as numeric text
	// ("127.0.0.1", "::1"; IPv4-mapped IPv6 addresses arrive as plain IPv4).
	std::function<bool(const std::string &node)> node_known;
	// true if `peer` may speak for `node`; false also for unknown nodes (the intake
	// then says UnknownNode when `node_known` is false).
	std::function<bool(const std::string &node, const std::string &peer)> node_matches_peer;
	// Flood: more than flood_burst reports from one node within this window.
	Seconds min_interval{1};
	// sent_at older than now - max_age (or further than max_age in the future) is stale.
	Seconds max_age{60};
	// Bound on the per-node table (the node heard from least recently is forgotten).
	size_t max_nodes = 65536;
};

class ReportIntake
{
public:
	static constexpr int flood_burst = 3;

	ReportIntake(IntakeRules rules, Opener opener);

	// Runs on the listener thread, before any Slurm lock. `now` is wall-clock time
	// (unix seconds), since it is compared with the report's sent_at. Returns the
	// accepted report, or nullopt after logging ONE log_error line
	// ("reclaim: dropped report from <peer> (<node or ?>): <reason>: <detail>") and
	// counting the drop. Replays: Sealed::replayed (munge said so) OR (epoch, seq)
	// not newer than the last accepted one for that node. Order of checks: size,
	// credential, uid, parse, node known, address, staleness, replay, flood.
	// Safe to call from several threads (the per-node table has its own mutex, taken
	// only after parsing).
	std::optional<Report> take(std::string_view frame, const std::string &peer, Instant now);

	// Readable from any thread.
	uint64_t dropped(DropReason r) const noexcept;
	uint64_t accepted() const noexcept;

	// To avoid a log flood under attack: after 10 drop lines from one peer in a
	// minute, further drops from it are counted but logged once per minute with the
	// number suppressed; the peer is logged normally again once it sends fewer than
	// 10 bad messages in such a minute.
	static constexpr int log_burst = 10;
	static constexpr Seconds log_window{60};
	static constexpr size_t max_log_peers = 4096; // beyond this, new peers share one budget

private:
	struct NodeState {
		uint64_t epoch = 0;
		uint64_t seq = 0;
		Instant last_accepted{};
		Instant window_start{}; // flood accounting: reports accepted since
		int in_window = 0;
	};
	std::optional<Report> take_checked(std::string_view frame, const std::string &peer, Instant now);
	std::nullopt_t drop(DropReason why, const std::string &peer, std::string_view node,
	                    const std::string &detail, Instant now);

	IntakeRules rules_;
	Opener opener_;
	std::mutex nodes_mutex_;
	std::map<std::string, NodeState, std::less<>> nodes_;
	std::mutex log_mutex_;                                      // guards log_
	LogThrottle log_{log_window, log_burst, max_log_peers, ""}; // per peer; past the cap, one budget
	std::atomic<uint64_t> accepted_{0};
	std::atomic<uint64_t> dropped_[drop_reason_count] = {};
};

} // namespace flexslurm
