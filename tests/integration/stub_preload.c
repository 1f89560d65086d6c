/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Stand-in for an interception library (no GPU in CI): when a process loads
 * it, it prints the limits it applies. Like SoftMig (the HAMi-core fork used
 * on Slurm), it takes them from a root-owned per-job file found by
 * SLURM_JOB_ID (here JOBS_DIR/<id>/preload.conf, opened without following a
 * link, refused unless root's and not writable by others) and only without
 * one from HAMi-core's variables. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char sm[32] = "-", mem0[32] = "-", cache[256] = "-";

static void take(const char *key, const char *value)
{
	if (!strcmp(key, "CUDA_DEVICE_SM_LIMIT"))
		snprintf(sm, sizeof sm, "%s", value);
	else if (!strcmp(key, "CUDA_DEVICE_MEMORY_LIMIT_0"))
		snprintf(mem0, sizeof mem0, "%s", value);
	else if (!strcmp(key, "CUDA_DEVICE_MEMORY_SHARED_CACHE"))
		snprintf(cache, sizeof cache, "%s", value);
}

__attribute__((constructor)) static void report(void)
{
	const char *from = "env";
	const char *job = getenv("SLURM_JOB_ID");
	char path[512], buf[4096];
	snprintf(path, sizeof path, "%s/%s/preload.conf", JOBS_DIR, job ? job : "none");
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == 0 && !(st.st_mode & 022)) {
		ssize_t n = read(fd, buf, sizeof buf - 1);
		buf[n > 0 ? n : 0] = '\0';
		from = "file";
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
			char *eq = strchr(line, '=');
			if (eq) {
				*eq = '\0';
				take(line, eq + 1);
			}
		}
	} else {
		const char *keys[] = {"CUDA_DEVICE_SM_LIMIT", "CUDA_DEVICE_MEMORY_LIMIT_0",
		                      "CUDA_DEVICE_MEMORY_SHARED_CACHE"};
		for (int i = 0; i < 3; i++)
			if (getenv(keys[i]))
				take(keys[i], getenv(keys[i]));
	}
	if (fd >= 0)
		close(fd);
	fprintf(stderr, "STUB from=%s sm=%s mem0=%s cache=%s\n", from, sm, mem0, cache);
}
