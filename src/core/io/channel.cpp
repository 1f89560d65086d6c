#include "core/io/channel.hpp"

#include "core/util/unique_fd.hpp"

#include "core/util/log.hpp"

#include <arpa/inet.h>
#include <munge.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>
#include <utility>
#include <vector>

namespace flexslurm
{

namespace
{

using Clock = std::chrono::steady_clock;

std::string errno_text(int error)
{
	return std::strerror(error);
}

using Fd = UniqueFd;

struct AddrinfoFree {
	void operator()(addrinfo *list) const noexcept { freeaddrinfo(list); }
};
using Addresses = std::unique_ptr<addrinfo, AddrinfoFree>;

Result<Addresses> resolve(const std::string &host, const char *service, int flags)
{
	addrinfo hints{};
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = flags;
	addrinfo *list = nullptr;
	const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service, &hints, &list);
	if (rc != 0)
		return Result<Addresses>::failure("cannot resolve \"" + host + "\": " +
		                                  (rc == EAI_SYSTEM ? errno_text(errno) : gai_strerror(rc)));
	if (!list)
		return Result<Addresses>::failure("cannot resolve \"" + host + "\": no address");
	return Addresses(list);
}

// Numeric text of a socket address; IPv4-mapped IPv6 addresses (a dual-stack
// listener's IPv4 clients) as plain IPv4, so that callers compare with NodeAddr.
std::string address_text(const sockaddr_storage &addr)
{
	char text[INET6_ADDRSTRLEN] = {};
	if (addr.ss_family == AF_INET) {
		sockaddr_in v4{};
		std::memcpy(&v4, &addr, sizeof v4);
		if (inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text))
			return text;
	} else if (addr.ss_family == AF_INET6) {
		sockaddr_in6 v6{};
		std::memcpy(&v6, &addr, sizeof v6);
		if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) {
			in_addr v4{};
			std::memcpy(&v4, &v6.sin6_addr.s6_addr[12], sizeof v4);
			if (inet_ntop(AF_INET, &v4, text, sizeof text))
				return text;
		} else if (inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text)) {
			return text;
		}
	}
	return "?";
}

enum class Io { Done, Closed, TimedOut, Woken, TooLarge, Failed };

struct IoStatus {
	Io io = Io::Done;
	int error = 0; // errno for Io::Failed
};

// Milliseconds left before `deadline`, rounded up (a poll must not return just
// before it and spin), at least 0.
int millis_left(Clock::time_point deadline)
{
	const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
	return static_cast<int>(std::clamp<decltype(left)>(left, 0, INT_MAX));
}

// Waits until `fd` is ready for `events`, the deadline passes, or `wake_fd`
// (when >= 0) becomes readable.
IoStatus wait_for(int fd, short events, Clock::time_point deadline, int wake_fd)
{
	for (;;) {
		const int timeout_ms = millis_left(deadline);
		if (timeout_ms == 0)
			return {Io::TimedOut};
		pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
		const int n = poll(fds, wake_fd >= 0 ? 2 : 1, timeout_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return {Io::Failed, errno};
		}
		if (wake_fd >= 0 && fds[1].revents != 0)
			return {Io::Woken};
		if (fds[0].revents & POLLNVAL)
			return {Io::Failed, EBADF};
		if (fds[0].revents != 0)
			return {Io::Done}; // ready, or an error/hangup that the next recv/send reports
	}
}

// Reads exactly `size` bytes from a non-blocking socket.
IoStatus read_exact(int fd, char *buf, size_t size, Clock::time_point deadline, int wake_fd)
{
	size_t got = 0;
	while (got < size) {
		const ssize_t n = recv(fd, buf + got, size - got, 0);
		if (n > 0) {
			got += static_cast<size_t>(n);
			continue;
		}
		if (n == 0)
			return {Io::Closed};
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return {Io::Failed, errno};
		const IoStatus ready = wait_for(fd, POLLIN, deadline, wake_fd);
		if (ready.io != Io::Done)
			return ready;
	}
	return {Io::Done};
}

