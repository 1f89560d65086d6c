// SPDX-License-Identifier: GPL-2.0-or-later
// The slice layout on disk: SliceLayout::save and load (the file slurmd
// leaves for the SPANK plugin), and the device node probe. Apart from the
// layout's model (core/model/slice_layout.cpp), which makes no system calls.
#include "core/model/slice_layout.hpp"

#include "core/io/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flexslurm
{

std::optional<DeviceId> stat_char_device(const std::string &path, std::string &why)
{
	struct stat st {
	};
	if (stat(path.c_str(), &st) != 0) {
		why = std::strerror(errno);
		return std::nullopt;
	}
	if (!S_ISCHR(st.st_mode)) {
		why = "not a character device";
		return std::nullopt;
	}
	return DeviceId{major(st.st_rdev), minor(st.st_rdev)};
}

Result<bool> SliceLayout::save(const std::string &path) const
{
	auto fail = [&](const std::string &what) {
		return Result<bool>::failure(path + ": " + what + ": " + std::strerror(errno));
	};
	const auto slash = path.rfind('/');
	if (slash != std::string::npos && slash > 0) {
		const std::string dir = path.substr(0, slash);
		if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
			return fail("cannot create " + dir);
	}
	if (auto written = write_file_atomically(path, serialize(), 0644, true); !written)
		return Result<bool>::failure(path + ": " + written.error());
	return true;
}

Result<SliceLayout> SliceLayout::load(const std::string &path)
{
	auto fail = [&](const std::string &what) { return Result<SliceLayout>::failure(path + ": " + what); };
	constexpr size_t max_layout_bytes = 1 << 20;
	const FileRead read = read_file(path, {max_layout_bytes, false, true});
	switch (read.error) {
	case ReadError::none:
		break;
	case ReadError::missing:
	case ReadError::cannot_open:
		return fail(read.why());
	case ReadError::cannot_read:
		return fail("short read");
	default:
		return fail("not a root-owned layout file that only root may write");
	}
	auto layout = deserialize(read.text);
	if (!layout)
		return fail(layout.error());
	return layout;
}

} // namespace flexslurm
