// SPDX-License-Identifier: GPL-2.0-or-later
// The scene the LoanBook tests share: a fake controller driving the book
// second by second (sync, then tick, every second; reports whenever an agent
// sends one), and helpers that describe its actions and orders.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "suites.hpp"

#include "node_records.hpp"

#include "core/service/agent.hpp"
#include "core/model/loan_book.hpp"
#include "core/util/log.hpp"
#include "core/model/report.hpp"
#include "core/model/slice_layout.hpp"
#include "core/io/telemetry.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace flexslurm;
using namespace std::chrono_literals;

namespace loan_book_scene
{

inline Instant at(long s)
{
	return Instant(Seconds(s));
}

constexpr Seconds telemetry_timeout{15};
constexpr Seconds hard_stop_after{5};

// Windows short enough to script second by second: idle for 10 s, busy
// again after 2 samples, grace 20 s, no new loan of a slice for 30 s after
// a reclaim.
inline LendingPolicy short_policy()
{
	LendingPolicy p;
	p.idle_window = 10s;
	p.busy_samples = 2;
	p.min_loan = 5s;
	p.max_loan = 3600s;
	p.grace = 20s;
	p.cooldown = 30s;
	p.never_lend_partitions = {"interactive"};
	return p;
}

// A device as the whole-device figures show it (the backend cannot tell jobs apart).
inline DeviceReport device_use(int device, double busy, uint64_t lendable_mib = 1024)
{
	DeviceReport d;
	d.device = device;
	d.busy_percent = busy;
	d.lendable_memory_mib = lendable_mib;
	return d;
}

// A device whose use the backend attributes to jobs.
inline DeviceReport per_job_use(int device, std::vector<JobReport> jobs, uint64_t lendable_mib = 1024)
{
	DeviceReport d = device_use(device, 0, lendable_mib);
	d.per_job = true;
	for (const JobReport &j : jobs)
		d.busy_percent = std::min(100.0, d.busy_percent + j.busy_percent);
	d.jobs = std::move(jobs);
	return d;
}

inline std::string describe(const TickActions &a)
{
	std::string out;
	auto part = [&](const std::string &p) { out += (out.empty() ? "" : "; ") + p; };
	if (!a.signal.empty()) {
		std::string p = "signal";
		for (const ReclaimOrder &o : a.signal)
			p += " " + std::to_string(o.borrower) + ":" + std::string(reason_name(o.reason));
		part(p);
	}
	if (!a.requeue.empty()) {
		std::string p = "requeue";
		for (uint32_t b : a.requeue)
			p += " " + std::to_string(b);
		part(p);
	}
	if (!a.requeue_ended.empty()) {
		std::string p = "requeue-ended";
		for (uint32_t b : a.requeue_ended)
			p += " " + std::to_string(b);
		part(p);
	}
	if (a.lendable_appeared)
		part("lendable");
	return out;
}

// "n1#7 200@25 201@0": node, seq, then job@seconds for each stop.
inline std::string describe(const Orders &o)
{
	std::string out = o.node + "#" + std::to_string(o.seq);
	for (const StopOrder &s : o.stops)
		out += " " + std::to_string(s.job) + "@" + std::to_string(s.in_seconds);
	return out;
}

inline std::string units_text(const std::vector<int> &units)
{
	std::string out;
	for (int u : units)
		out += (out.empty() ? "" : ",") + std::to_string(u);
	return out;
}

inline bool contains(const std::vector<std::string> &lines, const std::string &text)
{
	return std::any_of(lines.begin(), lines.end(),
	                   [&](const std::string &l) { return l.find(text) != std::string::npos; });
}

// slurmctld as far as the book sees it: Slurm's job records (the source of
// truth for allocations), the node agents' telemetry, and the book itself,
// driven the way the lending thread drives it.
class Controller
{
public:
	explicit Controller(const LendingPolicy &policy = short_policy())
	    : book(policy, telemetry_timeout, hard_stop_after)
	{
	}

