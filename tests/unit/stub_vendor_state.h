/* The fake devices of the AMD SMI, ROCm SMI and DCMI stubs (stub_amdsmi.c,
 * stub_rocmsmi.c, stub_dcmi.c), read from the control file named by the
 * environment variable STUB_ENV at every call, so that a test (unit or
 * integration: the node agent in slurmd loads the stub) changes what the
 * "library" reports by rewriting that file. One line each, # comments:
 *   version A [B [C [D]]]          what the version query answers
 *   fail init|processes CODE       that call returns CODE
 *   device BUS busy N used_mib N [total_mib N] [card N] [fail_busy CODE]
 *          [fail_memory CODE] [fail_pci CODE] [ddr 1]
 *   process BUS pid N mib N [busy N] [gfx_ns N]
 * Devices are listed in the library's own order (BUS: dddd:bb:dd.f); no
 * file (or no variable): no devices. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUB_MAX_DEVICES 16
#define STUB_MAX_PROCESSES 64

struct stub_device {
	unsigned domain, bus, slot, function;
	unsigned busy;
	unsigned long long used_mib, total_mib;
	int card;
	int fail_busy, fail_memory, fail_pci;
	int ddr; /* DCMI: DDR memory, no HBM */
};

struct stub_process {
	int device;
	unsigned pid;
	unsigned long long mib;
	unsigned busy;
	int has_gfx;
	unsigned long long gfx_ns;
};

struct stub_state {
	unsigned version[4];
	int fail_init, fail_processes;
	int device_count, process_count;
	struct stub_device devices[STUB_MAX_DEVICES];
	struct stub_process processes[STUB_MAX_PROCESSES];
};

static struct stub_state stub;

static int stub_find_device(const char *bus_id)
{
	unsigned d = 0, b = 0, s = 0, f = 0;
	int i;
	if (sscanf(bus_id, "%x:%x:%x.%x", &d, &b, &s, &f) != 4)
		return -1;
	for (i = 0; i < stub.device_count; i++)
		if (stub.devices[i].domain == d && stub.devices[i].bus == b && stub.devices[i].slot == s &&
		    stub.devices[i].function == f)
			return i;
	return -1;
}

static void stub_load(void)
{
	const char *path = getenv(STUB_ENV);
	char line[512];
	FILE *f;
	memset(&stub, 0, sizeof stub);
	if (!path || !(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof line, f)) {
		char *words[24];
		int n = 0, i;
		char *hash = strchr(line, '#'), *save = NULL, *w;
		if (hash)
			*hash = '\0';
		for (w = strtok_r(line, " \t\n", &save); w && n < 24; w = strtok_r(NULL, " \t\n", &save))
			words[n++] = w;
		if (n == 0)
			continue;
		if (!strcmp(words[0], "version")) {
			for (i = 1; i < n && i <= 4; i++)
				stub.version[i - 1] = (unsigned)strtoul(words[i], NULL, 10);
		} else if (!strcmp(words[0], "fail") && n == 3) {
			int code = atoi(words[2]);
			if (!strcmp(words[1], "init"))
				stub.fail_init = code;
			else if (!strcmp(words[1], "processes"))
				stub.fail_processes = code;
		} else if (!strcmp(words[0], "device") && n >= 2 && stub.device_count < STUB_MAX_DEVICES) {
			struct stub_device *d = &stub.devices[stub.device_count];
			if (sscanf(words[1], "%x:%x:%x.%x", &d->domain, &d->bus, &d->slot, &d->function) != 4)
				continue;
			d->card = stub.device_count;
			d->total_mib = 65536;
			for (i = 2; i + 1 < n; i += 2) {
				unsigned long long v = strtoull(words[i + 1], NULL, 10);
				if (!strcmp(words[i], "busy"))
					d->busy = (unsigned)v;
				else if (!strcmp(words[i], "used_mib"))
					d->used_mib = v;
				else if (!strcmp(words[i], "total_mib"))
					d->total_mib = v;
				else if (!strcmp(words[i], "card"))
					d->card = (int)v;
				else if (!strcmp(words[i], "fail_busy"))
					d->fail_busy = atoi(words[i + 1]);
				else if (!strcmp(words[i], "fail_memory"))
					d->fail_memory = atoi(words[i + 1]);
				else if (!strcmp(words[i], "ddr"))
					d->ddr = (int)v;
				else if (!strcmp(words[i], "fail_pci"))
					d->fail_pci = atoi(words[i + 1]);
			}
			stub.device_count++;
		} else if (!strcmp(words[0], "process") && n >= 2 &&
		           stub.process_count < STUB_MAX_PROCESSES) {
			struct stub_process *p = &stub.processes[stub.process_count];
			memset(p, 0, sizeof *p);
			p->device = stub_find_device(words[1]);
			if (p->device < 0)
				continue;
			for (i = 2; i + 1 < n; i += 2) {
				unsigned long long v = strtoull(words[i + 1], NULL, 10);
				if (!strcmp(words[i], "pid"))
					p->pid = (unsigned)v;
				else if (!strcmp(words[i], "mib"))
					p->mib = v;
				else if (!strcmp(words[i], "busy"))
					p->busy = (unsigned)v;
				else if (!strcmp(words[i], "gfx_ns")) {
					p->gfx_ns = v;
					p->has_gfx = 1;
				}
			}
			stub.process_count++;
		}
	}
	fclose(f);
}
