// SPDX-License-Identifier: GPL-2.0-or-later
// The report port under load and abuse: idle and slow clients, a thousand
// agents at once, deadlines, and the limits per address and in total.
#include "wire_scene.hpp"

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

using namespace flexslurm;
using namespace wire_scene;

// Idle connections and slow-loris clients (a header, then a byte now and
// then) cost a real client nothing: the port serves them side by side.
START_TEST(port_serves_past_idle_and_slow_clients)
{
	handled = 0;
	auto listener = start_echo();
	const uint16_t port = listener->port();
	std::vector<int> idle = {raw_connect(port), raw_connect(port), raw_connect_from(port, "127.0.0.3")};
	std::vector<int> slow = {raw_connect_from(port, "127.0.0.4"), raw_connect_from(port, "127.0.0.5")};
	for (int fd : slow)
		send_all(fd, header(100) + "s");
	usleep(50000); // accepted before the real client comes
	const auto start = std::chrono::steady_clock::now();
	int answered = 0;
	double slowest = 0;
	while (seconds_since(start) < 3.0) {
		const auto asked = std::chrono::steady_clock::now();
		auto reply = exchange("127.0.0.1", port, "real", "", 1s);
		ck_assert_msg(reply, "after %.2f s: %s", seconds_since(start), reply.error().c_str());
		ck_assert_str(*reply, "re:real from 127.0.0.1");
		slowest = std::max(slowest, seconds_since(asked));
		++answered;
		for (int fd : slow)
			(void)send(fd, "s", 1, MSG_NOSIGNAL);
		usleep(100000);
	}
	std::printf("report: %d answers in 3 s past %zu idle and %zu slow clients, slowest %.3f s\n",
	            answered, idle.size(), slow.size(), slowest);
	std::fflush(stdout);
	ck_assert_int_ge(answered, 10);
	ck_assert_int_eq(handled.load(), answered); // no partial frame was handed on
	for (int fd : idle)
		close(fd);
	for (int fd : slow)
		close(fd);
}
END_TEST

// 1,000 agents report at the same moment, each from its node's address with
// a valid sealed report, past two idle connections and a slow one: every
// report is taken and answered within the agents' own timeout.
START_TEST(port_answers_a_thousand_agents_at_once)
{
	record_log();
	take_logged(LogLevel::Error);
	constexpr int agents = 1000;
	FakeMunge munge;
	IntakeRules r = rules();
	std::map<std::string, std::string> address_of;
	for (int i = 0; i < agents; ++i)
		address_of["n" + std::to_string(i)] = node_address(i);
	r.node_known = [&](const std::string &node) { return address_of.count(node) != 0; };
	r.node_matches_peer = [&](const std::string &node, const std::string &peer) {
		return address_of.at(node) == peer;
	};
	ReportIntake intake(r, munge.opener());
	const long now = 1700000000;
	std::vector<std::string> credentials;
	for (int i = 0; i < agents; ++i)
		credentials.push_back(munge.seal(report("n" + std::to_string(i), 1, 7, now)));
	auto listener =
	        Listener::start("127.0.0.1", 0, [&](std::string_view request, const std::string &peer) {
		        const auto accepted = intake.take(request, peer, at(now));
		        if (!accepted)
			        return std::string();
		        return encode_orders(Orders{accepted->node, accepted->seq, {{77, 30}}, {}});
	        });
	ck_assert_msg(listener, "%s", listener.error().c_str());
	const uint16_t port = (*listener)->port();
	const int idle1 = raw_connect_from(port, "127.0.0.3");
	const int idle2 = raw_connect_from(port, "127.0.0.4");
	const int slow = raw_connect_from(port, "127.0.0.5");
	send_all(slow, header(200) + "x");
	usleep(50000);

	std::atomic<int> ready{0};
	std::atomic<bool> go{false};
	std::vector<std::string> failures(agents);
	std::vector<double> took(agents);
	std::vector<std::thread> threads;
	threads.reserve(agents);
	for (int i = 0; i < agents; ++i)
		threads.emplace_back([&, i] {
			++ready;
			while (!go)
				std::this_thread::yield();
			const auto start = std::chrono::steady_clock::now();
			auto reply = exchange("127.0.0.1", port, credentials[static_cast<size_t>(i)],
			                      node_address(i), 3s); // the agents' timeout
			took[static_cast<size_t>(i)] = seconds_since(start);
			if (!reply) {
				failures[static_cast<size_t>(i)] = reply.error();
				return;
			}
			auto orders = parse_orders(*reply);
			if (!orders || orders->node != "n" + std::to_string(i) || orders->seq != 7 ||
			    orders->stops.size() != 1)
				failures[static_cast<size_t>(i)] = "wrong answer: " + *reply;
		});
	while (ready < agents)
		std::this_thread::yield();
	const auto start = std::chrono::steady_clock::now();
	go = true;
	for (std::thread &t : threads)
		t.join();
	const double all = seconds_since(start);
	int lost = 0;
	std::string first;
	for (const std::string &f : failures)
		if (!f.empty() && lost++ == 0)
			first = f;
	std::sort(took.begin(), took.end());
	std::printf(
	        "report: %d agents at once: %d lost, all done in %.2f s, median %.3f s, slowest %.3f s%s%s\n",
	        agents, lost, all, took[agents / 2], took.back(), lost ? "; first: " : "", first.c_str());
	std::fflush(stdout);
	ck_assert_int_eq(lost, 0);
	ck_assert_uint_eq(intake.accepted(), agents);
	for (const std::string &line : take_logged(LogLevel::Error)) // a limit closed a connection: say which
		std::printf("report: logged: %s\n", line.c_str());
	close(idle1);
	close(idle2);
	close(slow);
}
END_TEST

