// SPDX-License-Identifier: GPL-2.0-or-later
// A value or the reason there is none. The core reports failures as values
// (never exceptions across its API) so that the plugins, which must not let
// an exception reach Slurm, can turn them into one log line and an error code.
#pragma once

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

namespace flexslurm
{

template <class T>
class Result
{
public:
	Result(T value) : value_(std::move(value)) {}
	static Result failure(std::string why)
	{
		Result r;
		r.error_ = std::move(why);
		return r;
	}
	// "what: strerror(errno)": a failed system call, told the one way.
	static Result errno_failure(const std::string &what)
	{
		const int error = errno;
		return failure(what + ": " + std::strerror(error));
	}
	explicit operator bool() const noexcept { return value_.has_value(); }
	T &operator*() { return *value_; }
	const T &operator*() const { return *value_; }
	T *operator->() { return &*value_; }
	const T *operator->() const { return &*value_; }
	const std::string &error() const noexcept { return error_; }

private:
	Result() = default;
	std::optional<T> value_;
	std::string error_;
};

} // namespace flexslurm
