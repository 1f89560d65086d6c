// SPDX-License-Identifier: GPL-2.0-or-later
// job_of_cgroup_text: which Slurm job a process belongs to, from the text
// of /proc/<pid>/cgroup (whose paths a job user partly chooses: its own
// sub-cgroups). The node agent SIGKILLs by this answer, so a job it names
// must appear as a job_<id> component in the text, and adding lines that
// name no job never changes the answer.
#include "fuzz_common.hpp"

#include "core/io/telemetry.hpp"

using namespace flexslurm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	const std::string_view in = fuzz::text(data, size);
	const auto job = job_of_cgroup_text(in);
	if (!job)
		return 0;
	FUZZ_CHECK(*job != 0, std::string(in));
	// (Leading zeros pass: job_007 names job 7; Slurm never writes them.)
	bool named = false;
	for (size_t at = in.find("job_"); at != std::string_view::npos && !named;
	     at = in.find("job_", at + 1)) {
		size_t digits = at + 4;
		while (digits < in.size() && in[digits] == '0')
			++digits;
		named = in.substr(digits, std::to_string(*job).size()) == std::to_string(*job);
	}
	FUZZ_CHECK(named, std::string(in));
	const std::string more = std::string(in) + "\n0::/user.slice/user-1000.slice\n";
	FUZZ_CHECK(job_of_cgroup_text(more) == job, more);
	return 0;
}
