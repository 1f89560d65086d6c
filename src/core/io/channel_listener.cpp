// SPDX-License-Identifier: GPL-2.0-or-later
// The listener in slurmctld: the report port's event loop (one thread, one
// poll over every connection), with its limits on connections, time and
// frame sizes.
#include "core/io/channel.hpp"
#include "core/io/channel_socket.hpp"
#include "core/model/report.hpp"
#include "core/util/log.hpp"
#include "core/util/throttle.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

namespace flexslurm
{

using namespace channel;

namespace
{

// At most 10 lines a minute; past that, the rest are counted and one line a
// minute is let through with the count. For the listener's own complaints
// (silent or oversized clients), which anyone who can reach the port can cause.
class LogLimiter
{
public:
	void operator()(LogLevel level, const std::string &message)
	{
		const Instant now(std::chrono::duration_cast<Seconds>(Clock::now().time_since_epoch()));
		const auto pass = throttle_.admit("listener", now);
		if (!pass)
			return;
		if (pass->held == 0)
			log(level, message);
		else
			log(level,
			    message + " (" + std::to_string(pass->held) + " similar lines not logged)");
	}

private:
	LogThrottle throttle_{Seconds(60), 10, 1};
};

// One client of the listener, from its accept to its close.
struct Connection {
	Fd fd;
	std::string peer;
	Clock::time_point accepted;
	Clock::time_point last_active; // the accept, or the last byte in or out
	unsigned char header[frame_header_bytes] = {};
	size_t header_got = 0;
	size_t announced = 0; // the body's length, once the header is in
	std::string body;     // grows as bytes arrive, never past `announced`
	bool writing = false;
	std::string reply; // the frame being written
	size_t reply_sent = 0;
	Clock::time_point write_by{};
	bool closed = false;
};

std::string millis_text(std::chrono::milliseconds d)
{
	return std::to_string(d.count()) + " ms";
}

} // namespace

struct Listener::Impl {
	Fd listen_fd;
	Fd wake_fd;
	uint16_t port = 0;
	Handler handler;
	ListenerLimits limits;
	LogLimiter limited_log;
	std::vector<std::unique_ptr<Connection>> connections; // in accept order
	Clock::time_point accept_paused_until{};
	bool accept_failing = false;
	std::thread thread;

