// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/job_state.hpp"

#include "core/io/file_io.hpp"
#include "core/util/unique_fd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace flexslurm
{

namespace
{

using Fd = UniqueFd;

std::string base_name(const std::string &path)
{
	return path.substr(path.rfind('/') + 1);
}

// A new directory `name` in `parent`, then opened without following links
// and given `mode`, `uid`:`gid` through its descriptor.
Result<bool> make_dir(int parent, const std::string &path, mode_t mode, uid_t uid, gid_t gid)
{
	const std::string name = base_name(path);
	if (mkdirat(parent, name.c_str(), 0700) != 0)
		return Result<bool>::errno_failure("cannot create " + path);
	Fd fd(openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (fd.get() < 0 || fchown(fd.get(), uid, gid) != 0 || fchmod(fd.get(), mode) != 0)
		return Result<bool>::errno_failure("cannot set up " + path);
	return true;
}

Result<bool> make_file(int parent, const std::string &path, const std::string &text, mode_t mode, uid_t uid,
                       gid_t gid)
{
	const std::string name = base_name(path);
	Fd fd(openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
	if (fd.get() < 0)
		return Result<bool>::errno_failure("cannot create " + path);
	for (size_t off = 0; off < text.size();) {
		const ssize_t n = write(fd.get(), text.data() + off, text.size() - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return Result<bool>::errno_failure("cannot write " + path);
		off += static_cast<size_t>(n);
	}
	if (fchown(fd.get(), uid, gid) != 0 || fchmod(fd.get(), mode) != 0)
		return Result<bool>::errno_failure("cannot set up " + path);
	return true;
}

} // namespace

Result<bool> create_job_state(const std::string &job_dir, const JobPaths &paths, const JobStateFiles &files,
                              uid_t uid, gid_t gid, std::string &note)
{
	if (mkdir(job_dir.c_str(), 0755) != 0 && errno != EEXIST)
		return Result<bool>::errno_failure("cannot create " + job_dir);
	Fd top(open(job_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	struct stat st {
	};
	if (top.get() < 0 || fstat(top.get(), &st) != 0)
		return Result<bool>::errno_failure("cannot open " + job_dir);
	if (!root_private(st))
		return Result<bool>::failure(
		        job_dir + " must be a directory owned by root that others cannot write (not a link)");
	const std::string name = base_name(paths.dir);
	if (fstatat(top.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
		std::error_code ec;
		std::filesystem::remove_all(paths.dir, ec); // removes links, never follows them
		if (ec)
			return Result<bool>::failure("cannot remove the stale " + paths.dir + ": " +
			                             ec.message());
		note = "removed what was already at " + paths.dir;
	}
	if (auto r = make_dir(top.get(), paths.dir, 0755, 0, 0); !r)
		return r;
	Fd dir(openat(top.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (dir.get() < 0)
		return Result<bool>::errno_failure("cannot open " + paths.dir);
	if (auto r = make_file(dir.get(), paths.limits, encode_job_limits(files.limits), 0644, 0, 0); !r)
		return r;
	if (!files.preload_conf.empty()) {
		if (auto r = make_file(dir.get(), paths.preload_conf, files.preload_conf, 0644, 0, 0); !r)
			return r;
		// The library maps and writes it in every process of the job.
		if (auto r = make_file(dir.get(), paths.preload_cache, "", 0600, uid, gid); !r)
			return r;
	}
	if (files.mps) {
		if (auto r = make_dir(dir.get(), paths.mps_pipe, 0755, 0, 0); !r)
			return r;
		if (auto r = make_dir(dir.get(), paths.mps_log, 0700, 0, 0); !r)
			return r;
	}
	return true;
}

Result<std::string> read_root_file(const std::string &path, size_t limit)
{
	FileRead read = read_file(path, {limit, false, true});
	switch (read.error) {
	case ReadError::none:
		return std::move(read.text);
	case ReadError::missing:
	case ReadError::cannot_open:
		return Result<std::string>::failure("cannot open " + path + ": " + read.why());
	case ReadError::not_regular:
	case ReadError::not_root_private:
		return Result<std::string>::failure(path +
		                                    " is not a file of root's that only root may write");
	case ReadError::too_large:
		return Result<std::string>::failure(path + " is larger than " + std::to_string(limit) +
		                                    " bytes");
	default:
		return Result<std::string>::failure("cannot read " + path + ": " + read.why());
	}
}

Result<JobLimits> read_job_limits(const JobPaths &paths, uint32_t job, uint32_t uid)
{
	auto text = read_root_file(paths.limits, job_limits_max_bytes);
	if (!text)
		return Result<JobLimits>::failure(text.error());
	auto limits = decode_job_limits(*text);
	if (limits && (limits->job != job || limits->uid != uid))
		return Result<JobLimits>::failure("the file is another job's");
	return limits;
}

void remove_job_state(const JobPaths &paths)
{
	std::error_code ec;
	std::filesystem::remove_all(paths.dir, ec);
}

} // namespace flexslurm
