// The controller's ledger of idle reclaim (LoanBook) and its node side
// (NodeAgent), driven by a fake clock and fake Munge, network and killer:
// scripted scenarios second by second, as slurmctld's lending thread calls
// the book (sync, then tick, every second; reports whenever an agent sends
// one), then a long random sequence checked against the invariants the
// reclaim design rests on.
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

namespace
{

Instant at(long s)
{
	return Instant(Seconds(s));
}

constexpr Seconds telemetry_timeout{15};
constexpr Seconds hard_stop_after{5};

// Windows short enough to script second by second: idle for 10 s, busy
// again after 2 samples, grace 20 s, no new loan of a slice for 30 s after
// a reclaim.
LendingPolicy short_policy()
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
DeviceReport device_use(int device, double busy, uint64_t lendable_mib = 1024)
{
	DeviceReport d;
	d.device = device;
	d.busy_percent = busy;
	d.lendable_memory_mib = lendable_mib;
	return d;
}

// A device whose use the backend attributes to jobs.
DeviceReport per_job_use(int device, std::vector<JobReport> jobs, uint64_t lendable_mib = 1024)
{
	DeviceReport d = device_use(device, 0, lendable_mib);
	d.per_job = true;
	for (const JobReport &j : jobs)
		d.busy_percent = std::min(100.0, d.busy_percent + j.busy_percent);
	d.jobs = std::move(jobs);
	return d;
}

std::string describe(const TickActions &a)
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
std::string describe(const Orders &o)
{
	std::string out = o.node + "#" + std::to_string(o.seq);
	for (const StopOrder &s : o.stops)
		out += " " + std::to_string(s.job) + "@" + std::to_string(s.in_seconds);
	return out;
}

std::string units_text(const std::vector<int> &units)
{
	std::string out;
	for (int u : units)
		out += (out.empty() ? "" : ",") + std::to_string(u);
	return out;
}

bool contains(const std::vector<std::string> &lines, const std::string &text)
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

} // namespace

// --- LoanBook: what may be lent ----------------------------------------------------

START_TEST(lendable_only_when_idle_long_enough_with_memory_and_fresh_reports)
{
	Controller c;
	// Slices 0-2 on device 0, 3-5 on device 1.
	c.add_node("n1", {0, 0, 0, 1, 1, 1});
	c.own("n1", 0, 100);                  // idle
	c.own("n1", 1, 102);                  // busy
	c.own("n1", 2, 104, "gpu", at(14));   // idle, but ends within min_loan of the window
	c.own("n1", 3, 101, "interactive");   // idle, in a partition that never lends
	c.own("n1", 5, 105, "gpu", at(1000)); // idle, ends much later
	bool device0_memory = true;           // slice 4: nobody's
	c.telemetry["n1"] = [&](long) {
		return std::vector<DeviceReport>{
		        per_job_use(0, {{100, 1, 0}, {102, 60, 0}, {104, 0, 0}}, device0_memory ? 2048 : 0),
		        per_job_use(1, {{101, 0, 0}, {105, 2, 0}})};
	};
	ck_assert_str(c.run(0, 9), "");
	ck_assert_str(c.lendable("n1", 9), "");
	ck_assert_str(c.run(10, 11), "10: lendable\n"); // the scheduler runs once, not every tick
	ck_assert_str(c.lendable("n1", 11), "0,5");

	// No memory left on device 0 for a borrower: not lendable there.
	device0_memory = false;
	ck_assert_str(c.run(12, 15), "");
	ck_assert_str(c.lendable("n1", 15), "5");
	device0_memory = true;
	ck_assert_str(c.run(16, 20), "20: lendable\n");
	ck_assert_str(c.lendable("n1", 20), "0,5");

	// The agent falls silent: lendable while its last report is at most
	// telemetry_timeout old, not after, even before a tick notices.
	c.telemetry.erase("n1");
	ck_assert_str(c.run(21, 35), "");
	ck_assert_str(c.lendable("n1", 35), "0,5");
	ck_assert_str(c.lendable("n1", 36), "");
	ck_assert_str(c.run(36, 36), "");
	// Heard again: the tick at 36 counted the silence as use, so the idle
	// window starts over.
	c.telemetry["n1"] = [&](long) {
		return std::vector<DeviceReport>{per_job_use(0, {{100, 0, 0}, {102, 60, 0}}),
		                                 per_job_use(1, {{105, 0, 0}})};
	};
	ck_assert_str(c.run(37, 45), "");
	ck_assert_str(c.lendable("n1", 45), "");
	ck_assert_str(c.run(46, 50), "50: lendable\n");
	ck_assert_str(c.lendable("n1", 50), "0,5");
	ck_assert_str(c.lendable("n2", 50), ""); // a node the records do not show
}
END_TEST

START_TEST(per_job_telemetry_tells_the_borrower_from_the_lender)
{
	// The backend attributes use: the borrower's 90 % is not the lender waking up.
	IdleLender attributed;
	Controller &a = attributed.c;
	a.lend(10, "n1", 0, 200);
	a.telemetry["n1"] = [](long) {
		return std::vector<DeviceReport>{per_job_use(0, {{100, 2, 0}, {200, 90, 0}}),
		                                 device_use(1, 0)};
	};
	ck_assert_str(a.run(11, 60), "");
	ck_assert(a.book.status(at(60)).find("n1 0 0 lent JobId=100 JobId=200 50s\n") != std::string::npos);
	// ... but the lender's own 30 % is.
	a.telemetry["n1"] = [](long) {
		return std::vector<DeviceReport>{per_job_use(0, {{100, 30, 0}, {200, 90, 0}}),
		                                 device_use(1, 0)};
	};
	ck_assert_str(a.run(61, 70), "70: signal 200:lender-busy\n");

	// Whole-device figures only: the device's use is all there is to go on.
	IdleLender whole_device;
	Controller &w = whole_device.c;
	w.lend(10, "n1", 0, 200);
	w.telemetry["n1"] = [](long) {
		return std::vector<DeviceReport>{device_use(0, 90), device_use(1, 0)};
	};
	ck_assert_str(w.run(11, 20), "20: signal 200:lender-busy\n");

	// Before any loan, another job's use of the device keeps the slice from
	// looking idle without attribution, and does not with it.
	for (const bool per_job : {false, true}) {
		Controller c;
		c.add_node("n1", {0, 0});
		c.own("n1", 0, 100);
		c.own("n1", 1, 101);
		c.telemetry["n1"] = [per_job](long) {
			return std::vector<DeviceReport>{per_job ? per_job_use(0, {{100, 0, 0}, {101, 70, 0}})
			                                         : device_use(0, 70)};
		};
		ck_assert_str(c.run(0, 10), per_job ? "10: lendable\n" : "");
		ck_assert_str(c.lendable("n1", 10), per_job ? "0" : "");
	}
}
END_TEST

// --- LoanBook: a loan and its reclaim ----------------------------------------------

