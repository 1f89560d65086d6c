// SPDX-License-Identifier: GPL-2.0-or-later
// decode_job_limits: the per-job limits file the job prolog writes and each
// step's slurmstepd reads (as root). Accepted files re-encode to a fixed
// point within the documented bounds, and what is built from them (the
// preload file, MPS commands) keeps one setting per line.
#include "fuzz_common.hpp"

#include "core/model/limits.hpp"

using namespace flexslurm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	const std::string_view in = fuzz::text(data, size);
	const Result<JobLimits> l = decode_job_limits(in);
	if (!l)
		return 0;
	FUZZ_CHECK(l->job != 0 && l->devices.size() <= 64, std::string(in));
	for (const DeviceLimit &d : l->devices) {
		FUZZ_CHECK(d.compute_percent >= 1 && d.compute_percent <= 100, std::string(in));
		FUZZ_CHECK(d.host_index >= 0 && d.host_index <= max_vendor_index && d.ordinal >= 0 &&
		                   d.ordinal <= 4095,
		           std::string(in));
		FUZZ_CHECK(d.memory_mib <= (uint64_t{1} << 40), std::string(in));
	}
	const std::string once = encode_job_limits(*l);
	const Result<JobLimits> again = decode_job_limits(once);
	FUZZ_CHECK(again, once + again.error());
	FUZZ_CHECK(*again == *l, once);
	FUZZ_CHECK(encode_job_limits(*again) == once, once);
	const std::string conf = preload_config(l->devices, "/run/flexslurm/cache");
	FUZZ_CHECK(conf.empty() || conf.back() == '\n', conf);
	(void)mps_limit_commands(l->devices, l->uid);
	(void)preload_environment(l->devices, "/usr/lib/libvgpu.so", "", "/run/flexslurm/cache");
	return 0;
}
