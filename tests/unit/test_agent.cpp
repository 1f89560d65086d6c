// SPDX-License-Identifier: GPL-2.0-or-later
// The node agent of idle reclaim (NodeAgent), with Munge, the network and
// the killer faked: its reports, the stop orders it obeys, the controllers
// it tries, and the jitter of its report times.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "suites.hpp"

#include "agent_rig.hpp"

#include <algorithm>
#include <map>
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

bool contains(const std::vector<std::string> &lines, const std::string &text)
{
	return std::any_of(lines.begin(), lines.end(),
	                   [&](const std::string &l) { return l.find(text) != std::string::npos; });
}

} // namespace

START_TEST(agent_thread_blocks_sigpipe)
{
	// A write to a controller that went away must not raise SIGPIPE in
	// slurmd: the agent's thread keeps it blocked.
	AgentRig rig;
	std::atomic<int> blocked{-1};
	rig.answer = [&](const std::string &, const Report &r) -> Result<std::string> {
		sigset_t now;
		pthread_sigmask(SIG_BLOCK, nullptr, &now);
		blocked = sigismember(&now, SIGPIPE);
		return encode_orders(Orders{r.node, r.seq, {}, {}});
	};
	rig.agent->start();
	for (int i = 0; i < 500 && blocked < 0; ++i)
		std::this_thread::sleep_for(10ms);
	rig.agent.reset(); // stops and joins
	ck_assert_int_eq(blocked.load(), 1);
}
END_TEST

START_TEST(agent_builds_reports_from_samples)
{
	AgentRig rig;
	DeviceSample d0;
	d0.device = 0;
	d0.busy_percent = 37.5;
	d0.memory_used_bytes = (3ull << 30) + 5;
	d0.per_job = true;
	d0.jobs = {{12, 10, 1ull << 30}, {13, 5, 2ull << 20}, {12, 20, 1ull << 30}, {0, 50, 1ull << 30}};
	DeviceSample d1;
	d1.device = 1;
	d1.busy_percent = 150; // a backend's glitch: still a percentage on the wire
	DeviceSample d7;
	d7.device = 7; // not in the layout
	rig.wall = at(1005);
	const Report r = rig.agent->build_report({d0, d1, d7});
	ck_assert_str(r.node, "n1");
	ck_assert_uint_eq(r.epoch, 1000); // the agent's start
	ck_assert_uint_eq(r.seq, 1);
	ck_assert_int_eq(r.sent_at, 1005);
	ck_assert_uint_eq(r.devices.size(), 2);
	const DeviceReport &a = r.devices[0];
	ck_assert(a.device == 0 && a.busy_percent == 37.5 && a.memory_used_mib == 3072);
	ck_assert_uint_eq(a.lendable_memory_mib, 4096); // 1 GiB per borrow unit x 4 slices
	ck_assert(a.per_job);
	ck_assert_uint_eq(a.jobs.size(), 2); // job 12 once, job 0 (no job) left out
	ck_assert(a.jobs[0].job == 12 && a.jobs[0].busy_percent == 30 && a.jobs[0].memory_mib == 2048);
	ck_assert(a.jobs[1].job == 13 && a.jobs[1].busy_percent == 5 && a.jobs[1].memory_mib == 2);
	const DeviceReport &b = r.devices[1];
	ck_assert(b.device == 1 && b.busy_percent == 100 && b.lendable_memory_mib == 0 && !b.per_job);
	ck_assert(b.jobs.empty());
	auto parsed = parse_report(encode_report(r));
	ck_assert_msg(static_cast<bool>(parsed), "%s", parsed.error().c_str());

	rig.wall = at(1010);
	const Report next = rig.agent->build_report({d1});
	ck_assert_uint_eq(next.seq, 2);
	ck_assert_uint_eq(next.epoch, 1000);
	ck_assert_int_eq(next.sent_at, 1010);

	// The backend fails: a report with no devices (nothing on this node is lent).
	rig.telemetry->next = Result<std::vector<DeviceSample>>::failure("NVML gone");
	rig.answer_with({});
	rig.agent->report_once();
	ck_assert_uint_eq(rig.exchanges.size(), 1);
	auto sent = parse_report(rig.exchanges[0].request);
	ck_assert(static_cast<bool>(sent) && sent->seq == 3 && sent->devices.empty());
	ck_assert(contains(logged(LogLevel::Error), "telemetry (scripted): NVML gone"));
}
END_TEST

