#include "core/io/file_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flexslurm
{

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

Result<std::string> read_file_bounded(const std::string &path, size_t limit)
{
	const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return Result<std::string>::failure(std::strerror(errno));
	std::string out;
	char buf[65536];
	ssize_t n = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0 && out.size() <= limit)
		out.append(buf, static_cast<size_t>(n));
	const int saved = errno;
	close(fd);
	if (n < 0)
		return Result<std::string>::failure(std::strerror(saved));
	if (out.size() > limit)
		return Result<std::string>::failure("larger than " + std::to_string(limit) + " bytes");
	return out;
}

} // namespace flexslurm
