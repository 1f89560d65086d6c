// SPDX-License-Identifier: GPL-2.0-or-later
// parse_report: the node agent's report, read by the listener in slurmctld
// from anyone who holds a Munge credential. Checks the documented bounds of
// what it accepts and that encode(parse(x)) is a fixed point.
#include "fuzz_common.hpp"

#include "core/model/report.hpp"

#include <set>

using namespace flexslurm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	const std::string_view in = fuzz::text(data, size);
	const Result<Report> r = parse_report(in);
	if (!r) {
		FUZZ_CHECK(!r.error().empty(), std::string(in));
		return 0;
	}
	FUZZ_CHECK(valid_node_name(r->node), r->node);
	FUZZ_CHECK(r->devices.size() <= max_report_devices, std::string(in));
	std::set<int> devices;
	for (const DeviceReport &d : r->devices) {
		FUZZ_CHECK(d.device >= 0 && d.device < static_cast<int>(max_report_devices), std::string(in));
		FUZZ_CHECK(devices.insert(d.device).second, std::string(in));
		FUZZ_CHECK(d.busy_percent >= 0 && d.busy_percent <= 100, std::string(in));
		FUZZ_CHECK(d.per_job || d.jobs.empty(), std::string(in));
		FUZZ_CHECK(d.jobs.size() <= max_jobs_per_device, std::string(in));
		std::set<uint32_t> jobs;
		for (const JobReport &j : d.jobs) {
			FUZZ_CHECK(j.job != 0 && jobs.insert(j.job).second, std::string(in));
			FUZZ_CHECK(j.busy_percent >= 0 && j.busy_percent <= 100, std::string(in));
		}
	}
	const std::string once = encode_report(*r);
	const Result<Report> again = parse_report(once);
	FUZZ_CHECK(again, once + again.error());
	FUZZ_CHECK(encode_report(*again) == once, once);
	return 0;
}
