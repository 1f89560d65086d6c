// Idle reclaim, the transport: Munge credentials around the report and order
// texts (report.hpp), and a small TCP exchange between the node agents and
// the listener thread in slurmctld. One request and one reply per
// connection, each a frame: a 4-byte big-endian length, then the bytes.
// Everything is bounded: frame sizes (max_message_bytes, refused before
// reading), and the time any socket operation may take, so that neither a
// silent client nor a dead controller can stall a Slurm daemon's thread.
#pragma once

#include "lending.hpp"
#include "report.hpp"
#include "result.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace flexslurm
{

struct MungeEndpoint {
	std::string socket; // empty: munge's default socket
};

// The munge socket slurm.conf's AuthInfo names ("socket=/path,cred_expire=..."),
// or "" for munge's default: the channel talks to the munged Slurm uses.
std::string munge_socket_of(std::string_view authinfo);

// munge_encode with munge's default TTL; fails if the credential would not fit
// in one frame.
Result<std::string> munge_seal(const MungeEndpoint &ep, std::string_view payload);
// munge_decode. EMUNGE_CRED_REPLAYED gives a Sealed with replayed=true (not an
// error: the intake counts it); other failures are error values with munge's text.
Result<Sealed> munge_open(const MungeEndpoint &ep, std::string_view credential);

// Sends `request` to host:port as one frame and returns the reply frame. Every
// step after name resolution (connect, write, read) shares one deadline,
// `timeout` from the call; name resolution is the resolver's own (use numeric
// addresses where that matters). A non-empty `bind_address` is bound before
// connecting, so that a node speaks from its own NodeAddr. A connection closed
// without a reply is an error.
Result<std::string> exchange(const std::string &host, uint16_t port, std::string_view request,
                             const std::string &bind_address /* empty: none */, Seconds timeout);

// A thread that serves connections one at a time: reads one frame (all of it
// within read_deadline of the accept, at most max_message_bytes, or the
// connection is closed), hands it to the handler, writes the reply frame.
class Listener
{
	struct Impl;
	struct Key { // only start() can make one: the public constructor is for make_unique
		explicit Key() = default;
	};

public:
	// The reply to send ("" = close without reply). `peer` is the client's address
	// as numeric text ("127.0.0.1", "::1"; IPv4-mapped IPv6 addresses as plain IPv4).
	// Runs on the listener thread; an exception is logged and the connection closed.
	using Handler = std::function<std::string(std::string_view request, const std::string &peer)>;

	static constexpr Seconds read_deadline{2};  // for the whole request, from the accept
	static constexpr Seconds write_deadline{2}; // for the whole reply

	// `address` "" listens on every address (IPv6 and IPv4 where the host has
	// IPv6, IPv4 only otherwise); port 0 picks a free port (see port()).
	static Result<std::unique_ptr<Listener>> start(const std::string &address, uint16_t port,
	                                               Handler handler);
	// Wakes the thread (eventfd), joins it, closes the sockets: prompt even while
	// a client is being read from; a handler call in progress is waited for.
	~Listener();
	Listener(const Listener &) = delete;
	Listener &operator=(const Listener &) = delete;

	uint16_t port() const noexcept; // the bound port

	Listener(Key, std::unique_ptr<Impl> impl);

private:
	std::unique_ptr<Impl> impl_;
};

} // namespace flexslurm
