// SPDX-License-Identifier: GPL-2.0-or-later
// A file descriptor that closes itself: the one holder for the core's
// sockets, device and /proc files, pidfds and per-job state directories.
#pragma once

#include <unistd.h>

#include <utility>

namespace flexslurm
{

class UniqueFd
{
public:
	UniqueFd() = default;
	explicit UniqueFd(int fd) noexcept : fd_(fd) {}
	UniqueFd(UniqueFd &&other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
	UniqueFd &operator=(UniqueFd &&other) noexcept
	{
		if (this != &other) {
			reset();
			fd_ = std::exchange(other.fd_, -1);
		}
		return *this;
	}
	UniqueFd(const UniqueFd &) = delete;
	UniqueFd &operator=(const UniqueFd &) = delete;
	~UniqueFd() { reset(); }

	int get() const noexcept { return fd_; }
	explicit operator bool() const noexcept { return fd_ >= 0; }
	void reset() noexcept
	{
		if (fd_ >= 0)
			::close(fd_); // not retried on EINTR: Linux has released the descriptor
		fd_ = -1;
	}

private:
	int fd_ = -1;
};

} // namespace flexslurm
