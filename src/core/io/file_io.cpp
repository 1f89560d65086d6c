// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/file_io.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace flexslurm
{

namespace
{

// Opens `path` as the options say and checks what it is; on failure, sets
// `out` and returns a closed descriptor.
UniqueFd open_checked(const std::string &path, const ReadOptions &options, FileRead &out)
{
	out.limit = options.limit;
	const int flags =
	        O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (options.follow_links ? 0 : O_NOFOLLOW);
	UniqueFd fd(open(path.c_str(), flags));
	struct stat st {
	};
	if (!fd || fstat(fd.get(), &st) != 0) {
		out.error_number = errno;
		out.error = out.error_number == ENOENT ? ReadError::missing : ReadError::cannot_open;
		return UniqueFd();
	}
	if (!S_ISREG(st.st_mode))
		out.error = ReadError::not_regular;
	else if (options.root_private && !root_private(st))
		out.error = ReadError::not_root_private;
	else if (static_cast<uint64_t>(st.st_size) > options.limit)
		out.error = ReadError::too_large;
	return out.error == ReadError::none ? std::move(fd) : UniqueFd();
}

// One read(2) into `buffer`, retried on EINTR: the byte count, 0 at the end,
// -1 with `out` set on an error.
ssize_t read_some(int fd, char *buffer, size_t size, FileRead &out)
{
	for (;;) {
		const ssize_t n = read(fd, buffer, size);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			out.error_number = errno;
			out.error = ReadError::cannot_read;
		}
		return n;
	}
}

} // namespace

Result<bool> write_file_atomically(const std::string &path, const std::string &text, mode_t mode, bool sync)
{
	const std::string tmp = path + ".tmp";
	const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return Result<bool>::failure("cannot create " + tmp + ": " + std::strerror(errno));
	size_t done = 0;
	while (done < text.size()) {
		const ssize_t n = write(fd, text.data() + done, text.size() - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += static_cast<size_t>(n);
	}
	const bool ok = done == text.size() && (!sync || fsync(fd) == 0);
	close(fd);
	if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
		const int saved = errno;
		unlink(tmp.c_str());
		return Result<bool>::failure(std::string("cannot write: ") + std::strerror(saved));
	}
	return true;
}

std::string FileRead::why() const
{
	switch (error) {
	case ReadError::none:
		return "";
	case ReadError::missing:
	case ReadError::cannot_open:
	case ReadError::cannot_read:
		return std::strerror(error_number);
	case ReadError::not_regular:
		return "not a regular file";
	case ReadError::not_root_private:
		return "not owned by root or writable by others";
	case ReadError::too_large:
		return "larger than " + std::to_string(limit) + " bytes";
	case ReadError::line_too_long:
		return "a line longer than " + std::to_string(limit) + " bytes";
	}
	return "";
}

bool root_private(const struct stat &st) noexcept
{
	return st.st_uid == 0 && !(st.st_mode & 022);
}

FileRead read_file(const std::string &path, const ReadOptions &options)
{
	FileRead out;
	const UniqueFd fd = open_checked(path, options, out);
	if (!fd)
		return out;
	char buffer[4096];
	for (;;) {
		const ssize_t n = read_some(fd.get(), buffer, sizeof buffer, out);
		if (n < 0) {
			out.text.clear();
			return out;
		}
		if (n == 0)
			return out;
		out.text.append(buffer, static_cast<size_t>(n));
		if (out.text.size() > options.limit) {
			out.error = ReadError::too_large;
			out.text.clear();
			return out;
		}
	}
}

Result<std::string> read_file_bounded(const std::string &path, size_t limit)
{
	FileRead read = read_file(path, {limit, true, false});
	if (!read)
		return Result<std::string>::failure(read.why());
	return std::move(read.text);
}

std::optional<std::string> read_nonempty(const std::string &path, size_t limit)
{
	FileRead file = read_file(path, {limit, false, false});
	if (!file || file.text.empty())
		return std::nullopt;
	return std::move(file.text);
}

Result<std::vector<std::string>> list_directory(const std::string &dir, size_t limit)
{
	std::unique_ptr<DIR, int (*)(DIR *)> h(opendir(dir.c_str()), &closedir);
	if (!h)
		return Result<std::vector<std::string>>::failure(std::strerror(errno));
	std::vector<std::string> names;
	while (dirent *e = readdir(h.get()))
		if (names.size() < limit)
			names.emplace_back(e->d_name);
	return names;
}

FileLines::FileLines(const std::string &path, const ReadOptions &options, size_t max_line)
    : fd_(open_checked(path, options, status_)), max_line_(max_line), max_total_(options.limit)
{
}

bool FileLines::next(std::string_view &line)
{
	while (status_.error == ReadError::none) {
		if (eof_ && pos_ >= buf_.size())
			return false; // a last line without '\n' was the end
		const size_t eol = buf_.find('\n', pos_);
		const size_t len = (eol == std::string::npos ? buf_.size() : eol) - pos_;
		if (len > max_line_) {
			status_.error = ReadError::line_too_long;
			status_.limit = max_line_;
			return false;
		}
		if (eol != std::string::npos || eof_) {
			line = std::string_view(buf_).substr(pos_, len);
			pos_ += len + 1;
			return true;
		}
		buf_.erase(0, pos_);
		pos_ = 0;
		fill();
	}
	return false;
}

void FileLines::fill()
{
	char chunk[64 * 1024];
	const ssize_t n = read_some(fd_.get(), chunk, sizeof chunk, status_);
	if (n < 0)
		return;
	eof_ = n == 0;
	total_ += static_cast<size_t>(n);
	if (total_ > max_total_)
		status_.error = ReadError::too_large;
	buf_.append(chunk, static_cast<size_t>(n));
}

} // namespace flexslurm