START_TEST(agent_carries_out_stop_orders_when_due)
{
	AgentRig rig;
	DeviceSample d0;
	d0.device = 0;
	rig.telemetry->next = std::vector<DeviceSample>{d0};
	rig.answer_with({{200, 30}, {201, 0}});
	const auto before = std::chrono::steady_clock::now();
	rig.agent->report_once();
	const auto after = std::chrono::steady_clock::now();
	ck_assert_uint_eq(rig.exchanges.size(), 1);
	ck_assert_str(rig.exchanges[0].host, "ctl1");
	auto sent = parse_report(rig.exchanges[0].request);
	ck_assert(static_cast<bool>(sent) && sent->node == "n1" && sent->seq == 1 &&
	          sent->devices.size() == 1);

	auto stops = rig.agent->scheduled_stops();
	ck_assert_uint_eq(stops.size(), 2);
	ck_assert(stops.at(200) >= before + 30s && stops.at(200) <= after + 30s);
	ck_assert(stops.at(201) >= before && stops.at(201) <= after);
	ck_assert(rig.killed.empty()); // scheduling is not killing

	rig.agent->run_due_stops(stops.at(201) - 1ms);
	ck_assert(rig.killed.empty());
	rig.agent->run_due_stops(stops.at(201));
	ck_assert_uint_eq(rig.kills_of(201), 1);
	ck_assert_uint_eq(rig.kills_of(200), 0);
	rig.agent->run_due_stops(stops.at(200) - 1ms);
	ck_assert_uint_eq(rig.kills_of(200), 0);
	rig.agent->run_due_stops(stops.at(200));
	ck_assert_uint_eq(rig.kills_of(200), 1);
	// Each kill names when its order first came (issue 13 item 12): the
	// kill leaves alone a later job that got the same id.
	ck_assert_uint_eq(rig.ordered_at.back(), 1000);
	// While the order stands, a later pass kills what is left again (a
	// process forked after the first kill); the kill itself finds nothing.
	// An order more than 30 s past due is forgotten (201 was due 31 s ago):
	// a controller that stopped answering must not leave kills behind.
	const size_t kills = rig.killed.size();
	rig.agent->run_due_stops(stops.at(200) + 1s);
	ck_assert_uint_eq(rig.killed.size(), kills + 1);
	ck_assert_uint_eq(rig.agent->scheduled_stops().size(), 1);
	// The controller drops the orders (the borrowers are gone): no more kills.
	rig.answer_with({});
	rig.agent->report_once();
	ck_assert(rig.agent->scheduled_stops().empty());
	rig.agent->run_due_stops(stops.at(200) + 10s);
	ck_assert_uint_eq(rig.killed.size(), kills + 1);
}
END_TEST

START_TEST(agent_ignores_answers_not_meant_for_it)
{
	AgentRig rig;
	rig.answer_with({{200, 30}});
	rig.agent->report_once();
	const auto scheduled = rig.agent->scheduled_stops();
	ck_assert_uint_eq(scheduled.size(), 1);

	// Each of these, were it obeyed, would drop job 200's stop and kill 300
	// now. (The same failure twice in a row is logged once: keep them apart.)
	const std::vector<StopOrder> stop_300{{300, 0}};
	struct BadAnswer {
		std::function<void()> arrange;
		std::string logged;
	};
	const std::vector<BadAnswer> bad = {
	        {[&] { rig.answer_uid = 4242; }, "ctl1: answer not sealed by the controller (uid 4242)"},
	        {[&] { rig.answer_replayed = true; }, "ctl1: answer not sealed by the controller (replayed)"},
	        {[&] { rig.answer_forged = true; },
	         "ctl1: answer not sealed by the controller (Invalid credential format)"},
	        {[&] {
		         rig.answer = [&](const std::string &, const Report &r) -> Result<std::string> {
			         return encode_orders(Orders{"n2", r.seq, stop_300, {}});
		         };
	         },
	         "ctl1: answer is not for this report"},
	        {[&] {
		         rig.answer = [](const std::string &, const Report &) -> Result<std::string> {
			         return std::string("kill everything\n");
		         };
	         },
	         "ctl1: answer is not for this report: "},
	        {[&] {
		         rig.answer = [&](const std::string &, const Report &r) -> Result<std::string> {
			         return encode_orders(Orders{r.node, r.seq - 1, stop_300, {}});
		         };
	         },
	         "ctl1: answer is not for this report"},
	};
	for (const BadAnswer &b : bad) {
		rig.answer_uid = 0;
		rig.answer_replayed = false;
		rig.answer_forged = false;
		rig.answer_with(stop_300);
		clear_log();
		b.arrange();
		rig.agent->report_once();
		ck_assert(rig.agent->scheduled_stops() == scheduled);
		ck_assert_uint_eq(logged(LogLevel::Error).size(), 1);
		ck_assert_msg(logged(LogLevel::Error)[0].find(b.logged) != std::string::npos, "%s",
		              logged(LogLevel::Error)[0].c_str());
		rig.agent->run_due_stops(std::chrono::steady_clock::now());
		ck_assert(rig.killed.empty());
	}
	// The SlurmUser's answer is the controller's as much as root's.
	rig.answer_uid = 450;
	rig.answer_replayed = false;
	rig.answer_forged = false;
	rig.answer_with(stop_300);
	rig.agent->report_once();
	ck_assert_uint_eq(rig.agent->scheduled_stops().size(), 1);
	ck_assert_uint_eq(rig.agent->scheduled_stops().count(300), 1);
}
END_TEST

