// The slice layout on disk: SliceLayout::save and load (the file slurmd
// leaves for the SPANK plugin), and the device node probe. Apart from the
// layout's model (core/model/slice_layout.cpp), which makes no system calls.
#include "core/model/slice_layout.hpp"

#include "core/io/file_io.hpp"
#include "core/util/unique_fd.hpp"

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
	const UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
	if (!fd)
		return fail(std::strerror(errno));
	struct stat st {
	};
	std::string text;
	constexpr off_t max_layout_bytes = 1 << 20;
	if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) ||
	    st.st_size > max_layout_bytes)
		return fail("not a root-owned layout file that only root may write");
	text.resize(static_cast<size_t>(st.st_size));
	const ssize_t n = read(fd.get(), text.data(), text.size());
	if (n != static_cast<ssize_t>(text.size()))
		return fail("short read");
	auto layout = deserialize(text);
	if (!layout)
		return fail(layout.error());
	return layout;
}

} // namespace flexslurm
