// Whole small files, read and written the way a daemon must: bounded reads,
// and writes that readers never see half done (temp file, fsync, rename),
// for the slice layout and the controller's lending state alike.
#pragma once

#include "core/util/result.hpp"

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace flexslurm
{

// Writes `text` to `path` through `path`.tmp and rename(); with `sync`, the
// data is on disk before the rename. The error says what failed, with errno.
Result<bool> write_file_atomically(const std::string &path, const std::string &text, mode_t mode, bool sync);

// The whole file, if it opens and ends within `limit` bytes; nullopt-like
// failure otherwise (missing, unreadable or too large).
Result<std::string> read_file_bounded(const std::string &path, size_t limit);

} // namespace flexslurm