// A silent client is hung up on once the header deadline passes; one that
// sent a header but not the rest, once the request deadline passes.
START_TEST(port_deadlines_close_silent_clients)
{
	auto listener = start_echo();
	const uint16_t port = listener->port();
	const int silent = raw_connect(port);
	const int headed = raw_connect_from(port, "127.0.0.3");
	send_all(headed, header(50) + "partial");
	const double silent_for = seconds_until_closed(silent, 5);
	const double headed_for = seconds_until_closed(headed, 5);
	std::printf("report: silent client closed after %.2f s, half a request after %.2f s more\n",
	            silent_for, headed_for);
	std::fflush(stdout);
	ck_assert_msg(silent_for >= 0.4 && silent_for < 1.2, "silent for %.2f s", silent_for);
	ck_assert_msg(silent_for + headed_for >= 1.9 && silent_for + headed_for < 3.0, "%.2f s",
	              silent_for + headed_for);
	close(silent);
	close(headed);
}
END_TEST

// More than 8 connections from one address: its longest idle one is closed
// at once; other addresses are not touched, and a real request from that
// address still gets through.
START_TEST(port_limits_connections_per_address)
{
	record_log();
	take_logged(LogLevel::Error);
	handled = 0;
	auto listener = start_echo();
	const uint16_t port = listener->port();
	const int other = raw_connect_from(port, "127.0.0.8");
	std::vector<int> crowd;
	for (int i = 0; i < 8; ++i)
		crowd.push_back(raw_connect_from(port, "127.0.0.7"));
	usleep(100000);
	for (int fd : crowd)
		ck_assert(still_open(fd));
	crowd.push_back(raw_connect_from(port, "127.0.0.7"));
	const double closed_after = seconds_until_closed(crowd[0], 0.3);
	ck_assert_msg(closed_after >= 0, "the oldest idle connection from 127.0.0.7 is still open");
	for (size_t i = 1; i < crowd.size(); ++i)
		ck_assert_msg(still_open(crowd[i]), "connection %zu closed", i);
	ck_assert(still_open(other));
	auto reply = exchange("127.0.0.1", port, "busy address", "127.0.0.7", 1s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_str(*reply, "re:busy address from 127.0.0.7");
	ck_assert(still_open(other));
	const auto lines = take_logged(LogLevel::Error);
	ck_assert_uint_eq(lines.size(), 2); // the 9th idle connection, the real client
	const std::string per_address =
	        "reclaim listener: 8 connections open from 127.0.0.7 (the limit per address): closed its one idle longest";
	ck_assert_str(lines[0], per_address);
	close(other);
	for (int fd : crowd)
		close(fd);
}
END_TEST

// At the limit in total, a newcomer waits (in the kernel's backlog) until the
// connection idle longest has been idle for evict_after, which is then closed
// for it: a burst of real clients is never cut off, idle ones are.
START_TEST(port_limits_connections_in_total)
{
	record_log();
	take_logged(LogLevel::Error);
	ListenerLimits limits;
	limits.max_connections = 4;
	limits.max_per_address = 2;
	limits.evict_after = 300ms;
	limits.header_deadline = 3s; // only the limit closes anything here
	limits.request_deadline = 3s;
	auto started = Listener::start("127.0.0.1", 0, echo, limits);
	ck_assert_msg(started, "%s", started.error().c_str());
	const uint16_t port = (*started)->port();
	std::vector<int> idle;
	for (int i = 1; i <= 4; ++i)
		idle.push_back(raw_connect_from(port, "127.0.2." + std::to_string(i)));
	const auto start = std::chrono::steady_clock::now();
	auto reply = exchange("127.0.0.1", port, "fifth", "", 2s);
	const double waited = seconds_since(start);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_str(*reply, "re:fifth from 127.0.0.1");
	ck_assert_msg(waited >= 0.2 && waited < 1.0, "waited %.2f s", waited);
	ck_assert_msg(seconds_until_closed(idle[0], 0.1) >= 0, "the oldest idle one is still open");
	for (size_t i = 1; i < idle.size(); ++i)
		ck_assert_msg(still_open(idle[i]), "connection %zu closed", i);
	// The slot is free again once the reply is out: the next requests are
	// served at once, and close nothing.
	const auto quick = std::chrono::steady_clock::now();
	for (int i = 0; i < 10; ++i)
		ck_assert(exchange("127.0.0.1", port, "free", "", 2s));
	ck_assert_msg(seconds_since(quick) < 0.5, "%.2f s", seconds_since(quick));
	for (size_t i = 1; i < idle.size(); ++i)
		ck_assert_msg(still_open(idle[i]), "connection %zu closed", i);
	const auto lines = take_logged(LogLevel::Error);
	ck_assert_uint_eq(lines.size(), 1);
	const std::string in_total =
	        "reclaim listener: 4 connections open (the limit): closed the one idle longest, from 127.0.2.1";
	ck_assert_str(lines[0], in_total);

	// Both limits at once: the newcomer's own address gives up its slot, and
	// nobody else's connection is closed.
	idle.push_back(raw_connect_from(port, "127.0.2.4")); // 127.0.2.4's 2nd, the 4th in total
	usleep(350000);                                      // all of them evictable
	reply = exchange("127.0.0.1", port, "crowded", "127.0.2.4", 2s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_msg(seconds_until_closed(idle[3], 0.1) >= 0, "127.0.2.4's older one is still open");
	ck_assert(still_open(idle[1]) && still_open(idle[2]) && still_open(idle[4]));
	ck_assert_uint_eq(take_logged(LogLevel::Error).size(), 1);
	for (int fd : idle)
		close(fd);
}
END_TEST

// --- Munge --------------------------------------------------------------------------

Suite *channel_port_suite()
{
	Suite *s = suite_create("channel_port");
	TCase *port = tcase_create("port");
	tcase_set_timeout(port, 60); // 1,000 client threads on a small machine
	tcase_add_test(port, port_serves_past_idle_and_slow_clients);
	tcase_add_test(port, port_answers_a_thousand_agents_at_once);
	tcase_add_test(port, port_deadlines_close_silent_clients);
	tcase_add_test(port, port_limits_connections_per_address);
	tcase_add_test(port, port_limits_connections_in_total);
	suite_add_tcase(s, port);
	return s;
}
