/* Test harness only (tests/integration/test_accounting.py): preloaded into
 * sreport, moves its wall clock FLEXSLURM_CLOCK_SHIFT seconds ahead.
 *
 * sreport reports whole hours and ends every report at the last hour begun
 * before its now (sanity_check_endtime, then rounded to the hour), so jobs of
 * the current hour show only an hour later. Run an hour "later", sreport
 * reads the job records of this hour as it would at the next. Nothing else
 * is changed: slurmdbd, slurmctld and munged keep the real clock. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift(void)
{
	const char *s = getenv("FLEXSLURM_CLOCK_SHIFT");
	return s ? atol(s) : 0;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	if (!real)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	const int rc = real(id, ts);
	if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += shift();
	return rc;
}

time_t time(time_t *t)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (t)
		*t = ts.tv_sec;
	return ts.tv_sec;
}

int gettimeofday(struct timeval *tv, void *tz)
{
	struct timespec ts;
	const int rc = clock_gettime(CLOCK_REALTIME, &ts);
	(void)tz;
	if (tv) {
		tv->tv_sec = ts.tv_sec;
		tv->tv_usec = ts.tv_nsec / 1000;
	}
	return rc;
}
