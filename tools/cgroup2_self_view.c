/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Test harness only (tools/localcluster.py, cgroup="v2"): lets Slurm's
 * cgroup/v2 plugin run on a host that mounts cgroup v1 hierarchies.
 *
 * Slurm 22.05's cgroup/v2 reads /proc/self/cgroup and stops with "Hybrid mode
 * is not supported" unless the file has the single unified line "0::/path".
 * On a v1 (or hybrid) host the kernel lists every v1 hierarchy there too,
 * whatever the mount namespace. Preloaded into slurmd and its slurmstepds
 * (which run in a mount namespace with cgroup2 at /sys/fs/cgroup), this
 * answers an open of /proc/self/cgroup with the unified line only, as a
 * cgroup v2 host would. Nothing else is changed: the cgroups themselves are
 * the kernel's (the one global cgroup2 hierarchy), device access is decided
 * by Slurm's eBPF programs, and /proc/<pid>/cgroup (what flexslurm's node
 * agent reads) is left as the kernel writes it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef int (*open_fn)(const char *, int, ...);

static int is_self_cgroup(const char *path)
{
	return path && (!strcmp(path, "/proc/self/cgroup") || !strcmp(path, "/proc/thread-self/cgroup"));
}

static int unified_view(open_fn real, int flags)
{
	char buf[65536];
	size_t n = 0;
	ssize_t r;
	int in = real("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return in;
	while (n < sizeof(buf) - 1 && (r = read(in, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)r;
	close(in);
	buf[n] = '\0';
	int out = memfd_create("cgroup2-self-view", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
	if (out < 0)
		return -1;
	for (char *line = buf; line && *line;) {
		char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line + 1) : strlen(line);
		if (!strncmp(line, "0::", 3) && write(out, line, len) != (ssize_t)len) {
			close(out);
			errno = EIO;
			return -1;
		}
		line = end ? end + 1 : NULL;
	}
	lseek(out, 0, SEEK_SET);
	return out;
}

static int wrapped(const char *name, const char *path, int flags, va_list ap)
{
	open_fn real = (open_fn)dlsym(RTLD_NEXT, name);
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	if (is_self_cgroup(path) && (flags & O_ACCMODE) == O_RDONLY)
		return unified_view(real, flags);
	mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
	return real(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	int fd = wrapped("open", path, flags, ap);
	va_end(ap);
	return fd;
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	int fd = wrapped("open64", path, flags, ap);
	va_end(ap);
	return fd;
}