START_TEST(reclaim_when_the_lender_is_busy_again)
{
	IdleLender lender;
	Controller &c = lender.c;
	LoanBook &book = c.book;
	book.take_events();
	c.lend(10, "n1", 0, 200);
	ck_assert_str(c.lendable("n1", 10), "");
	auto events = book.take_events();
	ck_assert_uint_eq(events.size(), 1);
	ck_assert_str(events[0], "n1 slice 0 of JobId=100 lent to JobId=200");
	// The records show the borrower on the unit: the loan goes on, and is
	// no "loan found" either.
	ck_assert_str(c.run(11, 14), "");
	ck_assert(book.take_events().empty());
	ck_assert(book.status(at(14)).find("n1 0 0 lent JobId=100 JobId=200 4s\n") != std::string::npos);

	// Busy for two samples (15 and 20): one signal, at once.
	lender.lender_busy = 80;
	ck_assert_str(c.run(15, 20), "20: signal 200:lender-busy\n");
	ck_assert_uint_eq(book.active_reclaims(), 1);
	book.signalled(200, at(20));
	events = book.take_events();
	ck_assert_uint_eq(events.size(), 1);
	ck_assert_str(events[0], "reclaim JobId=200 from n1 slice 0 of JobId=100: lender-busy, grace 20 s");
	ck_assert(book.status(at(25)).find("JobId=200 lender-busy started 5s ago, deadline in 15s\n") !=
	          std::string::npos);
	// The node's hard stop: grace + hard_stop_after from the signal, counting down.
	ck_assert_str(c.orders("n1", 20, 7), "n1#7 200@25");
	ck_assert_str(c.orders("n1", 30), "n1#1 200@15");
	ck_assert_str(c.orders("n2", 30), "n2#1"); // nothing of it runs there

	// The grace: no second signal, no requeue before the deadline, then a
	// requeue every tick until it is done.
	ck_assert_str(c.run(21, 39), "");
	ck_assert_str(c.run(40, 41), "40: requeue 200\n41: requeue 200\n");
	// Requeued: Slurm's records show it completing from then on. Still a
	// reclaim (its processes may linger), the stop still counts down to 0.
	book.requeued(200, at(41));
	c.hold("n1", 0, 200, true);
	events = book.take_events();
	ck_assert_uint_eq(events.size(), 1);
	ck_assert_str(events[0], "reclaim JobId=200: requeued 21 s after the signal");
	ck_assert_str(c.run(42, 45), "");
	ck_assert_uint_eq(book.active_reclaims(), 1);
	ck_assert_str(c.orders("n1", 44), "n1#1 200@1");
	ck_assert_str(c.orders("n1", 45), "n1#1 200@0");
	ck_assert_str(c.orders("n1", 90), "n1#1 200@0");

	// Gone from the records: done, with its latencies, and no order left.
	c.leave("n1", 0);
	ck_assert_str(c.run(46, 46), "");
	ck_assert_uint_eq(book.active_reclaims(), 0);
	events = book.take_events();
	ck_assert_uint_eq(events.size(), 1);
	ck_assert_str(
	        events[0],
	        "reclaim JobId=200 done (lender-busy): signal 0 s, requeue 21 s, device free 26 s, grace 20 s");
	ck_assert_str(c.orders("n1", 46), "n1#1");
	ck_assert(book.status(at(46)).find("n1 0 0 owned-busy JobId=100 - -\n") != std::string::npos);

	// Idle again from 50, for the window at 60, but the cooldown holds the
	// slice back until 46 + 30.
	lender.lender_busy = 0;
	ck_assert_str(c.run(47, 75), "");
	ck_assert_str(c.lendable("n1", 75), "");
	ck_assert_str(c.run(76, 76), "76: lendable\n");
	ck_assert_str(c.lendable("n1", 76), "0");
	ck_assert(book.status(at(76)).find("HISTORY\n") != std::string::npos);
	ck_assert(book.status(at(76)).find("device free 26 s") != std::string::npos);
}
END_TEST

START_TEST(other_reasons_to_take_a_loan_back)
{
	{ // The lender ends: the slice goes back to the pool once the borrower left.
		IdleLender lender;
		Controller &c = lender.c;
		c.lend(10, "n1", 0, 200);
		ck_assert_str(c.run(11, 14), "");
		c.release("n1", 0);
		ck_assert_str(c.run(15, 15), "15: signal 200:lender-ended\n");
		ck_assert(c.book.status(at(15)).find("n1 0 0 reclaiming JobId=100 JobId=200 5s\n") !=
		          std::string::npos);
		c.leave("n1", 0);
		ck_assert_str(c.run(16, 16), "");
		ck_assert_uint_eq(c.book.active_reclaims(), 0);
		ck_assert(c.book.status(at(16)).find("n1 0 ") == std::string::npos); // free
		c.own("n1", 0, 101);
		ck_assert_str(c.run(17, 17), "");
		ck_assert(c.book.status(at(17)).find("n1 0 0 owned-busy JobId=101 - -\n") !=
		          std::string::npos);
	}
	{ // max_loan
		LendingPolicy p = short_policy();
		p.max_loan = 60s;
		IdleLender lender(p);
		lender.c.lend(10, "n1", 0, 200);
		ck_assert_str(lender.c.run(11, 69), "");
		ck_assert_str(lender.c.run(70, 70), "70: signal 200:max-loan\n");
	}
	{ // The admin: only a job that borrows something.
		IdleLender lender;
		lender.c.lend(10, "n1", 0, 200);
		ck_assert(lender.c.book.admin_reclaim(at(12), 200));
		ck_assert(!lender.c.book.admin_reclaim(at(12), 999));
		ck_assert(!lender.c.book.admin_reclaim(at(12), 100)); // the lender borrows nothing
		ck_assert(!lender.c.book.admin_reclaim(at(12), 0));
		ck_assert_str(lender.c.run(12, 12), "12: signal 200:admin\n");
		ck_assert(
		        lender.c.book.admin_reclaim(at(13), 200)); // still borrowing: true, no second signal
		ck_assert_str(lender.c.run(13, 13), "");
	}
}
END_TEST

START_TEST(telemetry_lost_takes_loans_back)
{
	{ // A silent node: its loans go back, nothing there is lendable; other nodes go on.
		IdleLender lender;
		Controller &c = lender.c;
		c.add_node("n2", {0});
		c.own("n1", 1, 101);
		c.own("n2", 0, 300);
		c.telemetry["n1"] = [](long) {
			return std::vector<DeviceReport>{per_job_use(0, {{100, 0, 0}, {101, 0, 0}}),
			                                 device_use(1, 0)};
		};
		c.telemetry["n2"] = [](long) { return std::vector<DeviceReport>{device_use(0, 0)}; };
		ck_assert_str(c.run(11, 30), "25: lendable\n"); // idle since the reports at 15
		c.lend(30, "n1", 0, 200);
		ck_assert_str(c.lendable("n1", 30), "1");
		ck_assert_str(c.lendable("n2", 30), "0");
		c.telemetry.erase("n1"); // last heard at 30
		ck_assert_str(c.run(31, 45), "");
		ck_assert_str(c.lendable("n1", 45), "1");
		ck_assert_str(c.run(46, 46), "46: signal 200:telemetry-lost\n");
		ck_assert_str(c.lendable("n1", 46), "");
		ck_assert_str(c.lendable("n2", 46), "0");
		ck_assert(c.book.status(at(46)).find("n1 1 0 owned-busy JobId=101 - -\n") !=
		          std::string::npos);
	}
	{ // A device missing from a report counts as busy: only its loans go back.
		Controller c;
		c.add_node("n1", {0, 0, 1, 1});
		c.own("n1", 0, 100);
		c.own("n1", 2, 100);
		bool device1_readable = true;
		c.telemetry["n1"] = [&](long) {
			std::vector<DeviceReport> d{device_use(0, 0)};
			if (device1_readable)
				d.push_back(device_use(1, 0));
			return d;
		};
		ck_assert_str(c.run(0, 10), "10: lendable\n");
		ck_assert_str(c.lendable("n1", 10), "0,2");
		c.lend(10, "n1", 0, 200);
		c.lend(10, "n1", 2, 201);
		device1_readable = false;
		ck_assert_str(c.run(11, 20), "15: signal 201:telemetry-lost\n");
		ck_assert(c.book.status(at(20)).find("n1 0 0 lent JobId=100 JobId=200 10s\n") !=
		          std::string::npos);
		ck_assert(c.book.status(at(20)).find("n1 2 1 reclaiming JobId=100 JobId=201 10s\n") !=
		          std::string::npos);
	}
}
END_TEST

