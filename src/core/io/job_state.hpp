// SPDX-License-Identifier: GPL-2.0-or-later
// A job's root-owned state directory on a node (JobPaths): created by the
// job prolog as root without following any symbolic link, read by the
// job's steps, removed by the job epilog.
#pragma once

#include "core/model/limits.hpp"
#include "core/util/result.hpp"

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace flexslurm
{

struct JobStateFiles {
	JobLimits limits;         // written as encode_job_limits() gives it
	std::string preload_conf; // empty: none (and no shared cache)
	bool mps = false;         // the MPS pipe and log directories
};

// Creates `paths.dir` and what `files` asks for. `job_dir` must be a real
// directory owned by root that no one else may write (it is created 0755 if
// missing). Whatever is already at `paths.dir` (left by a job whose epilog
// did not run, or planted) is removed first without following links; `note`
// then says so. Every entry is made with mkdirat/openat (O_EXCL,
// O_NOFOLLOW) and chowned through its descriptor; only the shared cache file
// goes to the job's user.
Result<bool> create_job_state(const std::string &job_dir, const JobPaths &paths, const JobStateFiles &files,
                              uid_t uid, gid_t gid, std::string &note);

// The whole of a regular file owned by root and not writable by others,
// opened without following a link, at most `limit` bytes.
Result<std::string> read_root_file(const std::string &path, size_t limit);

// The job's limits file (`paths.limits`) as its prolog wrote it: a file of
// root's (read_root_file), decoded, for job `job` of user `uid`.
Result<JobLimits> read_job_limits(const JobPaths &paths, uint32_t job, uint32_t uid);

// Removes `paths.dir` and everything in it, following no links.
void remove_job_state(const JobPaths &paths);

} // namespace flexslurm
