/* Stand-in for an interception library such as HAMi-core (no GPU in CI):
 * when a process loads it, it prints the limits it was given. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void report(void)
{
	const char *sm = getenv("CUDA_DEVICE_SM_LIMIT");
	const char *mem = getenv("CUDA_DEVICE_MEMORY_LIMIT_0");
	fprintf(stderr, "STUB sm=%s mem0=%s\n", sm ? sm : "-", mem ? mem : "-");
}
