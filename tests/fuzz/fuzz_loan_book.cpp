// SPDX-License-Identifier: GPL-2.0-or-later
// LoanBook::restore: slurmctld's lending state file (StateSaveLocation),
// input from disk that a crash, a full disk or an editor may have mangled.
// A state it accepts must survive serialize -> restore unchanged, and the
// restored book must run (tick, orders, status) without overflow: every
// stop order is 0..2^31-1 seconds (what parse_orders accepts on the node),
// and a reclaim's order counts down from its restored deadline (issue 13:
// a corrupted deadline once overflowed into an immediate kill order).
#include "fuzz_common.hpp"

#include "core/model/loan_book.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <sstream>

using namespace flexslurm;

namespace
{
constexpr Seconds telemetry_timeout{30};
constexpr Seconds hard_stop_after{20};

// (borrower, deadline, nodes) of the reclaim lines of a serialized state.
struct ReclaimLine {
	uint32_t borrower = 0;
	int64_t deadline = 0;
	std::vector<std::string> nodes;
};

std::vector<ReclaimLine> reclaims_of(const std::string &state)
{
	std::vector<ReclaimLine> out;
	std::istringstream in(state);
	std::string line;
	while (std::getline(in, line)) {
		if (line.rfind("reclaim ", 0) != 0)
			continue;
		ReclaimLine r;
		std::istringstream words(line);
		std::string w;
		words >> w >> r.borrower;
		while (words >> w) {
			if (w.rfind("deadline=", 0) == 0)
				r.deadline = std::stoll(w.substr(9));
			if (w.rfind("nodes=", 0) == 0) {
				std::string list = w.substr(6);
				std::istringstream names(list);
				std::string name;
				while (std::getline(names, name, ','))
					r.nodes.push_back(name);
			}
		}
		out.push_back(r);
	}
	return out;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	const std::string_view in = fuzz::text(data, size);
	static const LendingPolicy policy;
	LoanBook book(policy, telemetry_timeout, hard_stop_after);
	std::string why;
	if (!book.restore(in, why)) {
		FUZZ_CHECK(!why.empty(), std::string(in));
		FUZZ_CHECK(book.active_reclaims() == 0 && book.totals().empty(), std::string(in));
		return 0;
	}
	const Instant now{Seconds(1700000000)};
	const std::string state = book.serialize(now);
	LoanBook again(policy, telemetry_timeout, hard_stop_after);
	FUZZ_CHECK(again.restore(state, why), state + why);
	FUZZ_CHECK(again.serialize(now) == state, state);

	for (const ReclaimLine &r : reclaims_of(state)) {
		const int64_t left = r.deadline + hard_stop_after.count() - now.time_since_epoch().count();
		const int64_t expected = std::clamp<int64_t>(left, 0, std::numeric_limits<int32_t>::max());
		for (const std::string &node : r.nodes) {
			const Orders o = book.orders_for(node, 1, now);
			const auto stop =
			        std::find_if(o.stops.begin(), o.stops.end(),
			                     [&](const StopOrder &s) { return s.job == r.borrower; });
			FUZZ_CHECK(stop != o.stops.end(), state);
			FUZZ_CHECK(stop->in_seconds == expected,
			           state + "in_seconds " + std::to_string(stop->in_seconds));
			FUZZ_CHECK(parse_orders(encode_orders(o)), encode_orders(o));
		}
	}
	// The restored book keeps running: ticks from now on, and its status.
	for (int step = 0; step < 3; ++step) {
		const Instant t = now + Seconds(step * 400);
		(void)book.tick(t);
		(void)book.status(t);
		(void)book.take_events();
	}
	return 0;
}
