// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/isolation.hpp"
#include "core/util/unique_fd.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace flexslurm
{

namespace
{

bool under(const std::string &path, const std::string &dir)
{
	return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

struct DirCloser {
	void operator()(DIR *d) const noexcept { closedir(d); }
};

// Covers `dir` (whose original content is reachable through `fd`) with a
// tmpfs and brings back every entry but the hidden ones.
Result<bool> rebuild(const std::string &dir, const std::vector<std::string> &hidden)
{
	const UniqueFd holder(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
	const int fd = holder.get();
	if (fd < 0)
		return Result<bool>::errno_failure("open " + dir);
	struct stat st {
	};
	if (fstat(fd, &st) != 0)
		return Result<bool>::errno_failure("stat " + dir);

	std::vector<std::pair<std::string, unsigned char>> entries;
	{
		const int list_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		std::unique_ptr<DIR, DirCloser> d(list_fd >= 0 ? fdopendir(list_fd) : nullptr);
		if (!d)
			return Result<bool>::errno_failure("list " + dir);
		while (dirent *e = readdir(d.get())) {
			if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
				entries.emplace_back(e->d_name, e->d_type);
		}
	}

	char mode[32];
	std::snprintf(mode, sizeof mode, "mode=%o", static_cast<unsigned>(st.st_mode & 07777));
	if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID, mode) != 0)
		return Result<bool>::errno_failure("mount tmpfs on " + dir);

	const std::string source_dir = "/proc/self/fd/" + std::to_string(fd) + "/";
	for (const auto &[name, type] : entries) {
		const std::string path = dir + "/" + name;
		const std::string source = source_dir + name;
		if (std::find(hidden.begin(), hidden.end(), path) != hidden.end())
			continue;
		if (type == DT_DIR) {
			if (mkdir(path.c_str(), 0755) != 0 ||
			    mount(source.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
				return Result<bool>::errno_failure("bind " + path);
			if (std::any_of(hidden.begin(), hidden.end(),
			                [&](const std::string &h) { return under(h, path); })) {
				auto r = rebuild(path, hidden);
				if (!r)
					return r;
			}
		} else if (type == DT_LNK) {
			char target[4096];
			const ssize_t n = readlinkat(fd, name.c_str(), target, sizeof target - 1);
			if (n < 0)
				return Result<bool>::errno_failure("readlink " + path);
			target[n] = '\0';
			if (symlink(target, path.c_str()) != 0)
				return Result<bool>::errno_failure("symlink " + path);
		} else {
			const int f = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
			if (f < 0)
				return Result<bool>::errno_failure("create " + path);
			close(f);
			if (mount(source.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0)
				return Result<bool>::errno_failure("bind " + path);
		}
	}
	return true;
}

} // namespace

Result<bool> enter_private_device_view(const std::string &dir, const std::vector<std::string> &hidden)
{
	if (unshare(CLONE_NEWNS) != 0)
		return Result<bool>::errno_failure("unshare(CLONE_NEWNS)");
	if (mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0)
		return Result<bool>::errno_failure("make / a slave mount");
	std::string clean = dir;
	while (clean.size() > 1 && clean.back() == '/')
		clean.pop_back();
	return rebuild(clean, hidden);
}

bool devices_cgroup_denies(const std::vector<std::string> &paths, std::vector<std::string> &unfenced)
{
	for (const std::string &p : paths) {
		const int fd = open(p.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			unfenced.push_back(p);
		}
		// EPERM: denied by the devices cgroup. Anything else (no such
		// node, no device behind it) cannot be opened either.
	}
	return unfenced.empty();
}

} // namespace flexslurm
