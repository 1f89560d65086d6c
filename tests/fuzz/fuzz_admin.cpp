// SPDX-License-Identifier: GPL-2.0-or-later
// parse_admin: an admin's request (flexslurm-lending) on the report port.
// A request that parses re-encodes to a fixed point; a reclaim names a
// real job id, status and devices none.
#include "fuzz_common.hpp"

#include "core/model/admin_request.hpp"
#include "core/model/report.hpp"

using namespace flexslurm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	const std::string_view in = fuzz::text(data, size);
	const auto r = parse_admin(in);
	if (!r || !*r)
		return 0;
	const AdminRequest &a = **r;
	// A reclaim names a job; status and devices name none.
	FUZZ_CHECK((a.kind == AdminRequest::Kind::Reclaim) == (a.job != 0), std::string(in));
	const std::string once = encode_admin(a);
	const auto again = parse_admin(once);
	FUZZ_CHECK(again && *again, once);
	FUZZ_CHECK(encode_admin(**again) == once, once);
	// An admin request is never taken for a node report, nor the reverse.
	FUZZ_CHECK(!parse_report(in), std::string(in));
	return 0;
}
