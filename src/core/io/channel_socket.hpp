// SPDX-License-Identifier: GPL-2.0-or-later
// What both ends of the channel (channel.hpp) share: name resolution, peer
// addresses as text, the frame header, deadlines and their error texts.
// Internal to core/io/channel_*.cpp.
#pragma once

#include "core/util/result.hpp"
#include "core/util/time.hpp"
#include "core/util/unique_fd.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace flexslurm::channel
{

using Clock = std::chrono::steady_clock;
using Fd = UniqueFd;

std::string errno_text(int error);

struct AddrinfoFree {
	void operator()(addrinfo *list) const noexcept { freeaddrinfo(list); }
};
using Addresses = std::unique_ptr<addrinfo, AddrinfoFree>;

// getaddrinfo for stream sockets; host "" = the wildcard (with AI_PASSIVE).
Result<Addresses> resolve(const std::string &host, const char *service, int flags);

// Numeric text of a socket address; IPv4-mapped IPv6 addresses (a dual-stack
// listener's IPv4 clients) as plain IPv4, so that callers compare with NodeAddr.
std::string address_text(const sockaddr_storage &addr);

enum class Io { Done, Closed, TimedOut, Woken, TooLarge, Failed };

struct IoStatus {
	Io io = Io::Done;
	int error = 0; // errno for Io::Failed
};

// What went wrong, for a log line or an error value; `limit` is the deadline
// a TimedOut had.
std::string io_text(const IoStatus &s, Seconds limit);

// Milliseconds left before `deadline`, rounded up (a poll must not return just
// before it and spin), at least 0.
int millis_left(Clock::time_point deadline);

// A listening socket on address:port (non-blocking, close-on-exec); "" =
// every address, dual-stack where the host has IPv6.
Result<Fd> listen_on(const std::string &address, uint16_t port);

// A frame: a 4-byte big-endian length, then the body (at most
// max_message_bytes, which the callers check).
constexpr size_t frame_header_bytes = 4;
std::string framed(std::string_view body);
uint64_t frame_length(const unsigned char (&header)[frame_header_bytes]) noexcept;

} // namespace flexslurm::channel
