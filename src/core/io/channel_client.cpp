// SPDX-License-Identifier: GPL-2.0-or-later
// The agents' side of the channel: one request frame, one reply frame, all
// of it within one deadline.
#include "core/io/channel.hpp"
#include "core/io/channel_socket.hpp"
#include "core/model/report.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <utility>

namespace flexslurm
{

using namespace channel;

namespace
{

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

// Moves `size` bytes through a non-blocking socket, `step(done)` being one
// recv or send of what is left; waits for `events` whenever it would block.
template <class Step>
IoStatus transfer(int fd, size_t size, short events, Clock::time_point deadline, int wake_fd, Step &&step)
{
	size_t done = 0;
	while (done < size) {
		const ssize_t n = step(done);
		if (n > 0 || (n == 0 && events == POLLOUT)) {
			done += static_cast<size_t>(n);
			continue;
		}
		if (n == 0)
			return {Io::Closed};
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return {Io::Failed, errno};
		const IoStatus ready = wait_for(fd, events, deadline, wake_fd);
		if (ready.io != Io::Done)
			return ready;
	}
	return {Io::Done};
}

// Reads exactly `size` bytes from a non-blocking socket.
IoStatus read_exact(int fd, char *buf, size_t size, Clock::time_point deadline, int wake_fd)
{
	return transfer(fd, size, POLLIN, deadline, wake_fd,
	                [&](size_t done) { return recv(fd, buf + done, size - done, 0); });
}

// Writes all of `data` to a non-blocking socket; never raises SIGPIPE.
IoStatus write_all(int fd, std::string_view data, Clock::time_point deadline, int wake_fd)
{
	return transfer(fd, data.size(), POLLOUT, deadline, wake_fd, [&](size_t done) {
		return send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
	});
}

IoStatus write_frame(int fd, std::string_view body, Clock::time_point deadline, int wake_fd)
{
	if (body.size() > max_message_bytes)
		return {Io::TooLarge};
	return write_all(fd, framed(body), deadline, wake_fd);
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
	unsigned char header[frame_header_bytes] = {};
	f.status = read_exact(fd, reinterpret_cast<char *>(header), sizeof header, deadline, wake_fd);
	if (f.status.io != Io::Done)
		return f;
	f.announced = frame_length(header);
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

} // namespace

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

} // namespace flexslurm