START_TEST(borrowers_the_records_show)
{
	{ // A borrower that leaves on its own (it requeued itself, or ended) is
	  // not requeued again, but stays a reclaim until its processes are gone.
		IdleLender lender;
		Controller &c = lender.c;
		c.lend(10, "n1", 0, 200);
		lender.lender_busy = 50;
		ck_assert_str(c.run(11, 20), "20: signal 200:lender-busy\n");
		c.hold("n1", 0, 200, true);
		ck_assert_str(c.run(21, 60), "");
		ck_assert_uint_eq(c.book.active_reclaims(), 1);
		ck_assert_str(c.orders("n1", 60), "n1#1 200@0");
		c.leave("n1", 0);
		ck_assert_str(c.run(61, 61), "");
		ck_assert_uint_eq(c.book.active_reclaims(), 0);
		ck_assert(contains(
		        c.book.take_events(),
		        "reclaim JobId=200 done (lender-busy): signal - s, requeue 1 s, device free 41 s"));
	}
	{ // A loan the book never made (placed before a restart): adopted once,
	  // never offered again while it lasts.
		IdleLender lender;
		Controller &c = lender.c;
		c.own("n1", 1, 101);
		c.telemetry["n1"] = [](long) {
			return std::vector<DeviceReport>{per_job_use(0, {{100, 0, 0}, {101, 0, 0}}),
			                                 device_use(1, 0)};
		};
		ck_assert_str(c.run(11, 25), "25: lendable\n");
		ck_assert_str(c.lendable("n1", 25), "0,1");
		c.book.take_events();
		c.hold("n1", 1, 300);
		ck_assert_str(c.run(26, 26), "");
		auto events = c.book.take_events();
		ck_assert_uint_eq(events.size(), 1);
		ck_assert_str(events[0], "loan found in the job records: n1 slice 1 lent to JobId=300");
		ck_assert_str(c.lendable("n1", 26), "0");
		ck_assert_str(c.run(27, 45), "");
		ck_assert(c.book.take_events().empty()); // found once
		ck_assert_str(c.lendable("n1", 45), "0");
		ck_assert(c.book.status(at(45)).find("n1 1 0 lent JobId=101 JobId=300 19s\n") !=
		          std::string::npos);
		// Counted from the tick before it was found (it ran already): 20 s.
		ck_assert_uint_eq(c.book.totals().at(300).borrowed_slice_seconds, 20);
		// The scheduler's own record of it, late: still one loan.
		c.book.lent(at(45), "n1", 1, 300);
		ck_assert_str(c.run(46, 47), "");
		ck_assert_uint_eq(c.book.totals().at(300).borrowed_slice_seconds, 22);
		ck_assert_str(c.lendable("n1", 47), "0");
	}
}
END_TEST

START_TEST(totals_grow_while_lent)
{
	IdleLender lender;
	Controller &c = lender.c;
	c.own("n1", 1, 100); // the lender holds both slices of device 0
	c.telemetry["n1"] = [](long) {
		return std::vector<DeviceReport>{per_job_use(0, {{100, 0, 0}}), device_use(1, 0)};
	};
	ck_assert_str(c.run(11, 25), "25: lendable\n"); // slice 1: idle since the report at 15
	c.lend(25, "n1", 0, 200);
	c.lend(25, "n1", 1, 200);
	ck_assert(c.book.totals().count(200) == 0 || c.book.totals().at(200).borrowed_slice_seconds == 0);
	ck_assert_str(c.run(26, 35), "");
	ck_assert_uint_eq(c.book.totals().at(100).lent_slice_seconds, 20); // 2 slices x 10 s
	ck_assert_uint_eq(c.book.totals().at(100).borrowed_slice_seconds, 0);
	ck_assert_uint_eq(c.book.totals().at(200).borrowed_slice_seconds, 20);
	ck_assert_uint_eq(c.book.totals().at(200).lent_slice_seconds, 0);
	ck_assert_str(c.run(36, 40), "");
	ck_assert_uint_eq(c.book.totals().at(100).lent_slice_seconds, 30);
	ck_assert_uint_eq(c.book.totals().at(200).borrowed_slice_seconds, 30);
	// The borrower ends: the lender's total stays, the borrower's goes with it
	// (the plugin has written it into the job record every tick).
	c.leave("n1", 0);
	c.leave("n1", 1);
	ck_assert_str(c.run(41, 50), "41: lendable\n"); // left on its own: still idle, no cooldown
	ck_assert_uint_eq(c.book.totals().at(100).lent_slice_seconds, 30);
	ck_assert(c.book.totals().count(200) == 0);
}
END_TEST

// --- LoanBook: the state file ------------------------------------------------------

namespace
{

// n1: job 100 lends slice 0 to 200 (reclaimed at 20, deadline 40, signalled)
// and slice 2 to 201 (still lent); the scene at 25.
struct MidReclaim {
	Controller c;
	double busy0 = 0;

	MidReclaim()
	{
		c.add_node("n1", {0, 0, 1, 1});
		c.own("n1", 0, 100);
		c.own("n1", 2, 100);
		c.telemetry["n1"] = [this](long) {
			return std::vector<DeviceReport>{device_use(0, busy0), device_use(1, 0)};
		};
		ck_assert_str(c.run(0, 10), "10: lendable\n");
		c.lend(10, "n1", 0, 200);
		c.lend(10, "n1", 2, 201);
		busy0 = 70;
		ck_assert_str(c.run(11, 25), "20: signal 200:lender-busy\n");
		c.book.signalled(200, at(20));
	}
};

} // namespace

