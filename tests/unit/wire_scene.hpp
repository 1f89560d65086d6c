// SPDX-License-Identifier: GPL-2.0-or-later
// What the wire tests share (test_report, test_intake, test_channel,
// test_channel_port, test_munge): a fake Munge and intake rules, a log
// sink that keeps error lines, report builders, and raw sockets for
// clients that misbehave on purpose.
#pragma once

#include "log_capture.hpp"
#include "suites.hpp"

#include "core/io/channel.hpp"
#include "core/model/report.hpp"
#include "core/model/report_intake.hpp"
#include "core/util/log.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wire_scene
{

using namespace flexslurm;
using namespace std::chrono_literals;

inline Instant at(long s)
{
	return Instant(Seconds(s));
}

inline bool contains(const std::string &text, const std::string &part)
{
	return text.find(part) != std::string::npos;
}

// --- Log capture, a fake Munge, intake rules ---------------------------------------

// A stand-in for munged: credentials are keys into a table of what they "seal".
struct FakeMunge {
	std::map<std::string, Sealed> sealed;
	int next = 0;

	std::string seal(const std::string &payload, uid_t uid = 0, bool replayed = false)
	{
		const std::string cred = "cred-" + std::to_string(next++);
		sealed[cred] = Sealed{payload, uid, 0, replayed};
		return cred;
	}
	std::string seal(const Report &r, uid_t uid = 0, bool replayed = false)
	{
		return seal(encode_report(r), uid, replayed);
	}
	Opener opener()
	{
		return [this](std::string_view cred) -> Result<Sealed> {
			if (cred == "throw")
				throw std::runtime_error("opener exploded");
			const auto found = sealed.find(std::string(cred));
			if (found == sealed.end())
				return Result<Sealed>::failure("Invalid credential format");
			return found->second;
		};
	}
};

inline IntakeRules rules()
{
	IntakeRules r;
	r.allowed_uids = {0, 64030};
	r.node_known = [](const std::string &node) { return node == "n1" || node == "n2" || node == "n3"; };
	r.node_matches_peer = [](const std::string &node, const std::string &peer) {
		return (node == "n1" && peer == "10.0.0.1") || (node == "n2" && peer == "10.0.0.2") ||
		       (node == "n3" && peer == "10.0.0.3");
	};
	r.min_interval = 5s;
	r.max_age = 60s;
	return r;
}

inline Report report(const std::string &node, uint64_t epoch, uint64_t seq, long sent_at)
{
	Report r;
	r.node = node;
	r.epoch = epoch;
	r.seq = seq;
	r.sent_at = sent_at;
	DeviceReport d;
	d.busy_percent = 3;
	r.devices.push_back(d);
	return r;
}

// --- Raw clients and an echoing listener -------------------------------------------

inline double seconds_since(std::chrono::steady_clock::time_point start)
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A blocking client socket to 127.0.0.1:port, for clients that misbehave on
// purpose, speaking from `source` if given (any address of 127.0.0.0/8 is
// this host's).
inline int raw_connect_from(uint16_t port, const std::string &source)
{
	const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	if (!source.empty()) {
		sockaddr_in local{};
		local.sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, source.c_str(), &local.sin_addr), 1);
		ck_assert_int_eq(bind(fd, reinterpret_cast<sockaddr *>(&local), sizeof local), 0);
	}
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_port = htons(port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
	timeval tv{5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

inline int raw_connect(uint16_t port)
{
	return raw_connect_from(port, "");
}

inline void send_all(int fd, const std::string &data)
{
	ck_assert_int_eq(send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

inline std::string header(uint32_t length)
{
	const char bytes[4] = {static_cast<char>(length >> 24), static_cast<char>(length >> 16),
	                       static_cast<char>(length >> 8), static_cast<char>(length)};
	return std::string(bytes, 4);
}

// What the listener's test handler does: echo, with the peer; some requests misbehave.
inline std::atomic<int> handled{0};

inline std::string echo(std::string_view request, const std::string &peer)
{
	++handled;
	if (request == "silence")
		return "";
	if (request == "throw")
		throw std::runtime_error("handler exploded");
	if (request == "huge")
		return std::string(max_message_bytes + 1, 'h');
	return "re:" + std::string(request) + " from " + peer;
}

inline std::unique_ptr<Listener> start_echo(const std::string &address = "127.0.0.1")
{
	auto listener = Listener::start(address, 0, echo);
	ck_assert_msg(listener, "%s", listener.error().c_str());
	ck_assert_uint_ne((*listener)->port(), 0);
	return std::move(*listener);
}

// --- Many clients from many addresses ------------------------------------------------

// Seconds until the listener hangs up on `fd` (recv sees the end), or -1 if it
// has not within `wait` seconds.
inline double seconds_until_closed(int fd, double wait)
{
	const auto start = std::chrono::steady_clock::now();
	pollfd p{fd, POLLIN, 0};
	if (poll(&p, 1, static_cast<int>(wait * 1000)) <= 0)
		return -1;
	char buf[64];
	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
	return seconds_since(start);
}

// Whether the listener still holds `fd` open (nothing to read, no end).
inline bool still_open(int fd)
{
	char byte = 0;
	const ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// The address of simulated node i: 127.1.x.y, one per node, so that the
// per-address limit is no limit to them (as on a cluster).
inline std::string node_address(int i)
{
	return "127.1." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1);
}

} // namespace wire_scene
