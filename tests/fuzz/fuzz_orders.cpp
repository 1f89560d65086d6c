// SPDX-License-Identifier: GPL-2.0-or-later
// parse_orders: the controller's reply that a node agent (in slurmd, as
// root) turns into SIGKILLs. Every accepted delay must be 0..2^31-1 and
// encode(parse(x)) a fixed point.
#include "fuzz_common.hpp"

#include "core/model/report.hpp"

#include <limits>
#include <set>

using namespace flexslurm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	const std::string_view in = fuzz::text(data, size);
	const Result<Orders> o = parse_orders(in);
	if (!o) {
		FUZZ_CHECK(!o.error().empty(), std::string(in));
		return 0;
	}
	FUZZ_CHECK(valid_node_name(o->node), o->node);
	FUZZ_CHECK(o->stops.size() <= max_stop_orders, std::string(in));
	std::set<uint32_t> jobs;
	for (const StopOrder &s : o->stops) {
		FUZZ_CHECK(s.job != 0 && jobs.insert(s.job).second, std::string(in));
		FUZZ_CHECK(s.in_seconds >= 0 && s.in_seconds <= std::numeric_limits<int32_t>::max(),
		           std::string(in));
	}
	FUZZ_CHECK(o->slices.size() <= max_slice_holders, std::string(in));
	std::set<int> units;
	for (const SliceHolders &h : o->slices)
		FUZZ_CHECK(h.unit >= 0 && h.unit <= max_slice_unit && units.insert(h.unit).second,
		           std::string(in));
	const std::string once = encode_orders(*o);
	const Result<Orders> again = parse_orders(once);
	FUZZ_CHECK(again, once + again.error());
	FUZZ_CHECK(encode_orders(*again) == once, once);
	return 0;
}