// Writes all of `data` to a non-blocking socket; never raises SIGPIPE.
IoStatus write_all(int fd, std::string_view data, Clock::time_point deadline, int wake_fd)
{
	size_t sent = 0;
	while (sent < data.size()) {
		const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
		if (n >= 0) {
			sent += static_cast<size_t>(n);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return {Io::Failed, errno};
		const IoStatus ready = wait_for(fd, POLLOUT, deadline, wake_fd);
		if (ready.io != Io::Done)
			return ready;
	}
	return {Io::Done};
}

IoStatus write_frame(int fd, std::string_view body, Clock::time_point deadline, int wake_fd)
{
	if (body.size() > max_message_bytes)
		return {Io::TooLarge};
	const auto size = static_cast<uint32_t>(body.size());
	std::string frame;
	frame.reserve(4 + body.size());
	for (int shift = 24; shift >= 0; shift -= 8)
		frame += static_cast<char>((size >> shift) & 0xffu);
	frame += body;
	return write_all(fd, frame, deadline, wake_fd);
}

struct Frame {
	IoStatus status;
	uint64_t announced = 0; // the length the header gave
	std::string body;
};

// Reads one frame; a length over max_message_bytes is refused before reading
// any of the body (Io::TooLarge).
Frame read_frame(int fd, Clock::time_point deadline, int wake_fd)
{
	Frame f;
	unsigned char header[4] = {};
	f.status = read_exact(fd, reinterpret_cast<char *>(header), sizeof header, deadline, wake_fd);
	if (f.status.io != Io::Done)
		return f;
	f.announced = (uint64_t{header[0]} << 24) | (uint64_t{header[1]} << 16) | (uint64_t{header[2]} << 8) |
	              uint64_t{header[3]};
	if (f.announced > max_message_bytes) {
		f.status = {Io::TooLarge};
		return f;
	}
	f.body.resize(static_cast<size_t>(f.announced));
	f.status = read_exact(fd, f.body.data(), f.body.size(), deadline, wake_fd);
	if (f.status.io != Io::Done)
		f.body.clear();
	return f;
}

std::string io_text(const IoStatus &s, Seconds limit)
{
	switch (s.io) {
	case Io::Done:
		return "done";
	case Io::Closed:
		return "connection closed by the other side";
	case Io::TimedOut:
		return "timed out (" + std::to_string(limit.count()) + " s)";
	case Io::Woken:
		return "interrupted by shutdown";
	case Io::TooLarge:
		return "frame over the " + std::to_string(max_message_bytes) + "-byte limit";
	case Io::Failed:
		return errno_text(s.error);
	}
	return "?";
}

// Connects a non-blocking socket to `target`, bound to `local` if given;
// `bind_not_local` is set when that bind fails with EADDRNOTAVAIL.
Result<Fd> connect_one(const addrinfo &target, const addrinfo *local, Clock::time_point deadline,
                       bool &bind_not_local)
{
	Fd sock(socket(target.ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!sock)
		return Result<Fd>::failure("socket: " + errno_text(errno));
	if (local && bind(sock.get(), local->ai_addr, local->ai_addrlen) != 0) {
		const int error = errno;
		bind_not_local = bind_not_local || error == EADDRNOTAVAIL;
		return Result<Fd>::failure("bind: " + errno_text(error));
	}
	if (connect(sock.get(), target.ai_addr, target.ai_addrlen) != 0) {
		if (errno != EINPROGRESS && errno != EINTR)
			return Result<Fd>::failure("connect: " + errno_text(errno));
		const IoStatus ready = wait_for(sock.get(), POLLOUT, deadline, -1);
		if (ready.io == Io::TimedOut)
			return Result<Fd>::failure("connect: timed out");
		if (ready.io != Io::Done)
			return Result<Fd>::failure("connect: " + errno_text(ready.error));
		int error = 0;
		socklen_t length = sizeof error;
		if (getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &error, &length) != 0)
			return Result<Fd>::failure("connect: " + errno_text(errno));
		if (error != 0)
			return Result<Fd>::failure("connect: " + errno_text(error));
	}
	return sock;
}

// At most `burst` lines a minute; the rest are counted and mentioned in the
// next line that is let through. For the listener's own complaints (silent or
// oversized clients), which anyone who can reach the port can cause.
class LogLimiter
{
public:
	void operator()(LogLevel level, const std::string &message)
	{
		const auto now = Clock::now();
		if (now - window_start_ >= std::chrono::minutes(1)) {
			window_start_ = now;
			lines_ = 0;
		}
		if (lines_ >= burst) {
			++suppressed_;
			return;
		}
		++lines_;
		if (suppressed_ == 0) {
			log(level, message);
			return;
		}
		log(level, message + " (" + std::to_string(suppressed_) + " similar lines not logged)");
		suppressed_ = 0;
	}

private:
	static constexpr int burst = 10;
	Clock::time_point window_start_{};
	int lines_ = 0;
	uint64_t suppressed_ = 0;
};

} // namespace

// --- Munge -----------------------------------------------------------------------

