// SPDX-License-Identifier: GPL-2.0-or-later
// LoanBook under long random sequences checked against the invariants the
// reclaim design rests on, and the node agent and the book speaking the same
// wire format.
#include "loan_book_scene.hpp"

using namespace loan_book_scene;

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
	// `free_slices`: lending.free_slices on (owners then also start on lent free slices).
	explicit RandomCluster(unsigned seed, bool free_slices = false)
	    : policy_(policy_with(free_slices)), rng_(seed), c_(std::make_unique<Controller>(policy_))
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
	static LendingPolicy policy_with(bool free_slices)
	{
		LendingPolicy p = short_policy();
		p.free_slices = free_slices;
		return p;
	}
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
				ck_assert_msg(synced_.count(n), "%s offered before any sync at %ld",
				              n.c_str(), now_);
				if (synced_.at(n).owners.count(u)) {
					const SliceOwner &o = synced_.at(n).owners.at(u);
					ck_assert(o.partition != "interactive");
					ck_assert(!o.end || *o.end - at(now_) >= policy_.min_loan);
				} else {
					ck_assert_msg(policy_.free_slices, "%s %d offered unowned at %ld",
					              n.c_str(), u, now_);
				}
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

	const LendingPolicy policy_;
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

// The same with lending.free_slices: free slices are offered too, and
// owners placed on lent slices take them back; every invariant holds.
START_TEST(random_sequences_with_free_slices_keep_the_invariants)
{
	RandomCluster cluster(20261130u, true);
	for (int step = 0; step < 20000; ++step)
		cluster.step();
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

Suite *loan_book_random_suite()
{
	Suite *s = suite_create("loan_book_random");
	TCase *tc = tcase_create("agent_and_book");
	tcase_add_test(tc, agent_and_book_speak_the_same_language);
	suite_add_tcase(s, tc);
	TCase *random = tcase_create("random");
	tcase_set_timeout(random, 30); // 20,000 steps with a state-file round trip each: ~2.5 s at -O2
	tcase_add_test(random, random_sequences_keep_the_invariants);
	tcase_add_test(random, random_sequences_with_free_slices_keep_the_invariants);
	suite_add_tcase(s, random);
	return s;
}