	LoanBook book;
	std::map<std::string, NodeRecords> records;
	// The job records of borrowers under reclaim, as slurmctld hands them to
	// sync; unset: the book decides from the unit holdings alone.
	std::optional<std::map<uint32_t, BorrowerRecord>> jobs;
	// What each node's agent reports at time t; a node without one is silent.
	std::map<std::string, std::function<std::vector<DeviceReport>(long t)>> telemetry;

	void add_node(const std::string &node, std::vector<int> device_of_slice)
	{
		NodeRecords &nb = records[node];
		nb.node = node;
		nb.device_of_slice = std::move(device_of_slice);
	}
	void own(const std::string &node, int slice, uint32_t job, std::string partition = "gpu",
	         std::optional<Instant> end = std::nullopt)
	{
		records.at(node).owners[slice] = SliceOwner{job, std::move(partition), end};
	}
	void release(const std::string &node, int slice) { records.at(node).owners.erase(slice); }
	void hold(const std::string &node, int unit, uint32_t borrower, bool completing = false)
	{
		records.at(node).borrowers[unit] = BorrowHolding{borrower, completing};
	}
	void leave(const std::string &node, int unit) { records.at(node).borrowers.erase(unit); }
	// The scheduler started a borrower on a unit the book offered.
	void lend(long t, const std::string &node, int unit, uint32_t borrower)
	{
		book.lent(at(t), node, unit, borrower);
		hold(node, unit, borrower);
	}

	void sync(long t)
	{
		std::vector<NodeBooks> books;
		for (const auto &[name, nb] : records)
			books.push_back(nb.flat());
		book.sync(at(t), books, jobs ? &*jobs : nullptr);
		// The job records here are the nodes' owners and borrowers: the
		// totals of any other job go (the lending server asks Slurm).
		std::set<uint32_t> alive;
		for (const auto &[name, nb] : records) {
			for (const auto &[u, o] : nb.owners)
				alive.insert(o.job);
			for (const auto &[u, b] : nb.borrowers)
				alive.insert(b.job);
		}
		std::vector<uint32_t> gone;
		for (const auto &[job, totals] : book.totals())
			if (!alive.count(job))
				gone.push_back(job);
		book.forget_totals(gone);
	}
	void report(long t, const std::string &node, std::vector<DeviceReport> devices)
	{
		Report r;
		r.node = node;
		r.epoch = 1;
		r.seq = static_cast<uint64_t>(t) + 1;
		r.sent_at = t;
		r.devices = std::move(devices);
		book.report(at(t), r);
	}

	// Each second of [from, to]: sync, the reports due (every 5 s), tick.
	// Returns "t: actions" for each tick that asked for something.
	std::string run(long from, long to)
	{
		std::string out;
		for (long t = from; t <= to; ++t) {
			sync(t);
			if (t % 5 == 0)
				for (const auto &[node, devices_at] : telemetry)
					if (devices_at)
						report(t, node, devices_at(t));
			const std::string actions = describe(book.tick(at(t)));
			if (!actions.empty())
				out += std::to_string(t) + ": " + actions + "\n";
		}
		return out;
	}

	std::string lendable(const std::string &node, long t) const
	{
		return units_text(book.lendable_units(node, at(t)));
	}
	std::string orders(const std::string &node, long t, uint64_t seq = 1) const
	{
		return describe(book.orders_for(node, seq, at(t)));
	}
};

// One node "n1": slices 0-1 on device 0, 2-3 on device 1; job 100 owns
// slice 0 and is idle (per job) until the test says otherwise. At 10 s its
// slice has been idle for the window: lendable.
struct IdleLender {
	Controller c;
	double lender_busy = 0;

	explicit IdleLender(const LendingPolicy &policy = short_policy()) : c(policy)
	{
		c.add_node("n1", {0, 0, 1, 1});
		c.own("n1", 0, 100);
		c.telemetry["n1"] = [this](long) {
			return std::vector<DeviceReport>{per_job_use(0, {{100, lender_busy, 0}}),
			                                 device_use(1, 0)};
		};
		ck_assert_str(c.run(0, 9), "");
		ck_assert_str(c.lendable("n1", 9), "");
		ck_assert_str(c.run(10, 10), "10: lendable\n");
		ck_assert_str(c.lendable("n1", 10), "0");
	}
};

} // namespace loan_book_scene