START_TEST(state_file_round_trip_continues_loans_and_reclaims)
{
	MidReclaim before;
	const std::string text = before.c.book.serialize(at(25));
	ck_assert(text.rfind("flexslurm-lending 1\nsaved 25\n", 0) == 0);

	Controller after; // a restarted controller: same records, same agents, new book
	after.records = before.c.records;
	after.telemetry["n1"] = before.c.telemetry["n1"];
	std::string why;
	ck_assert_msg(after.book.restore(text, why), "%s", why.c_str());
	ck_assert_str(after.book.serialize(at(25)), text);
	ck_assert_uint_eq(after.book.active_reclaims(), 1);
	ck_assert_uint_eq(after.book.totals().at(100).lent_slice_seconds, 30);
	ck_assert_uint_eq(after.book.totals().at(201).borrowed_slice_seconds, 15);
	ck_assert_str(after.orders("n1", 25), "n1#1 200@20");

	// The reclaim keeps its deadline (no second signal), the loan of slice 2
	// goes on, and the records hold no loan the book does not know.
	ck_assert_str(after.run(26, 39), "");
	ck_assert_str(after.orders("n1", 30), "n1#1 200@15");
	ck_assert(after.book.take_events().empty());
	ck_assert_str(after.run(40, 40), "40: requeue 200\n");
	after.book.requeued(200, at(40));
	after.hold("n1", 0, 200, true);
	ck_assert(after.book.status(at(40)).find("n1 2 1 lent JobId=100 JobId=201 30s\n") !=
	          std::string::npos);
	ck_assert_uint_eq(after.book.totals().at(201).borrowed_slice_seconds, 30);

	// Once more, requeued: no second requeue, the stop still counts down.
	const std::string requeued = after.book.serialize(at(41));
	Controller again;
	again.records = after.records;
	again.telemetry["n1"] = after.telemetry["n1"];
	ck_assert_msg(again.book.restore(requeued, why), "%s", why.c_str());
	ck_assert_str(again.book.serialize(at(41)), requeued);
	ck_assert_str(again.run(42, 50), "");
	ck_assert_str(again.orders("n1", 42), "n1#1 200@3");
	again.leave("n1", 0);
	ck_assert_str(again.run(51, 51), "");
	ck_assert_uint_eq(again.book.active_reclaims(), 0);
	ck_assert(contains(again.book.take_events(), "requeue 20 s, device free 31 s"));
}
END_TEST

// Issue 13 item 4. slurmctld killed just after it requeued a borrower
// restarts from job state saved before the requeue: the record shows the
// reclaimed run still running, or (the agent's hard stop came while the
// controller was down) ended FAILED. The reclaim is done only when the
// record shows the borrower pending or ended by itself, off the device; a
// requeue the record does not show is made again.
namespace
{

BorrowerRecord record(BorrowerRecord::Stage stage, uint32_t run, std::optional<long> end = std::nullopt)
{
	BorrowerRecord r;
	r.stage = stage;
	r.run = run;
	if (end)
		r.end = at(*end);
	return r;
}

// MidReclaim with job records: 200 (deadline 40) requeued at 40, the
// ledger saved at 41, the controller killed before Slurm saved the requeue.
// Returns the restarted controller, its book restored, records as saved.
std::unique_ptr<Controller> restarted_after_requeue()
{
	using Stage = BorrowerRecord::Stage;
	MidReclaim before;
	before.c.jobs = std::map<uint32_t, BorrowerRecord>{{200, record(Stage::Running, 0)},
	                                                   {201, record(Stage::Running, 0)}};
	ck_assert_str(before.c.run(26, 40), "40: requeue 200\n");
	before.c.book.requeued(200, at(40));
	const std::string saved = before.c.book.serialize(at(41));
	ck_assert(
	        saved.find(
	                "reclaim 200 reason=lender-busy t0=20 deadline=40 signalled=1 requeued=40 nodes=n1 run=0 again=0\n") !=
	        std::string::npos);
	auto after = std::make_unique<Controller>();
	after->records = before.c.records;  // the job state on disk: 200 still holds slice 0
	after->telemetry["n1"] = [](long) { // the lender idle again
		return std::vector<DeviceReport>{device_use(0, 0), device_use(1, 0)};
	};
	after->jobs = before.c.jobs;
	std::string why;
	ck_assert_msg(after->book.restore(saved, why), "%s", why.c_str());
	return after;
}

} // namespace

START_TEST(a_requeue_the_job_record_does_not_show_is_made_again)
{
	using Stage = BorrowerRecord::Stage;
	// Killed after the requeue, the record still running: requeued again.
	auto c = restarted_after_requeue();
	ck_assert_str(c->run(45, 45), "45: requeue 200\n");
	ck_assert(contains(
	        c->book.take_events(),
	        "reclaim JobId=200: its job record still shows it running, not requeued (the controller restarted before saving the requeue): requeued again"));
	c->book.requeued(200, at(45));
	(*c->jobs)[200] = record(Stage::Leaving, 1);
	c->hold("n1", 0, 200, true);
	ck_assert_str(c->run(46, 47), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 1); // on the device until its processes are gone
	ck_assert_str(c->orders("n1", 47), "n1#1 200@0");
	(*c->jobs)[200] = record(Stage::Pending, 1);
	c->leave("n1", 0);
	ck_assert_str(c->run(48, 48), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 0);
	ck_assert(contains(c->book.take_events(), "reclaim JobId=200 done (lender-busy)"));

	// The hard stop ended it FAILED while the controller was down: the
	// ended job is requeued (Slurm requeues a finished batch job too).
	c = restarted_after_requeue();
	(*c->jobs)[200] = record(Stage::Failed, 0, 46);
	c->leave("n1", 0);
	ck_assert_str(c->run(47, 47), "47: requeue-ended 200\n");
	ck_assert(contains(c->book.take_events(), "reclaim JobId=200: ended FAILED after its deadline"));
	c->book.requeued(200, at(47));
	(*c->jobs)[200] = record(Stage::Pending, 1);
	ck_assert_str(c->run(48, 48), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 0);

	// Requeued and already running again: a new run, the reclaim is done
	// and the new run is a loan of its own.
	c = restarted_after_requeue();
	(*c->jobs)[200] = record(Stage::Running, 1);
	ck_assert_str(c->run(45, 50), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 0);
	ck_assert(c->book.status(at(50)).find("n1 0 0 lent JobId=100 JobId=200") != std::string::npos);

	// Ended by itself (completed, cancelled), or FAILED before its
	// deadline: done, nothing requeued.
	for (const BorrowerRecord &r :
	     {record(Stage::Ended, 0, 46), record(Stage::Failed, 0, 39), record(Stage::Pending, 1)}) {
		c = restarted_after_requeue();
		(*c->jobs)[200] = r;
		c->leave("n1", 0);
		ck_assert_str(c->run(45, 45), "");
		ck_assert_uint_eq(c->book.active_reclaims(), 0);
	}

	// No record any more: done.
	c = restarted_after_requeue();
	c->jobs->erase(200);
	c->leave("n1", 0);
	ck_assert_str(c->run(45, 45), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 0);

	// A borrower that cannot be requeued (stopped instead) is never tried
	// again, whatever its record says; nor is one requeued over and over.
	c = restarted_after_requeue();
	ck_assert_str(c->run(45, 45), "45: requeue 200\n");
	c->book.gave_up(200, at(45));
	ck_assert_str(c->run(46, 60), "");
	ck_assert_uint_eq(c->book.active_reclaims(), 1);
	c = restarted_after_requeue();
	for (long t = 45; t < 60; ++t)
		if (c->run(t, t) == std::to_string(t) + ": requeue 200\n")
			c->book.requeued(200, at(t)); // and the record never shows it
	ck_assert(c->book.serialize(at(60)).find(" run=0 again=3\n") != std::string::npos);
	ck_assert_str(c->run(60, 70), "");
}
END_TEST

