#include "channel.hpp"

#include "unique_fd.hpp"

#include "log.hpp"

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

// Connects a non-blocking socket to `target`, bound to `local` if given.
Result<Fd> connect_one(const addrinfo &target, const addrinfo *local, Clock::time_point deadline)
{
	Fd sock(socket(target.ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!sock)
		return Result<Fd>::failure("socket: " + errno_text(errno));
	if (local && bind(sock.get(), local->ai_addr, local->ai_addrlen) != 0)
		return Result<Fd>::failure("bind: " + errno_text(errno));
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

Result<std::string> exchange(const std::string &host, uint16_t port, std::string_view request,
                             const std::string &bind_address, Seconds timeout)
{
	using R = Result<std::string>;
	if (request.size() > max_message_bytes)
		return R::failure("request of " + std::to_string(request.size()) + " bytes is over the " +
		                  std::to_string(max_message_bytes) + "-byte limit");
	if (host.empty())
		return R::failure("no host to send to");
	const std::string where = host + ":" + std::to_string(port);
	const std::string service = std::to_string(port);
	auto targets = resolve(host, service.c_str(), AI_NUMERICSERV);
	if (!targets)
		return R::failure(targets.error());
	Addresses locals;
	if (!bind_address.empty()) {
		auto resolved = resolve(bind_address, nullptr, AI_PASSIVE);
		if (!resolved)
			return R::failure("bind address: " + resolved.error());
		locals = std::move(*resolved);
	}
	const auto deadline = Clock::now() + timeout;

	Fd sock;
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
		auto connected = connect_one(*target, local, deadline);
		if (connected)
			sock = std::move(*connected);
		else
			why = connected.error();
	}
	if (!sock)
		return R::failure(where + ": " + why);

	const IoStatus sent = write_frame(sock.get(), request, deadline, -1);
	if (sent.io != Io::Done)
		return R::failure(where + ": sending: " + io_text(sent, timeout));
	Frame reply = read_frame(sock.get(), deadline, -1);
	if (reply.status.io == Io::Closed)
		return R::failure(where + ": closed the connection without a reply");
	if (reply.status.io == Io::TooLarge)
		return R::failure(where + ": reply of " + std::to_string(reply.announced) +
		                  " bytes is over the " + std::to_string(max_message_bytes) + "-byte limit");
	if (reply.status.io != Io::Done)
		return R::failure(where + ": reading the reply: " + io_text(reply.status, timeout));
	return std::move(reply.body);
}

// --- Listener --------------------------------------------------------------------

struct Listener::Impl {
	Fd listen_fd;
	Fd wake_fd;
	uint16_t port = 0;
	Handler handler;
	LogLimiter limited_log;
	std::thread thread;

	void run() noexcept;
	void loop();
	// false when woken for shutdown
	bool accept_one();
	void serve(int fd, const std::string &peer);
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

void Listener::Impl::loop()
{
	bool accept_failing = false;
	for (;;) {
		pollfd fds[2] = {{listen_fd.get(), POLLIN, 0}, {wake_fd.get(), POLLIN, 0}};
		const int n = poll(fds, 2, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_error("reclaim listener: poll: " + errno_text(errno) + "; stopped");
			return;
		}
		if (fds[1].revents != 0)
			return;
		if (fds[0].revents & (POLLERR | POLLNVAL)) {
			log_error("reclaim listener: listening socket failed; stopped");
			return;
		}
		if (!(fds[0].revents & POLLIN))
			continue;

		sockaddr_storage addr{};
		socklen_t length = sizeof addr;
		Fd conn(accept4(listen_fd.get(), reinterpret_cast<sockaddr *>(&addr), &length,
		                SOCK_NONBLOCK | SOCK_CLOEXEC));
		if (!conn) {
			const int error = errno;
			if (error == EAGAIN || error == EWOULDBLOCK || error == EINTR ||
			    error == ECONNABORTED || error == EPROTO)
				continue;
			// Out of descriptors or memory: the backlog stays readable, so back
			// off instead of spinning, and say so once per episode.
			if (!accept_failing)
				log_error("reclaim listener: accept: " + errno_text(error));
			accept_failing = true;
			pollfd wake = {wake_fd.get(), POLLIN, 0};
			if (poll(&wake, 1, 200) > 0)
				return;
			continue;
		}
		accept_failing = false;
		const std::string peer = address_text(addr);
		try {
			serve(conn.get(), peer);
		} catch (const std::exception &e) {
			log_error("reclaim listener: request from " + peer + " not handled: " + e.what());
		} catch (...) {
			log_error("reclaim listener: request from " + peer +
			          " not handled: unknown exception");
		}
	}
}

void Listener::Impl::serve(int fd, const std::string &peer)
{
	const Frame request = read_frame(fd, Clock::now() + read_deadline, wake_fd.get());
	switch (request.status.io) {
	case Io::Done:
		break;
	case Io::Woken:
		return;
	case Io::TooLarge:
		limited_log(LogLevel::Error, "reclaim listener: refused a frame of " +
		                                     std::to_string(request.announced) + " bytes from " +
		                                     peer + " (limit " + std::to_string(max_message_bytes) +
		                                     ")");
		return;
	default:
		limited_log(LogLevel::Verbose, "reclaim listener: no complete request from " + peer + ": " +
		                                       io_text(request.status, read_deadline));
		return;
	}
	const std::string reply = handler ? handler(request.body, peer) : std::string();
	if (reply.empty())
		return;
	if (reply.size() > max_message_bytes) {
		log_error("reclaim listener: reply of " + std::to_string(reply.size()) + " bytes to " + peer +
		          " is over the limit, not sent");
		return;
	}
	const IoStatus sent = write_frame(fd, reply, Clock::now() + write_deadline, wake_fd.get());
	if (sent.io != Io::Done && sent.io != Io::Woken)
		limited_log(LogLevel::Verbose, "reclaim listener: reply to " + peer +
		                                       " not sent: " + io_text(sent, write_deadline));
}

namespace
{

// A listening socket on address:port; "" = every address, dual-stack where the
// host has IPv6.
Result<Fd> listen_on(const std::string &address, uint16_t port)
{
	constexpr int backlog = 128;
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

Result<std::unique_ptr<Listener>> Listener::start(const std::string &address, uint16_t port, Handler handler)
{
	using R = Result<std::unique_ptr<Listener>>;
	auto impl = std::make_unique<Impl>();
	impl->handler = std::move(handler);
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
