// SPDX-License-Identifier: GPL-2.0-or-later
// Idle reclaim, the transport: a small TCP exchange between the node agents
// (exchange, channel_client.cpp) and the listener thread in slurmctld
// (Listener, channel_listener.cpp). One request and one reply per
// connection, each a frame: a 4-byte big-endian length, then the bytes.
// Everything is bounded: frame sizes (max_message_bytes of report.hpp,
// refused before reading), and the time any socket operation may take, so
// that neither a silent client nor a dead controller can stall a Slurm
// daemon's thread. What travels is sealed by Munge (munge.hpp).
#pragma once

#include "core/util/result.hpp"
#include "core/util/time.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

// Sends `request` to host:port as one frame and returns the reply frame. Every
// step after name resolution (connect, write, read) shares one deadline,
// `timeout` from the call; name resolution is the resolver's own (use numeric
// addresses where that matters). A non-empty `bind_address` is bound before
// connecting, so that a node speaks from its own NodeAddr. A connection closed
// without a reply is an error.
Result<std::string> exchange(const std::string &host, uint16_t port, std::string_view request,
                             const std::string &bind_address /* empty: none */, Seconds timeout);

// exchange(), and whether it failed because `bind_address` is not this host's
// (bind: EADDRNOTAVAIL, nothing sent): the one failure worth trying again
// without it.
struct Exchanged {
	Result<std::string> reply;
	bool bind_address_not_local = false;
};
Exchanged exchange_from(const std::string &host, uint16_t port, std::string_view request,
                        const std::string &bind_address, Seconds timeout);

// Every address of `host` as numeric text (IPv4 or IPv6), through the
// resolver (getaddrinfo, core/io/channel_socket.cpp); none when it fails.
std::vector<std::string> numeric_addresses(const std::string &host);

// What one listener holds at most, and how long it waits. Whatever is over a
// limit is closed at once, the connection idle longest first.
struct ListenerLimits {
	// Open connections in total. At the limit, the one idle longest is closed
	// for a new one if it has been idle at least `evict_after`; otherwise new
	// connections wait in the kernel's backlog until a slot frees.
	size_t max_connections = 256;
	size_t max_per_address = 8; // open at once from one client address
	std::chrono::milliseconds evict_after{100};
	std::chrono::milliseconds header_deadline{500};   // the 4-byte length, from the accept
	std::chrono::milliseconds request_deadline{2000}; // the whole request, from the accept
	std::chrono::milliseconds write_deadline{2000};   // the whole reply
};

class Listener
{
	struct Impl;
	struct Key { // only start() can make one: the public constructor is for make_unique
		explicit Key() = default;
	};

public:
	// The reply to send ("" = close without reply). `peer` is the client's address
	// as numeric text ("127.0.0.1", "::1"; IPv4-mapped IPv6 addresses as plain IPv4).
	// Runs on the listener thread, one request at a time (keep it short: every
	// other connection waits meanwhile); an exception is logged and the
	// connection closed.
	using Handler = std::function<std::string(std::string_view request, const std::string &peer)>;

	static constexpr Seconds read_deadline{2};  // the default request_deadline
	static constexpr Seconds write_deadline{2}; // the default write_deadline

	// `address` "" listens on every address (IPv6 and IPv4 where the host has
	// IPv6, IPv4 only otherwise); port 0 picks a free port (see port()).
	static Result<std::unique_ptr<Listener>> start(const std::string &address, uint16_t port,
	                                               Handler handler, ListenerLimits limits = {});
	// Wakes the thread (eventfd), joins it, closes the sockets: prompt even while
	// clients are connected; a handler call in progress is waited for.
	~Listener();
	Listener(const Listener &) = delete;
	Listener &operator=(const Listener &) = delete;

	uint16_t port() const noexcept; // the bound port

	Listener(Key, std::unique_ptr<Impl> impl);

private:
	std::unique_ptr<Impl> impl_;
};

} // namespace flexslurm