// Killed between the signal and the requeue: the restarted controller
// requeues at the deadline; if the agent's hard stop ended the borrower
// first (a slow restart), the ended job is requeued.
START_TEST(a_reclaim_interrupted_before_its_requeue_still_ends_pending)
{
	using Stage = BorrowerRecord::Stage;
	MidReclaim before;
	const std::string saved = before.c.book.serialize(at(25));
	for (bool hard_stopped : {false, true}) {
		Controller c;
		c.records = before.c.records;
		c.telemetry["n1"] = before.c.telemetry["n1"];
		c.jobs = std::map<uint32_t, BorrowerRecord>{{200, record(Stage::Running, 0)},
		                                            {201, record(Stage::Running, 0)}};
		std::string why;
		ck_assert_msg(c.book.restore(saved, why), "%s", why.c_str());
		if (!hard_stopped) {
			ck_assert_str(c.run(30, 40), "40: requeue 200\n");
			continue;
		}
		(*c.jobs)[200] = record(Stage::Failed, 0, 45);
		c.leave("n1", 0);
		ck_assert_str(c.run(46, 46), "46: requeue-ended 200\n");
		c.book.requeued(200, at(46));
		(*c.jobs)[200] = record(Stage::Pending, 1);
		ck_assert_str(c.run(47, 47), "");
		ck_assert_uint_eq(c.book.active_reclaims(), 0);
	}
	// A state written before the run was kept (8 fields) still restores.
	std::string old = saved;
	const size_t at_run = old.find(" run=0 again=0");
	ck_assert(at_run != std::string::npos);
	old.erase(at_run, std::string(" run=0 again=0").size());
	LoanBook book(short_policy(), telemetry_timeout, hard_stop_after);
	std::string why;
	ck_assert_msg(book.restore(old, why), "%s", why.c_str());
	ck_assert_uint_eq(book.active_reclaims(), 1);
}
END_TEST

// Reconfigure: the new policy applies to what happens from now on.
START_TEST(new_policy_applies_from_now_on)
{
	IdleLender s;
	s.c.lend(10, "n1", 0, 200);
	LendingPolicy p = short_policy();
	p.grace = 7s;
	s.c.book.set_policy(p, Seconds(15), Seconds(2));
	s.lender_busy = 80;
	const std::string ticks = s.c.run(11, 30);
	ck_assert_msg(ticks.find("signal 200:lender-busy") != std::string::npos, "%s", ticks.c_str());
	const long signalled = std::stol(ticks.substr(0, ticks.find(':')));
	ck_assert_msg(ticks.find(std::to_string(signalled + 7) + ": requeue 200") != std::string::npos, "%s",
	              ticks.c_str());
	ck_assert_str(s.c.orders("n1", signalled), "n1#1 200@9");
}
END_TEST

START_TEST(state_file_refused_leaves_the_book_empty)
{
	MidReclaim scene;
	const std::string good = scene.c.book.serialize(at(25));
	const std::string empty_book =
	        LoanBook(short_policy(), telemetry_timeout, hard_stop_after).serialize(at(25));
	auto replaced = [&](const std::string &from, const std::string &to) {
		std::string t = good;
		const size_t pos = t.find(from);
		ck_assert_msg(pos != std::string::npos, "%s", from.c_str());
		return t.replace(pos, from.size(), to);
	};
	const std::vector<std::pair<std::string, std::string>> bad = {
	        {"", "line 0: truncated (no end marker)"},
	        {"garbage\n", "line 1: not a flexslurm lending state (or another version)"},
	        {replaced("flexslurm-lending 1\n", "flexslurm-lending 2\n"),
	         "line 1: not a flexslurm lending state (or another version)"},
	        {good.substr(0, good.size() - 4), "truncated (no end marker)"},
	        {good.substr(0, good.size() / 2), ""},
	        {good + "slice n9 0 0\n", "text after the end marker"},
	        {replaced("state=reclaiming", "state=sleepy"), "malformed slice"},
	        {replaced(" deadline=40 signalled=1", " deadline=soon signalled=1"), "malformed reclaim"},
	        {replaced("total 100 ", "total x100 "), "malformed total"},
	        {replaced("saved 25\n", "saved 25\nborrowed n1 0\n"), "unknown line \"borrowed n1 0\""},
	        {replaced("saved 25\n", "saved 25\n\n"), "empty line"},
	        // Corrupted values that would overflow into an immediate kill order.
	        {replaced(" deadline=40 signalled=1", " deadline=9223372036854775807 signalled=1"),
	         "malformed reclaim"},
	        {replaced(" deadline=40 signalled=1", " deadline=4102444801 signalled=1"),
	         "malformed reclaim"},
	        {replaced("saved 25\n", "saved 9223372036854775807\n"), "bad time"},
	        // Found by tests/fuzz/fuzz_loan_book: node names no report can carry,
	        // which made orders the node refuses; devices no report can name.
	        {replaced("nodes=n1 ", "nodes=n1,,n\xff "), "malformed reclaim (bad node name)"},
	        {replaced("slice n1 0 0 ", "slice n/1 0 0 "), "bad node name"},
	        {replaced("slice n1 0 0 ", "slice n1 0 256 "), "bad slice or device number"},
	};
	for (const auto &[text, reason] : bad) {
		LoanBook book(short_policy(), telemetry_timeout, hard_stop_after);
		std::string why;
		ck_assert_msg(!book.restore(text, why), "accepted: %s", text.c_str());
		ck_assert_msg(!why.empty() && why.rfind("line ", 0) == 0, "%s", why.c_str());
		ck_assert_msg(why.find(reason) != std::string::npos, "%s (wanted %s)", why.c_str(),
		              reason.c_str());
		ck_assert_str(book.serialize(at(25)), empty_book);
		ck_assert_uint_eq(book.active_reclaims(), 0);
		ck_assert(book.totals().empty());
		ck_assert(book.orders_for("n1", 1, at(25)).stops.empty());
		ck_assert(book.lendable_units("n1", at(25)).empty());
	}
	LoanBook book(short_policy(), telemetry_timeout, hard_stop_after);
	std::string why;
	ck_assert(book.restore("flexslurm-lending 1\nsaved 5\nend\n", why));
	ck_assert_str(book.serialize(at(5)), "flexslurm-lending 1\nsaved 5\nend\n");
}
END_TEST

// Found by tests/fuzz/fuzz_loan_book: a restored reclaim whose deadline is
// further off than a stop order carries (still before 2100, so restore took
// it) gave an order of 2300000020 s, which parse_orders on the node refuses:
// every stop order of that node was lost. The order carries the longest
// delay instead; and a deadline before its reclaim started is corrupt.
START_TEST(restored_far_deadline_gives_orders_the_node_accepts)
{
	LoanBook book(short_policy(), telemetry_timeout, hard_stop_after);
	std::string why;
	ck_assert_msg(
	        book.restore(
	                "flexslurm-lending 1\nsaved 1700000000\n"
	                "reclaim 202 reason=admin t0=1700000000 deadline=4000000000 signalled=0 requeued=- nodes=n1\n"
	                "end\n",
	                why),
	        "%s", why.c_str());
	const Orders o = book.orders_for("n1", 1, at(1700000000));
	ck_assert_uint_eq(o.stops.size(), 1);
	ck_assert_int_eq(o.stops[0].in_seconds, max_stop_delay_seconds);
	ck_assert(parse_orders(encode_orders(o)));

	LoanBook bad(short_policy(), telemetry_timeout, hard_stop_after);
	ck_assert(!bad.restore(
	        "flexslurm-lending 1\nsaved 1700000000\n"
	        "reclaim 202 reason=admin t0=1700000000 deadline=1699999999 signalled=0 requeued=- nodes=n1\n"
	        "end\n",
	        why));
	ck_assert_msg(why.find("line 3: malformed reclaim") == 0, "%s", why.c_str());
	ck_assert_uint_eq(bad.active_reclaims(), 0);
}
END_TEST