START_TEST(agent_follows_the_latest_answer_but_never_postpones_a_stop)
{
	AgentRig rig;
	rig.answer_with({{200, 30}, {201, 10}});
	rig.agent->report_once();
	const auto first = rig.agent->scheduled_stops();
	ck_assert_uint_eq(first.size(), 2);

	// 201's reclaim is over; 200's deadline looks later (a slow answer, a
	// clock step): the earlier one stands.
	rig.answer_with({{200, 60}});
	rig.agent->report_once();
	auto stops = rig.agent->scheduled_stops();
	ck_assert_uint_eq(stops.size(), 1);
	ck_assert(stops.at(200) == first.at(200));

	// An earlier deadline is taken, and a new stop added.
	rig.answer_with({{200, 0}, {202, 5}});
	const auto before = std::chrono::steady_clock::now();
	rig.agent->report_once();
	const auto after = std::chrono::steady_clock::now();
	stops = rig.agent->scheduled_stops();
	ck_assert_uint_eq(stops.size(), 2);
	ck_assert(stops.at(200) >= before && stops.at(200) <= after);
	ck_assert(stops.at(202) >= before + 5s && stops.at(202) <= after + 5s);

	rig.answer_with({});
	rig.agent->report_once();
	ck_assert(rig.agent->scheduled_stops().empty());
	rig.agent->run_due_stops(after + 1h);
	ck_assert(rig.killed.empty());
}
END_TEST

START_TEST(agent_tries_the_controllers_in_order)
{
	AgentRig rig({"ctl1", "ctl2"}, "10.0.0.5");
	bool backup_answers = true;
	rig.answer = [&](const std::string &host, const Report &r) -> Result<std::string> {
		if (host == "ctl1" || !backup_answers)
			return Result<std::string>::failure("connection refused");
		return encode_orders(Orders{r.node, r.seq, {{200, 5}}, {}});
	};
	const auto seqs = [&] {
		std::string text;
		for (const auto &e : rig.exchanges)
			text += std::to_string(parse_report(e.request)->seq) + " ";
		return text;
	};
	rig.agent->report_once();
	// Always from the node's own address: a refusal is not a reason to speak
	// from another. Each try is a report of its own (next seq, own credential).
	ck_assert_uint_eq(rig.exchanges.size(), 2);
	ck_assert(rig.exchanges[0].host == "ctl1" && rig.exchanges[0].bind_address == "10.0.0.5");
	ck_assert(rig.exchanges[1].host == "ctl2" && rig.exchanges[1].bind_address == "10.0.0.5");
	ck_assert_str(seqs(), "1 2 ");
	ck_assert_uint_eq(rig.agent->scheduled_stops().count(200), 1);
	ck_assert(logged(LogLevel::Error).empty());

	// The node's address is not this host's (EADDRNOTAVAIL): from any address
	// instead, with a fresh report and credential.
	rig.exchanges.clear();
	rig.bind_not_local = true;
	rig.agent->report_once();
	ck_assert_uint_eq(rig.exchanges.size(), 4);
	ck_assert(rig.exchanges[0].host == "ctl1" && rig.exchanges[0].bind_address == "10.0.0.5");
	ck_assert(rig.exchanges[1].host == "ctl1" && rig.exchanges[1].bind_address.empty());
	ck_assert(rig.exchanges[2].host == "ctl2" && rig.exchanges[2].bind_address == "10.0.0.5");
	ck_assert(rig.exchanges[3].host == "ctl2" && rig.exchanges[3].bind_address.empty());
	ck_assert_str(seqs(), "3 4 5 6 ");
	for (size_t i = 1; i < rig.exchanges.size(); ++i)
		ck_assert(rig.exchanges[i].request != rig.exchanges[i - 1].request);
	ck_assert(logged(LogLevel::Error).empty());

	// Neither answers: one log line until that changes, the orders kept.
	rig.bind_not_local = false;
	backup_answers = false;
	rig.agent->report_once();
	rig.agent->report_once();
	ck_assert_uint_eq(logged(LogLevel::Error).size(), 1);
	ck_assert_str(
	        logged(LogLevel::Error)[0],
	        "reclaim agent: report not delivered: ctl1: connection refused; ctl2: connection refused");
	ck_assert_uint_eq(rig.agent->scheduled_stops().count(200), 1);
}
END_TEST

