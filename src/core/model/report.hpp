// Idle reclaim, the wire part: what a node agent (a thread in slurmd) tells
// the listener in slurmctld every few seconds, the "hard stop" orders that
// come back, and the intake that decides which reports to believe.
//
// The text format is versioned, strict and bounded: one record a line, fields
// in a fixed order, a closing "end" line, nothing after it. Everything the
// sender could get wrong is refused by the parser rather than repaired, so a
// report that parses is one the reclaim logic may act on. Reports travel as
// Munge credentials: the payload limit is therefore about 3/4 of
// max_message_bytes (base64), which leaves room for well over 1000 job lines.
#pragma once

#include "core/model/lending.hpp"
#include "core/util/result.hpp"

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

constexpr size_t max_message_bytes = 64 * 1024;
constexpr int report_version = 1;
constexpr size_t max_report_devices = 256;
constexpr size_t max_jobs_per_device = 1024;
constexpr size_t max_stop_orders = 4096;
constexpr size_t max_node_name_chars = 64;

struct JobReport {
	uint32_t job = 0; // a Slurm job id, never 0
	double busy_percent = 0;
	uint64_t memory_mib = 0;
};

struct DeviceReport {
	int device = 0;          // index in the node's slice layout, 0..255
	double busy_percent = 0; // 0..100
	uint64_t memory_used_mib = 0;
	uint64_t lendable_memory_mib = 0; // device memory no slice reserved
	bool per_job = false;             // the backend could attribute use to jobs
	std::vector<JobReport> jobs;      // at most 1024 per device, only when per_job, no job twice
};

struct Report {
	std::string node;    // Slurm node name: [A-Za-z0-9._-], 1..64 chars
	uint64_t epoch = 0;  // the agent's start (unix seconds): orders replies/reports across agent restarts
	uint64_t seq = 0;    // strictly increasing within an epoch
	int64_t sent_at = 0; // unix seconds
	std::vector<DeviceReport> devices; // at most 256, no device twice
};

// Writes what it is given; parse_report() is where the rules are enforced.
std::string encode_report(const Report &r);
// Errors say the line and what is wrong with it ("line 7: busy \"140\" is not a
// percentage (0..100)"); untrusted text in them is escaped and shortened.
Result<Report> parse_report(std::string_view text);

// The longest delay a stop order may carry (parse_orders refuses more).
constexpr int64_t max_stop_delay_seconds = 2147483647;

struct StopOrder {
	uint32_t job = 0; // never 0, no job twice in one Orders
	int64_t in_seconds =
	        0; // SIGKILL that job's processes on the node in N s (0 = now), 0..max_stop_delay_seconds
};
struct Orders {
	std::string node;
	uint64_t seq = 0;             // echoes the report's
	std::vector<StopOrder> stops; // at most max_stop_orders
};
std::string encode_orders(const Orders &o);
Result<Orders> parse_orders(std::string_view text);

// An admin's request on the same channel (flexslurm-lending): the
// controller's lending status, or take a borrower's loans back now (with
// the usual grace). Only root and SlurmUser credentials are obeyed.
struct AdminRequest {
	enum class Kind { Status, Reclaim };
	Kind kind = Kind::Status;
	uint32_t job = 0; // Reclaim: the borrower
};
std::string encode_admin(const AdminRequest &r);
// nullopt: the text is not an admin request at all (a node report, say);
// an error value: it is one, malformed.
std::optional<Result<AdminRequest>> parse_admin(std::string_view text);

// True for a name made of [A-Za-z0-9._-], 1..64 characters.
bool valid_node_name(std::string_view name) noexcept;

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

// What the listener knows about the sender of one message.
struct Sealed {
	std::string payload;
	uid_t uid = 0;
	gid_t gid = 0;
	bool replayed = false;
};
// munge_open in production, fakes in tests.
using Opener = std::function<Result<Sealed>(std::string_view credential)>;

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
	struct PeerLog {
		Instant window_start{};
		int lines_in_window = 0;
		bool throttled = false;
		Instant last_line{};
		Instant last_drop{};
		uint64_t suppressed = 0; // drops not logged since last_line
	};

	std::optional<Report> take_checked(std::string_view frame, const std::string &peer, Instant now);
	std::nullopt_t drop(DropReason why, const std::string &peer, std::string_view node,
	                    const std::string &detail, Instant now);
	PeerLog &peer_log(const std::string &peer, Instant now); // with log_mutex_ held

	IntakeRules rules_;
	Opener opener_;
	std::mutex nodes_mutex_;
	std::map<std::string, NodeState, std::less<>> nodes_;
	std::mutex log_mutex_; // guards peers_ and overflow_peers_
	std::map<std::string, PeerLog, std::less<>> peers_;
	PeerLog overflow_peers_;
	std::atomic<uint64_t> accepted_{0};
	std::atomic<uint64_t> dropped_[drop_reason_count] = {};
};

} // namespace flexslurm
