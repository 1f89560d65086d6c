// SPDX-License-Identifier: GPL-2.0-or-later
// Idle reclaim, the wire part: what a node agent (a thread in slurmd) tells
// the listener in slurmctld every few seconds, the "hard stop" orders that
// come back. Which reports to believe is the intake's (report_intake.hpp);
// an admin's requests on the same port are admin_request.hpp's.
//
// The text format is versioned, strict and bounded: one record a line, fields
// in a fixed order, a closing "end" line, nothing after it. Everything the
// sender could get wrong is refused by the parser rather than repaired, so a
// report that parses is one the reclaim logic may act on. Reports travel as
// Munge credentials: the payload limit is therefore about 3/4 of
// max_message_bytes (base64), which leaves room for well over 1000 job lines.
#pragma once

#include "core/model/device_ids.hpp"
#include "core/util/result.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

constexpr size_t max_message_bytes = 64 * 1024;
// Reports: version 1, or 2 when they carry "ident" lines (the devices'
// identity, device_ids.hpp); a controller reads both, an older one only 1,
// so controllers are upgraded before node agents (as Slurm's slurmctld
// before slurmd). Orders: version 1.
constexpr int report_version = 1;
constexpr int report_version_identities = 2;
constexpr int orders_version = 1;
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
	// Version 2: "ident <device> uuid <uuid|-> pci <bus id|->" lines, at most
	// 256, no device twice, each value valid (device_ids.hpp) or "-". Any
	// device of the node's layout, sampled or not.
	std::vector<DeviceIdentity> identities;
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
// Who holds a slice unit of the node (its gres/vslice index; 0: nobody):
// the agent's per-slice metrics and DCGM job mapping files.
constexpr size_t max_slice_holders = 512;
constexpr int max_slice_unit = 16383; // 256 devices x 64 slices
struct SliceHolders {
	int unit = 0;          // 0..max_slice_unit, no unit twice
	uint32_t owner = 0;    // the job holding the slice (or its device whole)
	uint32_t borrower = 0; // the job holding its borrow unit
	bool operator==(const SliceHolders &) const = default;
};
struct Orders {
	std::string node;
	uint64_t seq = 0;             // echoes the report's
	std::vector<StopOrder> stops; // at most max_stop_orders
	// Units with an owner or a borrower, at most max_slice_holders
	// (after the stops: "slice <unit> owner <job|0> borrower <job|0>").
	std::vector<SliceHolders> slices;
};
std::string encode_orders(const Orders &o);
Result<Orders> parse_orders(std::string_view text);

// True for a name made of [A-Za-z0-9._-], 1..64 characters.
bool valid_node_name(std::string_view name) noexcept;

} // namespace flexslurm