// Agents started together spread out: the first report after a random part
// of one interval, then every interval +-10 %.
START_TEST(agent_report_times_are_jittered)
{
	AgentRig rig; // interval 5 s
	for (double u : {0.0, 0.25, 0.5, 0.999999}) {
		rig.random = u;
		const auto first = rig.agent->next_delay(true);
		const auto next = rig.agent->next_delay(false);
		ck_assert_int_eq(first.count(), static_cast<long>(5000 * u));
		ck_assert_int_eq(next.count(), static_cast<long>(4500 + 1000 * u));
	}
	rig.random = 7; // a broken source stays within the bounds
	ck_assert_int_eq(rig.agent->next_delay(false).count(), 5500);

	// The real source: 1,000 agents' first reports cover the interval, and
	// no two consecutive delays of one agent are all the same.
	auto real = AgentIo::production(MungeEndpoint{});
	std::vector<double> draws;
	for (int i = 0; i < 1000; ++i)
		draws.push_back(real.random());
	std::sort(draws.begin(), draws.end());
	ck_assert(draws.front() >= 0 && draws.back() < 1);
	ck_assert(draws[100] < 0.2 && draws[900] > 0.8); // spread, not bunched
	ck_assert(std::adjacent_find(draws.begin(), draws.end()) == draws.end());
}
END_TEST

// The thread waits the jittered first delay, not a whole interval, and not 0.
START_TEST(agent_thread_starts_after_a_random_delay)
{
	AgentRig rig;
	rig.random = 0.2; // 1 s of the 5 s interval
	std::atomic<int> reports{0};
	rig.answer = [&](const std::string &, const Report &r) -> Result<std::string> {
		++reports;
		return encode_orders(Orders{r.node, r.seq, {}, {}});
	};
	const auto start = std::chrono::steady_clock::now();
	rig.agent->start();
	while (reports == 0 && std::chrono::steady_clock::now() - start < 5s)
		std::this_thread::sleep_for(10ms);
	const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
	rig.agent.reset();
	ck_assert_int_eq(reports.load(), 1);
	ck_assert_msg(waited >= 0.95 && waited < 1.5, "first report after %.2f s", waited);
}
END_TEST

// The agent's reports and the book's orders, end to end: what the agent

Suite *agent_suite()
{
	Suite *s = suite_create("agent");
	TCase *tc = tcase_create("agent");
	tcase_add_test(tc, agent_builds_reports_from_samples);
	tcase_add_test(tc, agent_thread_blocks_sigpipe);
	tcase_add_test(tc, agent_carries_out_stop_orders_when_due);
	tcase_add_test(tc, agent_ignores_answers_not_meant_for_it);
	tcase_add_test(tc, agent_follows_the_latest_answer_but_never_postpones_a_stop);
	tcase_add_test(tc, agent_tries_the_controllers_in_order);
	tcase_add_test(tc, agent_report_times_are_jittered);
	tcase_add_test(tc, agent_thread_starts_after_a_random_delay);
	suite_add_tcase(s, tc);
	return s;
}