	void run() noexcept;
	void loop();
	void accept_some();
	void read_from(Connection &c);
	void respond(Connection &c);
	void write_to(Connection &c);
	void expire(Clock::time_point now);
	Clock::time_point deadline_of(const Connection &c) const;
	// The open connection idle longest (from `peer` only, if given); nullptr if none.
	Connection *longest_idle(const std::string *peer);
	size_t open_count(const std::string *peer) const;
	static void close(Connection &c) noexcept
	{
		c.fd.reset();
		c.closed = true;
		c.body = std::string();
		c.reply = std::string();
	}
};

void Listener::Impl::run() noexcept
{
	try {
		loop();
	} catch (const std::exception &e) {
		log_error(std::string("reclaim listener stopped: ") + e.what());
	} catch (...) {
		log_error("reclaim listener stopped: unknown exception");
	}
}

Clock::time_point Listener::Impl::deadline_of(const Connection &c) const
{
	if (c.writing)
		return c.write_by;
	if (c.header_got < sizeof c.header)
		return c.accepted + limits.header_deadline;
	return c.accepted + limits.request_deadline;
}

size_t Listener::Impl::open_count(const std::string *peer) const
{
	return static_cast<size_t>(std::count_if(connections.begin(), connections.end(), [&](const auto &c) {
		return !c->closed && (!peer || c->peer == *peer);
	}));
}

Connection *Listener::Impl::longest_idle(const std::string *peer)
{
	Connection *found = nullptr;
	for (const auto &c : connections)
		if (!c->closed && (!peer || c->peer == *peer) &&
		    (!found || c->last_active < found->last_active))
			found = c.get();
	return found;
}

void Listener::Impl::loop()
{
	std::vector<pollfd> fds;
	for (;;) {
		auto now = Clock::now();
		auto wake_at = Clock::time_point::max();
		for (const auto &c : connections)
			wake_at = std::min(wake_at, deadline_of(*c));
		// Accept unless accept() is failing (out of descriptors), or every
		// slot is taken by a connection not idle long enough to be closed for
		// a newcomer: those wait in the kernel's backlog meanwhile.
		bool accepting = now >= accept_paused_until;
		if (!accepting)
			wake_at = std::min(wake_at, accept_paused_until);
		if (accepting && open_count(nullptr) >= limits.max_connections) {
			const Connection *idle = longest_idle(nullptr);
			const auto evictable = idle ? idle->last_active + limits.evict_after : now;
			if (evictable > now) {
				accepting = false;
				wake_at = std::min(wake_at, evictable);
			}
		}
		fds.clear();
		fds.push_back({wake_fd.get(), POLLIN, 0});
		fds.push_back({listen_fd.get(), static_cast<short>(accepting ? POLLIN : 0), 0});
		for (const auto &c : connections)
			fds.push_back({c->fd.get(), static_cast<short>(c->writing ? POLLOUT : POLLIN), 0});
		const int timeout_ms = wake_at == Clock::time_point::max() ? -1 : millis_left(wake_at);
		const int n = poll(fds.data(), static_cast<nfds_t>(fds.size()), timeout_ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_error("reclaim listener: poll: " + errno_text(errno) + "; stopped");
			return;
		}
		if (fds[0].revents != 0)
			return;
		if (fds[1].revents & (POLLERR | POLLNVAL)) {
			log_error("reclaim listener: listening socket failed; stopped");
			return;
		}
		// Clients first, then newcomers: a request that is in is served
		// before any deadline or limit can close its connection.
		const size_t polled = connections.size();
		for (size_t i = 0; i < polled; ++i) {
			Connection &c = *connections[i];
			if (fds[i + 2].revents == 0 || c.closed)
				continue;
			if (c.writing)
				write_to(c);
			else
				read_from(c);
		}
		if (fds[1].revents & POLLIN)
			accept_some();
		expire(Clock::now());
		std::erase_if(connections, [](const auto &c) { return c->closed; });
	}
}

void Listener::Impl::accept_some()
{
	// A bounded batch per pass, so that clients already connected are not
	// starved by a flood of new ones.
	for (int batch = 0; batch < 64; ++batch) {
		const auto now = Clock::now();
		Connection *evict = nullptr;
		if (open_count(nullptr) >= limits.max_connections) {
			evict = longest_idle(nullptr);
			if (!evict || now - evict->last_active < limits.evict_after)
				return; // the rest wait in the backlog
		}
		sockaddr_storage addr{};
		socklen_t length = sizeof addr;
		Fd fd(accept4(listen_fd.get(), reinterpret_cast<sockaddr *>(&addr), &length,
		              SOCK_NONBLOCK | SOCK_CLOEXEC));
		if (!fd) {
			const int error = errno;
			if (error == EAGAIN || error == EWOULDBLOCK)
				return;
			if (error == EINTR || error == ECONNABORTED || error == EPROTO)
				continue;
			// Out of descriptors or memory: the backlog stays readable, so pause
			// accepting instead of spinning, and say so once per episode.
			if (!accept_failing)
				log_error("reclaim listener: accept: " + errno_text(error));
			accept_failing = true;
			accept_paused_until = now + std::chrono::milliseconds(200);
			return;
		}
		accept_failing = false;
		auto c = std::make_unique<Connection>();
		c->fd = std::move(fd);
		c->peer = address_text(addr);
		c->accepted = now;
		c->last_active = now;
		// Room for the newcomer: its own address's longest idle connection
		// if that address is at its limit (a slot in total too), else the
		// longest idle of all if every slot is taken.
		if (open_count(&c->peer) >= limits.max_per_address) {
			if (Connection *idle = longest_idle(&c->peer)) {
				limited_log(LogLevel::Error,
				            "reclaim listener: " + std::to_string(limits.max_per_address) +
				                    " connections open from " + c->peer +
				                    " (the limit per address): closed its one idle longest");
				close(*idle);
			}
		} else if (evict) {
			const std::string limit = std::to_string(limits.max_connections);
			limited_log(
			        LogLevel::Error,
			        "reclaim listener: " + limit +
			                " connections open (the limit): closed the one idle longest, from " +
			                evict->peer);
			close(*evict);
		}
		connections.push_back(std::move(c));
		read_from(*connections.back()); // the request is often in already
	}
}

void Listener::Impl::read_from(Connection &c)
{
	char chunk[16384];
	for (;;) {
		if (c.header_got == sizeof c.header && c.body.size() == c.announced) {
			respond(c);
			return;
		}
		const bool in_header = c.header_got < sizeof c.header;
		const size_t want = in_header ? sizeof c.header - c.header_got
		                              : std::min(sizeof chunk, c.announced - c.body.size());
		char *into = in_header ? reinterpret_cast<char *>(c.header) + c.header_got : chunk;
		const ssize_t n = recv(c.fd.get(), into, want, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			const IoStatus status = n == 0 ? IoStatus{Io::Closed} : IoStatus{Io::Failed, errno};
			limited_log(LogLevel::Verbose, "reclaim listener: no complete request from " +
			                                       c.peer + ": " +
			                                       io_text(status, read_deadline));
			close(c);
			return;
		}
		c.last_active = Clock::now();
		const auto got = static_cast<size_t>(n);
		if (!in_header) {
			c.body.append(chunk, got);
			continue;
		}
		c.header_got += got;
		if (c.header_got < sizeof c.header)
			continue;
		const uint64_t announced = frame_length(c.header);
		if (announced > max_message_bytes) {
			limited_log(LogLevel::Error, "reclaim listener: refused a frame of " +
			                                     std::to_string(announced) + " bytes from " +
			                                     c.peer + " (limit " +
			                                     std::to_string(max_message_bytes) + ")");
			close(c);
			return;
		}
		c.announced = static_cast<size_t>(announced);
	}
}

void Listener::Impl::respond(Connection &c)
{
	std::string reply;
	try {
		reply = handler ? handler(c.body, c.peer) : std::string();
	} catch (const std::exception &e) {
		log_error("reclaim listener: request from " + c.peer + " not handled: " + e.what());
		close(c);
		return;
	} catch (...) {
		log_error("reclaim listener: request from " + c.peer + " not handled: unknown exception");
		close(c);
		return;
	}
	c.body = std::string();
	if (reply.empty()) {
		close(c);
		return;
	}
	if (reply.size() > max_message_bytes) {
		log_error("reclaim listener: reply of " + std::to_string(reply.size()) + " bytes to " +
		          c.peer + " is over the limit, not sent");
		close(c);
		return;
	}
	c.reply = framed(reply);
	c.writing = true;
	c.last_active = Clock::now();
	c.write_by = c.last_active + limits.write_deadline;
	write_to(c);
}

void Listener::Impl::write_to(Connection &c)
{
	while (c.reply_sent < c.reply.size()) {
		const ssize_t n = send(c.fd.get(), c.reply.data() + c.reply_sent,
		                       c.reply.size() - c.reply_sent, MSG_NOSIGNAL);
		if (n >= 0) {
			c.reply_sent += static_cast<size_t>(n);
			c.last_active = Clock::now();
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		limited_log(LogLevel::Verbose,
		            "reclaim listener: reply to " + c.peer + " not sent: " + errno_text(errno));
		break;
	}
	close(c); // all of it sent, or failed
}

void Listener::Impl::expire(Clock::time_point now)
{
	for (const auto &conn : connections) {
		Connection &c = *conn;
		if (c.closed || deadline_of(c) > now)
			continue;
		if (c.writing) {
			limited_log(LogLevel::Verbose, "reclaim listener: reply to " + c.peer +
			                                       " not sent: timed out (" +
			                                       millis_text(limits.write_deadline) + ")");
			close(c);
			continue;
		}
		// What came in while the handler ran for others is taken first.
		read_from(c);
		if (c.closed || c.writing || deadline_of(c) > now)
			continue;
		const bool headerless = c.header_got < sizeof c.header;
		limited_log(
		        LogLevel::Verbose,
		        "reclaim listener: no complete request from " + c.peer + ": " +
		                (headerless
		                         ? "no frame length within " + millis_text(limits.header_deadline)
		                         : "not all of it within " + millis_text(limits.request_deadline)));
		close(c);
	}
}

Result<std::unique_ptr<Listener>> Listener::start(const std::string &address, uint16_t port, Handler handler,
                                                  ListenerLimits limits)
{
	using R = Result<std::unique_ptr<Listener>>;
	auto impl = std::make_unique<Impl>();
	impl->handler = std::move(handler);
	limits.max_connections = std::max<size_t>(1, limits.max_connections);
	limits.max_per_address = std::max<size_t>(1, limits.max_per_address);
	impl->limits = limits;
	impl->wake_fd = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (!impl->wake_fd)
		return R::failure("eventfd: " + errno_text(errno));
	auto sock = listen_on(address, port);
	if (!sock)
		return R::failure("reclaim listener: " + sock.error());
	impl->listen_fd = std::move(*sock);
	sockaddr_storage bound{};
	socklen_t length = sizeof bound;
	if (getsockname(impl->listen_fd.get(), reinterpret_cast<sockaddr *>(&bound), &length) != 0)
		return R::failure("getsockname: " + errno_text(errno));
	if (bound.ss_family == AF_INET) {
		sockaddr_in v4{};
		std::memcpy(&v4, &bound, sizeof v4);
		impl->port = ntohs(v4.sin_port);
	} else {
		sockaddr_in6 v6{};
		std::memcpy(&v6, &bound, sizeof v6);
		impl->port = ntohs(v6.sin6_port);
	}
	Impl *state = impl.get();
	auto listener = std::make_unique<Listener>(Key(), std::move(impl));
	try {
		state->thread = std::thread([state] { state->run(); });
	} catch (const std::exception &e) {
		return R::failure(std::string("reclaim listener thread: ") + e.what());
	}
	return listener;
}

Listener::Listener(Key, std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Listener::~Listener()
{
	if (!impl_ || !impl_->thread.joinable())
		return;
	const uint64_t one = 1;
	// An eventfd write only fails when the counter would overflow: it is then
	// readable already, which is all the thread looks at.
	while (write(impl_->wake_fd.get(), &one, sizeof one) < 0 && errno == EINTR)
		;
	impl_->thread.join();
}

uint16_t Listener::port() const noexcept
{
	return impl_ ? impl_->port : 0;
}

} // namespace flexslurm
