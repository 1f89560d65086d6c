// SPDX-License-Identifier: GPL-2.0-or-later
// The telemetry file backend: <dir>/<device> files that an admin's or a
// vendor tool's exporter writes and slurmd reads every few seconds. The
// input is written to such a file (in a private directory under /dev/shm,
// or $TMPDIR) and sampled. Accepted samples are within bounds: busy
// 0..100, at most max_jobs_per_device jobs, no job 0 or twice.
#include "fuzz_common.hpp"

#include "core/model/report.hpp"
#include "core/model/slice_layout.hpp"
#include "core/io/telemetry.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

using namespace flexslurm;

namespace
{
struct Scene {
	std::string dir;
	std::string file;
	SliceLayout layout;
	std::unique_ptr<TelemetryBackend> backend;

	Scene()
	{
		const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::getenv("TMPDIR");
		std::string pattern = std::string(tmp ? tmp : "/tmp") + "/flexslurm-fuzz-XXXXXX";
		if (!mkdtemp(pattern.data()))
			fuzz::failed("mkdtemp", __FILE__, __LINE__, pattern);
		dir = pattern;
		file = dir + "/nvidia0";
		layout = *SliceLayout::deserialize(
		        "flexslurm-layout 2\n"
		        "nvidia\t0\tt4\t/dev/nvidia0\t195:0\t0\t4\t25\t4294967296\t\t0\t-\t-\n");
		backend = make_file_backend(layout, dir);
	}
	~Scene()
	{
		unlink(file.c_str());
		rmdir(dir.c_str());
	}
};
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	static Scene scene;
	{
		const int fd = open(scene.file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, data, size) != static_cast<ssize_t>(size))
			fuzz::failed("write", __FILE__, __LINE__, scene.file);
		close(fd);
	}
	const auto samples = scene.backend->sample();
	FUZZ_CHECK(samples, samples.error());
	FUZZ_CHECK(samples->size() <= 1, scene.file);
	for (const DeviceSample &s : *samples) {
		FUZZ_CHECK(size <= 64 * 1024, "accepted a file over 64 KiB");
		FUZZ_CHECK(s.device == 0 && s.busy_percent >= 0 && s.busy_percent <= 100,
		           std::string(fuzz::text(data, size)));
		FUZZ_CHECK(s.per_job == !s.jobs.empty() && s.jobs.size() <= max_jobs_per_device,
		           std::string(fuzz::text(data, size)));
		std::set<uint32_t> jobs;
		for (const JobUse &j : s.jobs) {
			FUZZ_CHECK(j.job != 0 && jobs.insert(j.job).second,
			           std::string(fuzz::text(data, size)));
			FUZZ_CHECK(j.busy_percent >= 0 && j.busy_percent <= 100,
			           std::string(fuzz::text(data, size)));
		}
	}
	return 0;
}