// A restarted controller must not count its own downtime against the
// agents: the first tick after a restart runs before the listener accepts
// reports, and a restart longer than telemetry_timeout (or one without a
// state file) must not take back every loan. Every agent gets a full
// telemetry_timeout from the first sync to be heard again.
START_TEST(a_restart_gives_the_agents_a_full_timeout)
{
	MidReclaim before;
	const std::string text = before.c.book.serialize(at(25));
	{ // Down from 25 to 60 (more than telemetry_timeout).
		Controller after;
		after.records = before.c.records;
		std::string why;
		ck_assert_msg(after.book.restore(text, why), "%s", why.c_str());
		ck_assert_str(after.run(60, 60), "60: requeue 200\n"); // overdue since 40: at once
		after.book.requeued(200, at(60));
		after.hold("n1", 0, 200, true);
		// Slice 2's loan goes on while its agent may yet be heard ...
		ck_assert_str(after.run(61, 75), "");
		// ... and is lost once unheard for a full timeout after the restart.
		ck_assert_str(after.run(76, 76), "76: signal 201:telemetry-lost\n");
	}
	{ // No state file at all: the records still say who borrows what.
		Controller after;
		after.records = before.c.records;
		ck_assert_str(after.run(60, 75), "");
		ck_assert(after.book.status(at(75)).find("n1 2 1 lent JobId=100 JobId=201 15s\n") !=
		          std::string::npos);
		ck_assert_str(after.run(76, 76), "76: signal 200:telemetry-lost 201:telemetry-lost\n");
	}
	{ // The node has not registered since the restart: Slurm's records show no
	  // devices and no holders there yet. Its loans and reclaims stay as saved.
		Controller after;
		after.records = before.c.records;
		after.records.at("n1") = NodeRecords{};
		after.records.at("n1").node = "n1";
		after.records.at("n1").known = false;
		std::string why;
		ck_assert_msg(after.book.restore(text, why), "%s", why.c_str());
		ck_assert_str(after.run(60, 60), "60: requeue 200\n");
		after.book.requeued(200, at(60));
		ck_assert_str(after.run(61, 65), "");
		ck_assert_uint_eq(after.book.active_reclaims(), 1); // not "gone": just not known yet
		ck_assert(after.book.status(at(65)).find("n1 2 1 lent JobId=100 JobId=201") !=
		          std::string::npos);
		after.records = before.c.records; // it registers: the records say who holds what
		after.hold("n1", 0, 200, true);
		ck_assert_str(after.run(66, 66), "");
		ck_assert_uint_eq(after.book.active_reclaims(), 1);
		after.leave("n1", 0); // the requeued borrower's processes are gone
		ck_assert_str(after.run(67, 67), "");
		ck_assert_uint_eq(after.book.active_reclaims(), 0);
	}
}
END_TEST

// --- LoanBook: random sequences against the invariants -----------------------------

namespace
{

using Unit = std::pair<std::string, int>; // node, borrow unit (= slice)

// The slices of status(): node, slice -> borrower (a slice not listed is free).
std::map<Unit, uint32_t> borrowers_in_status(const std::string &status)
{
	std::map<Unit, uint32_t> out;
	std::istringstream in(status);
	std::string line;
	std::getline(in, line); // header
	while (std::getline(in, line) && line != "RECLAIMS IN FLIGHT") {
		std::istringstream words(line);
		std::string node, slice, device, state, owner, borrower;
		words >> node >> slice >> device >> state >> owner >> borrower;
		out[{node, std::stoi(slice)}] =
		        borrower == "-" ? 0 : static_cast<uint32_t>(std::stoul(borrower.substr(6)));
	}
	return out;
}

// 3 nodes x 8 slices under random allocations, reports, loans, reclaims and
// controller restarts, the plugin's part played by the test with what the
// book asked for, and a model of what the book was told to check it by.
class RandomCluster
{
public:
	explicit RandomCluster(unsigned seed) : rng_(seed), c_(std::make_unique<Controller>(policy_))
	{
		c_->add_node("n0", {0, 0, 0, 0, 1, 1, 1, 1});
		c_->add_node("n1", {0, 0, 1, 1, 2, 2, 3, 3});
		c_->add_node("n2", {0, 0, 0, 0, 0, 0, 0, 0});
	}

	void step()
	{
		now_ += pick(3);
		const int ev = pick(100);
		const std::string &node = nodes_[static_cast<size_t>(pick(3))];
		if (ev < 10)
			start_owner(node);
		else if (ev < 15)
			end_owner(node);
		else if (ev < 40)
			report(node);
		else if (ev < 50)
			place_borrower(node);
		else if (ev < 52)
			place_unknown_borrower(node);
		else if (ev < 60)
			end_borrower();
		else if (ev < 75)
			sync();
		else if (ev < 92)
			lending_thread();
		else if (ev < 94)
			admin_reclaim();
		else if (ev < 96)
			toggle_silence(node);
		else
			now_ += pick(20); // a quiet while
		check();
	}

	size_t signalled() const { return signalled_.size(); }
	size_t requeued() const { return requeued_.size(); }

private:
	bool chance(int percent) { return pick(100) < percent; }
	int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

	// An agent falls silent, or speaks again.
	void toggle_silence(const std::string &node)
	{
		if (!silent_.erase(node))
			silent_.insert(node);
	}

	void start_owner(const std::string &node)
	{
		const int s = pick(8);
		if (!c_->records.at(node).owners.count(s))
			c_->own(node, s, next_job_++, chance(20) ? "interactive" : "gpu",
			        chance(50) ? std::nullopt : std::optional<Instant>(at(now_ + pick(300))));
	}

	void end_owner(const std::string &node)
	{
		auto &owners = c_->records.at(node).owners;
		if (owners.empty())
			return;
		auto it = owners.begin();
		std::advance(it, pick(static_cast<int>(owners.size())));
		const uint32_t job = it->second.job;
		for (auto o = owners.begin(); o != owners.end();)
			o = o->second.job == job ? owners.erase(o) : std::next(o);
	}

	// Per device: attributed (70 %) or whole-device use, sometimes no
	// memory to lend, sometimes unreadable (left out).
	void report(const std::string &node)
	{
		if (silent_.count(node))
			return;
		const NodeRecords &records = c_->records.at(node);
		std::map<int, std::vector<JobReport>> jobs;
		for (const auto &[s, o] : records.owners) {
			auto &on_device = jobs[records.device_of_slice[static_cast<size_t>(s)]];
			const double busy =
			        std::vector<double>{0, 0, 2, 12, 50, 90}[static_cast<size_t>(pick(6))];
			if (std::none_of(on_device.begin(), on_device.end(),
			                 [&](const JobReport &j) { return j.job == o.job; }))
				on_device.push_back({o.job, busy, 0});
		}
		for (const auto &[u, h] : records.borrowers) {
			auto &on_device = jobs[records.device_of_slice[static_cast<size_t>(u)]];
			if (std::none_of(on_device.begin(), on_device.end(),
			                 [&](const JobReport &j) { return j.job == h.job; }))
				on_device.push_back({h.job, static_cast<double>(pick(100)), 0});
		}
		std::vector<DeviceReport> devices;
		std::set<int> with_memory;
		const int device_count =
		        *std::max_element(records.device_of_slice.begin(), records.device_of_slice.end()) + 1;
		for (int d = 0; d < device_count; ++d) {
			if (chance(5))
				continue;
			const uint64_t lendable = chance(10) ? 0 : 4096;
			devices.push_back(chance(70) ? per_job_use(d, jobs[d], lendable)
			                             : device_use(d, chance(30) ? 60 : 1, lendable));
			if (lendable)
				with_memory.insert(d);
		}
		c_->report(now_, node, devices);
		if (ever_synced_) { // the book ignores nodes it has not seen in the records
			heard_[node] = now_;
			memory_[node] = with_memory;
		}
	}

