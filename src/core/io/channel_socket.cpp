// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/channel_socket.hpp"

#include "core/io/channel.hpp"

#include "core/model/report.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

namespace flexslurm::channel
{

std::string errno_text(int error)
{
	return std::strerror(error);
}

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

} // namespace flexslurm::channel

namespace flexslurm
{

std::vector<std::string> numeric_addresses(const std::string &host)
{
	std::vector<std::string> out;
	if (host.empty())
		return out; // the wildcard is no host's address
	const auto list = channel::resolve(host, nullptr, 0);
	if (!list)
		return out;
	for (const addrinfo *a = list->get(); a; a = a->ai_next) {
		sockaddr_storage addr{};
		if (a->ai_addrlen > sizeof addr)
			continue;
		std::memcpy(&addr, a->ai_addr, a->ai_addrlen);
		if (const std::string text = channel::address_text(addr); text != "?")
			out.push_back(text);
	}
	return out;
}

} // namespace flexslurm

namespace flexslurm::channel
{

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

int millis_left(Clock::time_point deadline)
{
	const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
	return static_cast<int>(std::clamp<decltype(left)>(left, 0, INT_MAX));
}

std::string framed(std::string_view body)
{
	const auto size = static_cast<uint32_t>(body.size());
	std::string frame;
	frame.reserve(frame_header_bytes + body.size());
	for (int shift = 24; shift >= 0; shift -= 8)
		frame += static_cast<char>((size >> shift) & 0xffu);
	frame += body;
	return frame;
}

uint64_t frame_length(const unsigned char (&header)[frame_header_bytes]) noexcept
{
	return (uint64_t{header[0]} << 24) | (uint64_t{header[1]} << 16) | (uint64_t{header[2]} << 8) |
	       uint64_t{header[3]};
}

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

} // namespace flexslurm::channel
