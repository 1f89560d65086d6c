// SPDX-License-Identifier: GPL-2.0-or-later
// ReportIntake::take: what the listener does with a frame from the network,
// through a fake credential opener. The input is a sequence of messages
// separated by \x01; each starts with a control byte (bit 0: the
// credential is a replay, bit 1: a uid that may not report, bit 2: the
// opener fails, bits 3-7: seconds the clock moves on) and the rest is the
// credential's payload. Accepted reports must parse, come from a known node
// at its address, and be newer (epoch, seq) than that node's last one;
// every message is counted exactly once.
#include "fuzz_common.hpp"

#include "core/model/report_intake.hpp"

#include <map>
#include <utility>

using namespace flexslurm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	std::string_view rest = fuzz::text(data, size);
	IntakeRules rules;
	rules.allowed_uids = {0, 64030};
	rules.node_known = [](const std::string &node) { return node[0] == 'n'; };
	rules.node_matches_peer = [](const std::string &node, const std::string &) {
		return node.find('x') == std::string::npos;
	};
	ReportIntake intake(rules, [](std::string_view credential) -> Result<Sealed> {
		const auto control = credential.empty() ? 0u : static_cast<unsigned char>(credential[0]);
		if (control & 4u)
			return Result<Sealed>::failure("munge: invalid credential");
		Sealed s;
		s.payload = std::string(credential.substr(credential.empty() ? 0 : 1));
		s.uid = (control & 2u) ? 1000 : 64030;
		s.replayed = (control & 1u) != 0;
		return s;
	});
	Instant now{Seconds(1700000000)};
	std::map<std::string, std::pair<uint64_t, uint64_t>> last; // node: (epoch, seq) accepted
	uint64_t messages = 0;
	while (!rest.empty()) {
		const std::string_view frame = fuzz::next_part(rest);
		++messages;
		if (!frame.empty())
			now += Seconds(static_cast<unsigned char>(frame[0]) >> 3);
		const auto r = intake.take(frame, "10.0.0.1", now);
		if (!r)
			continue;
		const std::string payload(frame.substr(1));
		FUZZ_CHECK(parse_report(payload), payload);
		FUZZ_CHECK((static_cast<unsigned char>(frame[0]) & 7u) == 0, payload);
		FUZZ_CHECK(r->node[0] == 'n' && r->node.find('x') == std::string::npos, payload);
		const auto key = std::make_pair(r->epoch, r->seq);
		const auto it = last.find(r->node);
		FUZZ_CHECK(it == last.end() || key > it->second, payload);
		last[r->node] = key;
	}
	uint64_t counted = intake.accepted();
	for (size_t i = 0; i < drop_reason_count; ++i)
		counted += intake.dropped(static_cast<DropReason>(i));
	FUZZ_CHECK(counted == messages, std::to_string(counted) + " of " + std::to_string(messages));
	return 0;
}