	// The scheduler: some of what the book offers, to one new borrower.
	void place_borrower(const std::string &node)
	{
		const uint32_t borrower = next_job_++;
		int placed = 0;
		for (int u : c_->book.lendable_units(node, at(now_))) {
			if (c_->records.at(node).borrowers.count(u) || placed > pick(2) || !chance(70))
				continue; // Slurm's own books: a held unit is not given twice
			c_->lend(now_, node, u, borrower);
			lent_since_sync_[{node, u}] = borrower;
			++placed;
		}
	}

	// A borrower the book never lent (placed before a restart, or racing a tick).
	void place_unknown_borrower(const std::string &node)
	{
		const int u = pick(8);
		if (!c_->records.at(node).borrowers.count(u))
			c_->hold(node, u, next_job_++);
	}

	std::vector<Unit> units_of(uint32_t borrower) const
	{
		std::vector<Unit> out;
		for (const auto &[name, nb] : c_->records)
			for (const auto &[u, h] : nb.borrowers)
				if (h.job == borrower)
					out.emplace_back(name, u);
		return out;
	}

	std::vector<uint32_t> borrowers() const
	{
		std::set<uint32_t> out;
		for (const auto &[name, nb] : c_->records)
			for (const auto &[u, h] : nb.borrowers)
				out.insert(h.job);
		return {out.begin(), out.end()};
	}

	// A borrower ends, or starts completing (requeued itself, or ended and its processes linger).
	void end_borrower()
	{
		const auto all = borrowers();
		if (all.empty())
			return;
		const uint32_t b = all[static_cast<size_t>(pick(static_cast<int>(all.size())))];
		const bool completes = chance(50);
		for (const auto &[node, u] : units_of(b)) {
			if (completes)
				c_->hold(node, u, b, true);
			else
				c_->leave(node, u);
		}
	}

	void sync()
	{
		c_->sync(now_);
		synced_ = c_->records;
		lent_since_sync_.clear();
		ever_synced_ = true;
	}

	// What select/flex's lending thread does every second: sync, tick, carry
	// out (most of the time: a signal or a requeue may fail), and now and
	// then the controller restarts from the state file it just wrote.
	void lending_thread()
	{
		sync();
		const TickActions actions = c_->book.tick(at(now_));
		for (const ReclaimOrder &o : actions.signal) {
			ck_assert_msg(signalled_.insert(o.borrower).second, "JobId=%u signalled twice at %ld",
			              o.borrower, now_);
			if (chance(90))
				c_->book.signalled(o.borrower, at(now_));
		}
		for (uint32_t b : actions.requeue) {
			ck_assert_msg(signalled_.count(b), "JobId=%u requeued without a signal at %ld", b,
			              now_);
			ck_assert_msg(!requeued_.count(b), "JobId=%u requeued again at %ld", b, now_);
			if (chance(70)) {
				c_->book.requeued(b, at(now_));
				requeued_.insert(b);
				for (const auto &[node, u] : units_of(b))
					c_->hold(node, u, b, true);
			}
		}
		if (chance(3)) {
			const std::string text = c_->book.serialize(at(now_));
			auto restarted = std::make_unique<Controller>(policy_);
			restarted->records = c_->records;
			std::string why;
			ck_assert_msg(restarted->book.restore(text, why), "%s", why.c_str());
			c_ = std::move(restarted);
			for (const std::string &n :
			     nodes_) { // restore(): heard at the save, memory until told
				heard_[n] = now_;
				memory_[n] = std::nullopt;
			}
		}
	}

	// Borrowers the book was told about: the records at the last sync, and loans since.
	std::map<Unit, uint32_t> told_borrowers() const
	{
		std::map<Unit, uint32_t> out = lent_since_sync_;
		for (const auto &[node, nb] : synced_)
			for (const auto &[u, h] : nb.borrowers)
				out[{node, u}] = h.job;
		return out;
	}

	void admin_reclaim()
	{
		const auto all = borrowers();
		const uint32_t b = all.empty() || chance(20)
		                           ? next_job_ + 1000
		                           : all[static_cast<size_t>(pick(static_cast<int>(all.size())))];
		bool known = false;
		for (const auto &[unit, job] : told_borrowers())
			known = known || job == b;
		ck_assert_msg(c_->book.admin_reclaim(at(now_), b) == known, "admin_reclaim(%u) at %ld", b,
		              now_);
	}

	void check()
	{
		const LoanBook &book = c_->book;
		const auto told = told_borrowers();
		// Offered: an idle-lending owner's slice (as last synced), not borrowed,
		// on a node heard from recently, on a device with memory to lend.
		for (const std::string &n : nodes_) {
			for (int u : book.lendable_units(n, at(now_))) {
				ck_assert_msg(synced_.count(n) && synced_.at(n).owners.count(u),
				              "%s %d offered unowned at %ld", n.c_str(), u, now_);
				const SliceOwner &o = synced_.at(n).owners.at(u);
				ck_assert(o.partition != "interactive");
				ck_assert(!o.end || *o.end - at(now_) >= policy_.min_loan);
				ck_assert_msg(!told.count({n, u}), "%s %d offered while borrowed at %ld",
				              n.c_str(), u, now_);
				ck_assert_msg(heard_.count(n) &&
				                      now_ - heard_.at(n) <= telemetry_timeout.count(),
				              "%s %d offered at %ld, not heard since %ld", n.c_str(), u, now_,
				              heard_.count(n) ? heard_.at(n) : -1);
				const int device = synced_.at(n).device_of_slice[static_cast<size_t>(u)];
				ck_assert(!memory_.at(n) || memory_.at(n)->count(device));
			}
		}
		// One borrower per unit, and it is the one the records (or a loan) said.
		if (ever_synced_) {
			const auto in_book = borrowers_in_status(book.status(at(now_)));
			for (const std::string &n : nodes_)
				for (int u = 0; u < 8; ++u) {
					const auto b = in_book.find({n, u});
					const auto t = told.find({n, u});
					const uint32_t book_says = b == in_book.end() ? 0 : b->second;
					const uint32_t told_says = t == told.end() ? 0 : t->second;
					ck_assert_msg(book_says == told_says,
					              "%s %d: book %u, told %u at %ld", n.c_str(), u,
					              book_says, told_says, now_);
				}
		}
		// Under reclaim: exactly the signalled borrowers still on the books;
		// only they get stop orders, within grace + hard_stop_after.
		std::set<uint32_t> present;
		for (const auto &[unit, job] : told)
			present.insert(job);
		size_t under_reclaim = 0;
		for (uint32_t b : signalled_)
			under_reclaim += present.count(b);
		ck_assert_uint_eq(book.active_reclaims(), under_reclaim);
		for (const std::string &n : nodes_) {
			const Orders o = book.orders_for(n, 9, at(now_));
			ck_assert(o.node == n && o.seq == 9);
			for (const StopOrder &s : o.stops) {
				ck_assert_msg(signalled_.count(s.job) && present.count(s.job),
				              "stop order for JobId=%u, not under reclaim, at %ld", s.job,
				              now_);
				ck_assert(s.in_seconds >= 0 &&
				          s.in_seconds <= (policy_.grace + hard_stop_after).count());
			}
		}
		// Totals only grow while a job is known.
		for (const auto &[job, t] : book.totals()) {
			const auto seen = totals_seen_.find(job);
			if (seen != totals_seen_.end())
				ck_assert(t.lent_slice_seconds >= seen->second.lent_slice_seconds &&
				          t.borrowed_slice_seconds >= seen->second.borrowed_slice_seconds);
		}
		totals_seen_ = book.totals();
		// The state file reads back to itself; its snapshot, which reuses
		// the rows of nodes that did not change, shows what one built
		// from scratch shows.
		const std::string text = book.serialize(at(now_));
		ck_assert_str(text, book.fresh_snapshot(at(now_)).state_text());
		LoanBook copy(policy_, telemetry_timeout, hard_stop_after);
		std::string why;
		ck_assert_msg(copy.restore(text, why), "%s", why.c_str());
		ck_assert_str(copy.serialize(at(now_)), text);
	}