namespace
{

struct MungeCtxFree {
	void operator()(munge_ctx_t ctx) const noexcept { munge_ctx_destroy(ctx); }
};
using MungeCtx = std::unique_ptr<std::remove_pointer_t<munge_ctx_t>, MungeCtxFree>;

struct MallocFree {
	void operator()(void *p) const noexcept { std::free(p); }
};

Result<MungeCtx> munge_context(const MungeEndpoint &ep)
{
	MungeCtx ctx(munge_ctx_create());
	if (!ctx)
		return Result<MungeCtx>::failure("munge_ctx_create failed");
	if (!ep.socket.empty()) {
		const munge_err_t e = munge_ctx_set(ctx.get(), MUNGE_OPT_SOCKET, ep.socket.c_str());
		if (e != EMUNGE_SUCCESS)
			return Result<MungeCtx>::failure("munge socket \"" + ep.socket +
			                                 "\": " + munge_strerror(e));
	}
	return ctx;
}

std::string munge_error(munge_ctx_t ctx, munge_err_t e)
{
	const char *detail = ctx ? munge_ctx_strerror(ctx) : nullptr;
	return detail ? detail : munge_strerror(e);
}

} // namespace

std::string munge_socket_of(std::string_view authinfo)
{
	const size_t at = authinfo.find("socket=");
	if (at == std::string_view::npos)
		return "";
	const size_t from = at + 7;
	return std::string(authinfo.substr(from, authinfo.find(',', from) - from));
}

Result<std::string> munge_seal(const MungeEndpoint &ep, std::string_view payload)
{
	using R = Result<std::string>;
	if (payload.size() > max_message_bytes)
		return R::failure("payload of " + std::to_string(payload.size()) + " bytes is over the " +
		                  std::to_string(max_message_bytes) + "-byte limit");
	auto ctx = munge_context(ep);
	if (!ctx)
		return R::failure(ctx.error());
	char *raw = nullptr;
	const munge_err_t e =
	        munge_encode(&raw, ctx->get(), payload.data(), static_cast<int>(payload.size()));
	const std::unique_ptr<char, MallocFree> credential(raw);
	if (e != EMUNGE_SUCCESS || !credential)
		return R::failure("munge_encode: " + munge_error(ctx->get(), e));
	std::string text(credential.get());
	if (text.size() > max_message_bytes)
		return R::failure("munge credential of " + std::to_string(text.size()) +
		                  " bytes is over the " + std::to_string(max_message_bytes) +
		                  "-byte frame limit (payload too large)");
	return text;
}

Result<Sealed> munge_open(const MungeEndpoint &ep, std::string_view credential)
{
	using R = Result<Sealed>;
	if (credential.empty())
		return R::failure("empty credential");
	if (credential.size() > max_message_bytes)
		return R::failure("credential of " + std::to_string(credential.size()) +
		                  " bytes is over the limit");
	if (credential.find('\0') != std::string_view::npos)
		return R::failure("credential contains a NUL byte");
	auto ctx = munge_context(ep);
	if (!ctx)
		return R::failure(ctx.error());
	const std::string text(credential); // munge_decode wants a C string
	void *raw = nullptr;
	int length = 0;
	// Not anyone's ids, should munge leave them unset on some path.
	uid_t uid = std::numeric_limits<uid_t>::max();
	gid_t gid = std::numeric_limits<gid_t>::max();
	const munge_err_t e = munge_decode(text.c_str(), ctx->get(), &raw, &length, &uid, &gid);
	const std::unique_ptr<void, MallocFree> payload(raw);
	if (e != EMUNGE_SUCCESS && e != EMUNGE_CRED_REPLAYED)
		return R::failure("munge_decode: " + munge_error(ctx->get(), e));
	Sealed sealed;
	if (payload && length > 0)
		sealed.payload.assign(static_cast<const char *>(payload.get()), static_cast<size_t>(length));
	sealed.uid = uid;
	sealed.gid = gid;
	sealed.replayed = e == EMUNGE_CRED_REPLAYED;
	return sealed;
}

// --- Client ----------------------------------------------------------------------

