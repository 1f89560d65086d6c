// SPDX-License-Identifier: GPL-2.0-or-later
// Idle reclaim's transport: the TCP framing over 127.0.0.1 with hostile
// clients (oversized, partial, silent), deadlines, shutdown, and the
// listener feeding the intake.
#include "wire_scene.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace flexslurm;
using namespace wire_scene;

START_TEST(listener_round_trips)
{
	handled = 0;
	auto listener = start_echo();
	const uint16_t port = listener->port();
	auto reply = exchange("127.0.0.1", port, "hello", "", 3s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_str(*reply, "re:hello from 127.0.0.1");
	// One connection per request, many requests.
	for (int i = 0; i < 20; ++i)
		ck_assert(exchange("127.0.0.1", port, std::to_string(i), "", 3s));
	// The biggest frame there is, both ways; an empty one too.
	const std::string big(max_message_bytes - 100, 'b');
	reply = exchange("localhost", port, big, "", 3s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_uint_eq(reply->size(), big.size() + 18);
	reply = exchange("127.0.0.1", port, "", "", 3s);
	ck_assert(reply && *reply == "re: from 127.0.0.1");
	// Speaking from a chosen address (a node's NodeAddr): the listener sees it.
	reply = exchange("127.0.0.1", port, "bound", "127.0.0.2", 3s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_str(*reply, "re:bound from 127.0.0.2");
	auto unbound = exchange("127.0.0.1", port, "x", "::1", 3s);
	ck_assert(!unbound);
	ck_assert_str(unbound.error(),
	              "127.0.0.1:" + std::to_string(port) + ": no address of 127.0.0.1 in the family of ::1");
	ck_assert_int_eq(handled.load(), 24);

	// Requests that get no reply: the client is told, the listener goes on.
	auto none = exchange("127.0.0.1", port, "silence", "", 3s);
	ck_assert(!none);
	ck_assert_msg(contains(none.error(), "closed the connection without a reply"), "%s",
	              none.error().c_str());
	record_log();
	take_logged(LogLevel::Error);
	ck_assert(!exchange("127.0.0.1", port, "throw", "", 3s));
	ck_assert(!exchange("127.0.0.1", port, "huge", "", 3s));
	const auto lines = take_logged(LogLevel::Error);
	ck_assert_uint_eq(lines.size(), 2);
	ck_assert_str(lines[0], "reclaim listener: request from 127.0.0.1 not handled: handler exploded");
	ck_assert_str(lines[1],
	              "reclaim listener: reply of 65537 bytes to 127.0.0.1 is over the limit, not sent");
	ck_assert(exchange("127.0.0.1", port, "still here", "", 3s));

	// Too big to send: refused before connecting.
	auto too_big = exchange("127.0.0.1", port, std::string(max_message_bytes + 1, 'x'), "", 3s);
	ck_assert(!too_big);
	ck_assert_str(too_big.error(), "request of 65537 bytes is over the 65536-byte limit");
}
END_TEST

START_TEST(listener_on_every_address)
{
	auto listener = start_echo("");
	auto reply = exchange("127.0.0.1", listener->port(), "v4", "", 3s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_str(*reply, "re:v4 from 127.0.0.1"); // not ::ffff:127.0.0.1
	reply = exchange("::1", listener->port(), "v6", "", 3s);
	if (reply)
		ck_assert_str(*reply, "re:v6 from ::1");
	else
		std::printf("report: no IPv6 loopback here (%s), IPv6 not tested\n", reply.error().c_str());
	// A port in use is an error value.
	auto taken = Listener::start("", listener->port(), echo);
	ck_assert(!taken);
	ck_assert_msg(contains(taken.error(), "Address already in use"), "%s", taken.error().c_str());
	// An address this host does not have (TEST-NET-1).
	ck_assert(!Listener::start("192.0.2.1", 0, echo));
}
END_TEST

START_TEST(listener_refuses_hostile_clients)
{
	record_log();
	take_logged(LogLevel::Error);
	handled = 0;
	auto listener = start_echo();
	const uint16_t port = listener->port();

	// Oversized: refused from the header alone, connection closed.
	int fd = raw_connect(port);
	send_all(fd, header(max_message_bytes + 1) + "abc");
	char byte = 0;
	ck_assert_int_le(recv(fd, &byte, 1, 0), 0);
	close(fd);
	ck_assert(exchange("127.0.0.1", port, "next", "", 3s));

	// A partial frame is never handed to the handler.
	fd = raw_connect(port);
	send_all(fd, header(100) + std::string(50, 'p'));
	shutdown(fd, SHUT_WR);
	ck_assert_int_le(recv(fd, &byte, 1, 0), 0);
	close(fd);
	// Half a header either.
	fd = raw_connect(port);
	send_all(fd, std::string(2, '\0'));
	close(fd);
	ck_assert(exchange("127.0.0.1", port, "next", "", 3s));
	ck_assert_int_eq(handled.load(), 2);

	// A silent client holds the listener for its deadline at most.
	const int silent = raw_connect(port);
	const auto start = std::chrono::steady_clock::now();
	auto reply = exchange("127.0.0.1", port, "after silence", "", 5s);
	const double waited = seconds_since(start);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_msg(waited < Listener::read_deadline.count() + 1.0, "waited %.2f s", waited);
	ck_assert_int_le(recv(silent, &byte, 1, 0), 0); // and it was hung up on
	close(silent);
	// A slow client (a byte at a time) is cut off at the same deadline.
	fd = raw_connect(port);
	send_all(fd, header(10));
	const auto slow_start = std::chrono::steady_clock::now();
	while (seconds_since(slow_start) < Listener::read_deadline.count() + 0.5) {
		if (send(fd, "s", 1, MSG_NOSIGNAL) != 1)
			break;
		usleep(300000);
	}
	ck_assert_int_le(recv(fd, &byte, 1, 0), 0);
	close(fd);
	ck_assert_int_eq(handled.load(), 3);

	const auto lines = take_logged(LogLevel::Error);
	ck_assert_uint_eq(lines.size(), 1); // the oversized frame; timeouts are verbose
	ck_assert_str(lines[0],
	              "reclaim listener: refused a frame of 65537 bytes from 127.0.0.1 (limit 65536)");
}
END_TEST

START_TEST(listener_stops_promptly)
{
	auto listener = start_echo();
	const uint16_t port = listener->port();
	// Mid-request: the thread waits for a silent client when told to stop.
	const int silent = raw_connect(port);
	usleep(100000);
	auto start = std::chrono::steady_clock::now();
	listener.reset();
	ck_assert_msg(seconds_since(start) < 0.5, "took %.2f s", seconds_since(start));
	char byte = 0;
	ck_assert_int_le(recv(silent, &byte, 1, 0), 0);
	close(silent);
	// The port is closed: the client fails at once.
	start = std::chrono::steady_clock::now();
	auto refused = exchange("127.0.0.1", port, "anyone?", "", 3s);
	ck_assert(!refused);
	ck_assert_msg(contains(refused.error(), "Connection refused"), "%s", refused.error().c_str());
	ck_assert(seconds_since(start) < 0.5);
	// Idle: just as prompt.
	listener = start_echo();
	start = std::chrono::steady_clock::now();
	listener.reset();
	ck_assert(seconds_since(start) < 0.5);
}
END_TEST

START_TEST(exchange_times_out)
{
	// A server that never accepts: the kernel completes the connection, nobody answers.
	const int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(server, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
	ck_assert_int_eq(listen(server, 4), 0);
	socklen_t length = sizeof addr;
	getsockname(server, reinterpret_cast<sockaddr *>(&addr), &length);
	const auto start = std::chrono::steady_clock::now();
	auto reply = exchange("127.0.0.1", ntohs(addr.sin_port), "hello?", "", 1s);
	const double waited = seconds_since(start);
	ck_assert(!reply);
	ck_assert_msg(contains(reply.error(), "reading the reply: timed out (1 s)"), "%s",
	              reply.error().c_str());
	ck_assert_msg(waited >= 0.9 && waited < 1.5, "waited %.2f s", waited);
	close(server);
	ck_assert(!exchange("", 1, "x", "", 1s));
}
END_TEST

// The pieces together as slurmctld uses them: a framed credential in, orders out.
START_TEST(listener_feeds_the_intake)
{
	record_log();
	FakeMunge munge;
	IntakeRules r = rules();
	r.node_matches_peer = [](const std::string &node, const std::string &peer) {
		return node == "n1" && peer == "127.0.0.1";
	};
	ReportIntake intake(r, munge.opener());
	const long now = 1700000000;
	auto listener =
	        Listener::start("127.0.0.1", 0, [&](std::string_view request, const std::string &peer) {
		        const auto accepted = intake.take(request, peer, at(now));
		        if (!accepted)
			        return std::string();
		        Orders o;
		        o.node = accepted->node;
		        o.seq = accepted->seq;
		        o.stops.push_back({77, 30});
		        return encode_orders(o);
	        });
	ck_assert(listener);
	auto reply = exchange("127.0.0.1", (*listener)->port(), munge.seal(report("n1", 1, 9, now)), "", 3s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	auto orders = parse_orders(*reply);
	ck_assert(orders && orders->seq == 9 && orders->stops.size() == 1 && orders->stops[0].job == 77);
	ck_assert(!exchange("127.0.0.1", (*listener)->port(), munge.seal(report("n2", 1, 9, now)), "", 3s));
	ck_assert_uint_eq(intake.dropped(DropReason::WrongAddress), 1);
	ck_assert_uint_eq(intake.accepted(), 1);
	take_logged(LogLevel::Error);
}
END_TEST

Suite *channel_suite()
{
	Suite *s = suite_create("channel");
	TCase *channel = tcase_create("channel");
	tcase_set_timeout(channel, 30); // real sockets and deadlines of a few seconds
	tcase_add_test(channel, listener_round_trips);
	tcase_add_test(channel, listener_on_every_address);
	tcase_add_test(channel, listener_refuses_hostile_clients);
	tcase_add_test(channel, listener_stops_promptly);
	tcase_add_test(channel, exchange_times_out);
	tcase_add_test(channel, listener_feeds_the_intake);
	suite_add_tcase(s, channel);
	return s;
}