	const LendingPolicy policy_ = short_policy();
	const std::vector<std::string> nodes_ = {"n0", "n1", "n2"};
	std::mt19937 rng_;
	std::unique_ptr<Controller> c_;
	long now_ = 0;
	uint32_t next_job_ = 1;
	// The model: what the book was told, and what it did.
	bool ever_synced_ = false;
	std::map<std::string, NodeRecords> synced_; // the records at the last sync
	std::map<Unit, uint32_t> lent_since_sync_;
	std::map<std::string, long> heard_; // the last report the book took
	std::map<std::string, std::optional<std::set<int>>>
	        memory_; // devices with memory to lend; nullopt: all
	std::set<std::string> silent_;
	std::set<uint32_t> signalled_, requeued_;
	std::map<uint32_t, JobTotals> totals_seen_;
};

} // namespace

// After every step: nothing is offered that is not an idle-lending owner's,
// unborrowed, on a node heard from recently with memory to lend; the book's
// borrowers are the records' (or the loans made since the last sync); each
// borrower is signalled at most once and requeued only after its signal;
// orders name only borrowers under reclaim; totals never shrink; and the
// state file reads back to the same text.
START_TEST(random_sequences_keep_the_invariants)
{
	RandomCluster cluster(20261201u);
	for (int step = 0; step < 20000; ++step)
		cluster.step();
	// The sequence did reach the interesting places.
	ck_assert_uint_gt(cluster.signalled(), 20);
	ck_assert_uint_gt(cluster.requeued(), 5);
}
END_TEST

// --- NodeAgent and LoanBook together (the agent alone: test_agent.cpp) ---------------

#include "agent_rig.hpp"

// The agent's reports and the book's orders, end to end: what the agent
// builds from its layout is what the book lends by, and the book's hard
// stop becomes the agent's.
START_TEST(agent_and_book_speak_the_same_language)
{
	AgentRig rig;
	Controller c;
	c.add_node("n1", {0, 0, 0, 0, 1, 1}); // two_device_layout()
	c.own("n1", 0, 100);
	c.own("n1", 4, 101); // device 1 has no memory to lend
	long now = 0;
	double lender_busy = 0;
	auto samples = [&] {
		DeviceSample d0, d1;
		d0.device = 0;
		d0.per_job = true;
		d0.jobs = {{100, lender_busy, 1 << 20}};
		d1.device = 1;
		d1.per_job = true;
		d1.jobs = {{101, 0, 0}};
		return std::vector<DeviceSample>{d0, d1};
	};
	rig.answer = [&](const std::string &, const Report &r) -> Result<std::string> {
		c.book.report(at(now), r);
		return encode_orders(c.book.orders_for(r.node, r.seq, at(now)));
	};
	std::string actions;
	auto run = [&](long from, long to) {
		for (now = from; now <= to; ++now) {
			c.sync(now);
			if (now % 5 == 0) {
				rig.telemetry->next = samples();
				rig.agent->report_once();
			}
			const std::string a = describe(c.book.tick(at(now)));
			if (!a.empty())
				actions += std::to_string(now) + ": " + a + "\n";
		}
	};
	run(0, 10);
	ck_assert_str(actions, "10: lendable\n");
	ck_assert_str(c.lendable("n1", 10), "0");
	c.lend(10, "n1", 0, 200);
	lender_busy = 40;
	run(11, 24);
	ck_assert_str(actions, "10: lendable\n20: signal 200:lender-busy\n");
	ck_assert(rig.agent->scheduled_stops().empty()); // the answer at 20 came before the tick
	const auto before = std::chrono::steady_clock::now();
	run(25, 25);
	const auto after = std::chrono::steady_clock::now();
	const auto stops = rig.agent->scheduled_stops();
	ck_assert_uint_eq(stops.size(), 1);
	ck_assert(stops.at(200) >= before + 20s && stops.at(200) <= after + 20s); // 20 + 20 + 5 - 25
	ck_assert(logged(LogLevel::Error).empty());
}
END_TEST

Suite *loan_book_suite()
{
	Suite *s = suite_create("loan_book");
	TCase *tc = tcase_create("loan_book");
	tcase_add_test(tc, lendable_only_when_idle_long_enough_with_memory_and_fresh_reports);
	tcase_add_test(tc, a_requeue_the_job_record_does_not_show_is_made_again);
	tcase_add_test(tc, a_reclaim_interrupted_before_its_requeue_still_ends_pending);
	tcase_add_test(tc, new_policy_applies_from_now_on);
	tcase_add_test(tc, per_job_telemetry_tells_the_borrower_from_the_lender);
	tcase_add_test(tc, reclaim_when_the_lender_is_busy_again);
	tcase_add_test(tc, other_reasons_to_take_a_loan_back);
	tcase_add_test(tc, telemetry_lost_takes_loans_back);
	tcase_add_test(tc, borrowers_the_records_show);
	tcase_add_test(tc, totals_grow_while_lent);
	tcase_add_test(tc, state_file_round_trip_continues_loans_and_reclaims);
	tcase_add_test(tc, state_file_refused_leaves_the_book_empty);
	tcase_add_test(tc, a_restart_gives_the_agents_a_full_timeout);
	tcase_add_test(tc, restored_far_deadline_gives_orders_the_node_accepts);
	tcase_add_test(tc, agent_and_book_speak_the_same_language);
	suite_add_tcase(s, tc);
	TCase *random = tcase_create("random");
	tcase_set_timeout(random, 30); // 20,000 steps with a state-file round trip each: ~2.5 s at -O2
	tcase_add_test(random, random_sequences_keep_the_invariants);
	suite_add_tcase(s, random);
	return s;
}
