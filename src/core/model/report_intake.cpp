// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/report_intake.hpp"

#include "core/util/log.hpp"
#include "core/util/names.hpp"

#include <algorithm>
#include <limits>

namespace flexslurm
{

namespace
{

constexpr NameTable<DropReason> drop_reason_names[] = {
        {DropReason::BadCredential, "bad-credential"},
        {DropReason::Replayed, "replayed"},
        {DropReason::WrongUid, "wrong-uid"},
        {DropReason::Malformed, "malformed"},
        {DropReason::Oversized, "oversized"},
        {DropReason::UnknownNode, "unknown-node"},
        {DropReason::WrongAddress, "wrong-address"},
        {DropReason::Stale, "stale"},
        {DropReason::Flood, "flood"},
};

} // namespace

std::string_view drop_reason_name(DropReason r) noexcept
{
	return name_of(drop_reason_names, r);
}

ReportIntake::ReportIntake(IntakeRules rules, Opener opener)
    : rules_(std::move(rules)), opener_(std::move(opener))
{
}

uint64_t ReportIntake::dropped(DropReason r) const noexcept
{
	const auto i = static_cast<size_t>(r);
	return i < drop_reason_count ? dropped_[i].load(std::memory_order_relaxed) : 0;
}

uint64_t ReportIntake::accepted() const noexcept
{
	return accepted_.load(std::memory_order_relaxed);
}

std::optional<Report> ReportIntake::take(std::string_view frame, const std::string &peer, Instant now)
{
	// The opener and the rules' callbacks are the caller's code: whatever they
	// throw must not leave the listener thread.
	try {
		return take_checked(frame, peer, now);
	} catch (const std::exception &e) {
		log_error("reclaim: report from " + peer + " not handled: " + e.what());
	} catch (...) {
		log_error("reclaim: report from " + peer + " not handled: unknown exception");
	}
	return std::nullopt;
}

std::optional<Report> ReportIntake::take_checked(std::string_view frame, const std::string &peer, Instant now)
{
	if (frame.size() > max_message_bytes)
		return drop(DropReason::Oversized, peer, "?",
		            "frame of " + std::to_string(frame.size()) + " bytes is over the " +
		                    std::to_string(max_message_bytes) + "-byte limit",
		            now);

	Result<Sealed> sealed = opener_ ? opener_(frame) : Result<Sealed>::failure("no credential opener");
	if (!sealed)
		return drop(DropReason::BadCredential, peer, "?", sealed.error(), now);
	const auto &uids = rules_.allowed_uids;
	if (std::find(uids.begin(), uids.end(), sealed->uid) == uids.end())
		return drop(DropReason::WrongUid, peer, "?",
		            "credential of uid " + std::to_string(sealed->uid) + ", which may not report",
		            now);

	Result<Report> report = parse_report(sealed->payload);
	if (!report)
		return drop(DropReason::Malformed, peer, "?", report.error(), now);
	const std::string &node = report->node;
	if (!rules_.node_known || !rules_.node_known(node))
		return drop(DropReason::UnknownNode, peer, node, "not a node of this cluster", now);
	if (!rules_.node_matches_peer || !rules_.node_matches_peer(node, peer))
		return drop(DropReason::WrongAddress, peer, node, "the node does not have address " + peer,
		            now);

	// Saturating bounds: neither a far-off sent_at nor a huge max_age may overflow.
	using Limits = std::numeric_limits<int64_t>;
	const int64_t now_s = now.time_since_epoch().count();
	const int64_t age = std::max<int64_t>(rules_.max_age.count(), 0);
	const int64_t oldest = now_s < Limits::min() + age ? Limits::min() : now_s - age;
	const int64_t newest = now_s > Limits::max() - age ? Limits::max() : now_s + age;
	if (report->sent_at < oldest || report->sent_at > newest)
		return drop(DropReason::Stale, peer, node,
		            "sent at " + std::to_string(report->sent_at) + ", now is " +
		                    std::to_string(now_s) + " (max_age " + std::to_string(age) + " s)",
		            now);

	std::optional<DropReason> refused;
	std::string why;
	{
		std::lock_guard<std::mutex> lock(nodes_mutex_);
		const auto known = nodes_.find(node);
		if (sealed->replayed) {
			refused = DropReason::Replayed;
			why = "munge says the credential was replayed";
		} else if (known != nodes_.end() &&
		           std::pair(report->epoch, report->seq) <=
		                   std::pair(known->second.epoch, known->second.seq)) {
			refused = DropReason::Replayed;
			why = "epoch " + std::to_string(report->epoch) + " seq " +
			      std::to_string(report->seq) + " is not newer than the last accepted (epoch " +
			      std::to_string(known->second.epoch) + " seq " +
			      std::to_string(known->second.seq) + ")";
		} else if (known != nodes_.end() && now >= known->second.window_start &&
		           now - known->second.window_start < rules_.min_interval &&
		           known->second.in_window >= flood_burst) {
			// Whole seconds and network jitter put two honest reports in
			// one window now and then; a flood puts many. A clock stepped
			// back (now < window_start) is not the node's fault.
			refused = DropReason::Flood;
			why = std::to_string(known->second.in_window + 1) + " reports within " +
			      std::to_string(rules_.min_interval.count()) + " s (at most " +
			      std::to_string(flood_burst) + ")";
		} else {
			if (known == nodes_.end() && nodes_.size() >= std::max<size_t>(rules_.max_nodes, 1)) {
				// More nodes than the bound: forget the one heard from least recently.
				// Its replay protection falls back to munge's cache and max_age.
				const auto oldest_node = std::min_element(
				        nodes_.begin(), nodes_.end(), [](const auto &a, const auto &b) {
					        return a.second.last_accepted < b.second.last_accepted;
				        });
				nodes_.erase(oldest_node);
			}
			NodeState &state = nodes_[node];
			state.epoch = report->epoch;
			state.seq = report->seq;
			state.last_accepted = now;
			if (now < state.window_start || now - state.window_start >= rules_.min_interval) {
				state.window_start = now;
				state.in_window = 0;
			}
			++state.in_window;
		}
	}
	if (refused)
		return drop(*refused, peer, node, why, now);
	accepted_.fetch_add(1, std::memory_order_relaxed);
	return std::move(*report);
}

std::nullopt_t ReportIntake::drop(DropReason why, const std::string &peer, std::string_view node,
                                  const std::string &detail, Instant now)
{
	dropped_[static_cast<size_t>(why)].fetch_add(1, std::memory_order_relaxed);
	const auto line = [&]() {
		return "reclaim: dropped report from " + peer + " (" + std::string(node) +
		       "): " + std::string(drop_reason_name(why)) + ": " + detail;
	};
	std::lock_guard<std::mutex> lock(log_mutex_);
	const auto pass = log_.admit(peer, now);
	if (!pass)
		return std::nullopt;
	std::string text = line();
	if (pass->held > 0)
		text += " (" + std::to_string(pass->held) + " more drops from this peer not logged since " +
		        std::to_string(pass->since.count()) + " s)";
	log_error(text);
	return std::nullopt;
}

} // namespace flexslurm
