// SPDX-License-Identifier: GPL-2.0-or-later
// Whole small files, read and written the way a daemon must: bounded reads,
// and writes that readers never see half done (temp file, fsync, rename),
// for the slice layout and the controller's lending state alike.
//
// The one reader (read_file, and FileLines for a file read line by line):
// opened with O_NONBLOCK (a FIFO an admin left in place must not hang a
// daemon) and, unless asked otherwise, O_NOFOLLOW; only a regular file is
// read; the size bound holds while reading (/proc files report size 0); a
// missing file is a result of its own, not an error text to parse.
#pragma once

#include "core/util/result.hpp"
#include "core/util/unique_fd.hpp"

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>
#include <string_view>

namespace flexslurm
{

// Writes `text` to `path` through `path`.tmp and rename(); with `sync`, the
// data is on disk before the rename. The error says what failed, with errno.
Result<bool> write_file_atomically(const std::string &path, const std::string &text, mode_t mode, bool sync);

// How read_file opens and checks a file.
struct ReadOptions {
	size_t limit = 0;          // the most bytes; more is ReadError::too_large
	bool follow_links = false; // false: a symbolic link fails to open (ELOOP)
	bool root_private = false; // owned by root, writable by neither group nor others
};

enum class ReadError {
	none,
	missing,          // ENOENT at open
	cannot_open,      // any other open (or fstat) failure: error_number
	not_regular,      // a FIFO, directory, device...
	not_root_private, // with ReadOptions::root_private
	too_large,        // over ReadOptions::limit
	cannot_read,      // read(2) failed: error_number
	line_too_long,    // FileLines only: a line over its max_line
};

struct FileRead {
	ReadError error = ReadError::none;
	int error_number = 0; // errno for missing, cannot_open and cannot_read
	size_t limit = 0;     // the bound that too_large / line_too_long broke
	std::string text;     // the whole file when error is none

	explicit operator bool() const noexcept { return error == ReadError::none; }
	// A plain reason: strerror, "not a regular file", "not owned by root or
	// writable by others", "larger than N bytes", "a line longer than N bytes".
	std::string why() const;
};

// True for a file or directory only root may change: owned by root, not
// writable by its group or others.
bool root_private(const struct stat &st) noexcept;

// The whole file at `path`, read as `options` say.
FileRead read_file(const std::string &path, const ReadOptions &options);

// read_file with links followed, as a Result whose error is FileRead::why().
Result<std::string> read_file_bounded(const std::string &path, size_t limit);

// The whole file (links not followed, at most `limit` bytes) when it can be
// read and is not empty; nullopt otherwise. For sysfs attribute files, where
// a missing or unreadable entry only means "not this device".
std::optional<std::string> read_nonempty(const std::string &path, size_t limit);

// The names in directory `dir` ("." and ".." included), at most `limit` of
// them; the error is strerror's text when it cannot be opened.
Result<std::vector<std::string>> list_directory(const std::string &dir, size_t limit);

// A file's lines (without their '\n'), one at a time, each at most
// `max_line` bytes and all at most options.limit: a large file is read
// without holding all of it in memory. Opened and checked as read_file does.
class FileLines
{
public:
	FileLines(const std::string &path, const ReadOptions &options, size_t max_line);

	// What went wrong so far (error none: nothing; text unused).
	const FileRead &status() const noexcept { return status_; }

	// false at the end, or on an error (see status()).
	bool next(std::string_view &line);

private:
	void fill();

	FileRead status_; // before fd_: the constructor's open_checked sets it
	UniqueFd fd_;
	size_t max_line_;
	size_t max_total_;
	std::string buf_;
	size_t pos_ = 0;
	size_t total_ = 0;
	bool eof_ = false;
};

} // namespace flexslurm