Exchanged exchange_from(const std::string &host, uint16_t port, std::string_view request,
                        const std::string &bind_address, Seconds timeout)
{
	using R = Result<std::string>;
	const auto fail = [](std::string why, bool bind_not_local = false) {
		return Exchanged{R::failure(std::move(why)), bind_not_local};
	};
	if (request.size() > max_message_bytes)
		return fail("request of " + std::to_string(request.size()) + " bytes is over the " +
		            std::to_string(max_message_bytes) + "-byte limit");
	if (host.empty())
		return fail("no host to send to");
	const std::string where = host + ":" + std::to_string(port);
	const std::string service = std::to_string(port);
	auto targets = resolve(host, service.c_str(), AI_NUMERICSERV);
	if (!targets)
		return fail(targets.error());
	Addresses locals;
	if (!bind_address.empty()) {
		auto resolved = resolve(bind_address, nullptr, AI_PASSIVE);
		if (!resolved)
			return fail("bind address: " + resolved.error());
		locals = std::move(*resolved);
	}
	const auto deadline = Clock::now() + timeout;

	Fd sock;
	bool bind_not_local = false;
	std::string why = "no address of " + host + " in the family of " + bind_address;
	for (const addrinfo *target = targets->get(); target && !sock; target = target->ai_next) {
		const addrinfo *local = nullptr;
		if (locals) {
			for (local = locals.get(); local && local->ai_family != target->ai_family;
			     local = local->ai_next)
				;
			if (!local)
				continue;
		}
		auto connected = connect_one(*target, local, deadline, bind_not_local);
		if (connected)
			sock = std::move(*connected);
		else
			why = connected.error();
	}
	if (!sock)
		return fail(where + ": " + why, bind_not_local);

	const IoStatus sent = write_frame(sock.get(), request, deadline, -1);
	if (sent.io != Io::Done)
		return fail(where + ": sending: " + io_text(sent, timeout));
	Frame reply = read_frame(sock.get(), deadline, -1);
	if (reply.status.io == Io::Closed)
		return fail(where + ": closed the connection without a reply");
	if (reply.status.io == Io::TooLarge)
		return fail(where + ": reply of " + std::to_string(reply.announced) + " bytes is over the " +
		            std::to_string(max_message_bytes) + "-byte limit");
	if (reply.status.io != Io::Done)
		return fail(where + ": reading the reply: " + io_text(reply.status, timeout));
	return Exchanged{std::move(reply.body)};
}

Result<std::string> exchange(const std::string &host, uint16_t port, std::string_view request,
                             const std::string &bind_address, Seconds timeout)
{
	return exchange_from(host, port, request, bind_address, timeout).reply;
}

// --- Listener --------------------------------------------------------------------

namespace
{

// One client of the listener, from its accept to its close.
struct Connection {
	Fd fd;
	std::string peer;
	Clock::time_point accepted;
	Clock::time_point last_active; // the accept, or the last byte in or out
	unsigned char header[4] = {};
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
		const uint64_t announced = (uint64_t{c.header[0]} << 24) | (uint64_t{c.header[1]} << 16) |
		                           (uint64_t{c.header[2]} << 8) | uint64_t{c.header[3]};
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
	const auto size = static_cast<uint32_t>(reply.size());
	c.reply.reserve(4 + reply.size());
	for (int shift = 24; shift >= 0; shift -= 8)
		c.reply += static_cast<char>((size >> shift) & 0xffu);
	c.reply += reply;
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

namespace
{

// A listening socket on address:port; "" = every address, dual-stack where the
// host has IPv6.
Result<Fd> listen_on(const std::string &address, uint16_t port)
{
	// Room for a thousand agents reporting at once while the loop catches
	// up (the kernel caps it at net.core.somaxconn).
	constexpr int backlog = 1024;
	const int yes = 1;
	std::string why;
	const auto try_bind = [&](int family, const sockaddr *addr, socklen_t length, bool dual) -> Fd {
		Fd sock(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
		if (!sock) {
			why = "socket: " + errno_text(errno);
			return Fd();
		}
		const int no = 0;
		if (setsockopt(sock.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) != 0 ||
		    (dual && setsockopt(sock.get(), IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no) != 0)) {
			why = "setsockopt: " + errno_text(errno);
			return Fd();
		}
		if (bind(sock.get(), addr, length) != 0) {
			why = "bind: " + errno_text(errno);
			return Fd();
		}
		if (listen(sock.get(), backlog) != 0) {
			why = "listen: " + errno_text(errno);
			return Fd();
		}
		return sock;
	};

	if (address.empty()) {
		sockaddr_in6 any6{};
		any6.sin6_family = AF_INET6;
		any6.sin6_addr = in6addr_any;
		any6.sin6_port = htons(port);
		Fd sock = try_bind(AF_INET6, reinterpret_cast<const sockaddr *>(&any6), sizeof any6, true);
		if (sock)
			return sock;
		sockaddr_in any4{};
		any4.sin_family = AF_INET;
		any4.sin_addr.s_addr = htonl(INADDR_ANY);
		any4.sin_port = htons(port);
		sock = try_bind(AF_INET, reinterpret_cast<const sockaddr *>(&any4), sizeof any4, false);
		if (sock)
			return sock;
		return Result<Fd>::failure("port " + std::to_string(port) + ": " + why);
	}
	const std::string service = std::to_string(port);
	auto resolved = resolve(address, service.c_str(), AI_PASSIVE | AI_NUMERICSERV);
	if (!resolved)
		return Result<Fd>::failure(resolved.error());
	for (const addrinfo *a = resolved->get(); a; a = a->ai_next) {
		Fd sock = try_bind(a->ai_family, a->ai_addr, a->ai_addrlen, false);
		if (sock)
			return sock;
	}
	return Result<Fd>::failure(address + ":" + service + ": " + why);
}

} // namespace

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
