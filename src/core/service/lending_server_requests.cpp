// SPDX-License-Identifier: GPL-2.0-or-later
// What comes to the lending server from outside its tick: the node
// agents' reports and the admin's requests (the listener's threads), and
// Slurm's select_p_* calls (under the controller's locks).
#include "core/service/lending_server.hpp"

#include "core/util/log.hpp"
#include "core/util/uids.hpp"

#include <algorithm>

namespace flexslurm
{

namespace
{

// The credential handle() opened, for the intake on the same thread (munge
// refuses a second opening as a replay).
thread_local Result<Sealed> *opened_here = nullptr;

} // namespace

Result<Sealed> LendingServer::take_opened(std::string_view)
{
	if (!opened_here)
		return Result<Sealed>::failure("no credential");
	return std::move(*opened_here);
}

IntakeRules LendingServer::rules()
{
	IntakeRules r;
	r.allowed_uids = settings_.admin_uids;
	r.node_known = [this](const std::string &node) {
		std::lock_guard<std::mutex> guard(addr_mutex_);
		return node_addrs_.count(node) > 0;
	};
	r.node_matches_peer = [this](const std::string &node, const std::string &peer) {
		std::lock_guard<std::mutex> guard(addr_mutex_);
		auto a = node_addrs_.find(node);
		return a != node_addrs_.end() &&
		       std::find(a->second.begin(), a->second.end(), peer) != a->second.end();
	};
	// An agent reports once an interval: a few more within one interval
	// is jitter, many is a flood.
	r.min_interval = std::max(Seconds(1), settings_.report_interval);
	r.max_age = std::max(Seconds(30), 3 * settings_.report_interval);
	return r;
}

std::string LendingServer::handle(std::string_view frame, const std::string &peer)
{
	Result<Sealed> opened = io_.open(frame);
	if (opened && !opened->replayed)
		if (auto admin = parse_admin(opened->payload))
			return answer_admin(*admin, opened->uid, peer);
	opened_here = &opened;
	auto report = intake_.take(frame, peer, io_.wall_clock());
	opened_here = nullptr;
	if (!report)
		return "";
	{
		std::lock_guard<std::mutex> guard(identities_mutex_);
		if (report->identities.empty())
			identities_.erase(report->node);
		else
			identities_[report->node] = report->identities;
	}
	Orders orders;
	{
		std::lock_guard<std::mutex> guard(book_mutex_);
		const Instant now = io_.steady_clock();
		book_.report(now, *report);
		orders = book_.orders_for(report->node, report->seq, now, settings_.slice_holders);
	}
	auto sealed = io_.seal(encode_orders(orders));
	if (!sealed) {
		log_error("lending: cannot seal the answer to " + report->node + ": " + sealed.error());
		return "";
	}
	return *sealed;
}

void LendingServer::log_refusal(const std::string &peer, uid_t uid)
{
	const Instant now = io_.steady_clock();
	std::lock_guard<std::mutex> guard(refusal_mutex_);
	const auto pass = refusals_.admit(peer, now);
	if (!pass)
		return; // counted, logged with its count when the window ends (tick)
	const std::string more =
	        pass->held ? " (" + std::to_string(pass->held) + " more refused before this)" : "";
	log_error("lending: admin request from " + std::string(pass->key) + " with uid " +
	          std::to_string(uid) + " refused: only root and SlurmUser may" + more +
	          "; further refusals from it are counted and logged once a minute");
}

std::string LendingServer::answer_admin(const Result<AdminRequest> &request, uid_t uid,
                                        const std::string &peer)
{
	std::string text;
	if (!uid_allowed(settings_.admin_uids, uid)) {
		log_refusal(peer, uid);
		text = "error: only root and SlurmUser may use flexslurm-lending\n";
	} else if (!request) {
		text = "error: " + request.error() + "\n";
	} else if (request->kind == AdminRequest::Kind::Status) {
		BookSnapshot snapshot;
		{
			std::lock_guard<std::mutex> guard(book_mutex_);
			snapshot = book_.snapshot(io_.steady_clock());
		}
		text = snapshot.status_text();
		if (text.size() > max_status_answer_bytes)
			text = fit_status_answer(text, status_path());
	} else if (request->kind == AdminRequest::Kind::Devices) {
		std::vector<NodeDeviceIds> nodes;
		{
			std::lock_guard<std::mutex> guard(identities_mutex_);
			for (const auto &[node, devices] : identities_)
				nodes.push_back({node, devices});
		}
		text = encode_device_table(nodes, max_status_answer_bytes);
	} else {
		bool found = false;
		{
			std::lock_guard<std::mutex> guard(book_mutex_);
			found = book_.admin_reclaim(io_.steady_clock(), request->job);
		}
		if (found) {
			log_info("lending: admin (uid " + std::to_string(uid) + ") takes back the loans of " +
			         job_name(request->job));
			text = "reclaim of " + job_name(request->job) + " started\n";
		} else {
			text = "error: " + job_name(request->job) + " borrows nothing\n";
		}
	}
	auto sealed = io_.seal(text);
	if (!sealed) {
		log_error("lending: cannot seal the answer to an admin request from " + peer + ": " +
		          sealed.error());
		sealed = io_.seal("error: the answer could not be sealed: " + sealed.error() + "\n");
	}
	return sealed ? *sealed : "";
}

std::set<int> LendingServer::lendable(const std::string &node, const std::function<bool(int)> &allocated_now)
{
	std::lock_guard<std::mutex> guard(book_mutex_);
	const auto units = book_.lendable_units(node, io_.steady_clock(), allocated_now);
	return {units.begin(), units.end()};
}

void LendingServer::committed(uint32_t job, const std::vector<std::pair<std::string, int>> &units)
{
	std::vector<std::string> events;
	{
		std::lock_guard<std::mutex> guard(book_mutex_);
		const Instant now = io_.steady_clock();
		for (const auto &[node, unit] : units)
			book_.lent(now, node, unit, job);
		++commits_;
		events = book_.take_events();
	}
	for (const std::string &e : events)
		log_info("lending: " + e);
}

std::optional<JobTotals> LendingServer::ended(uint32_t job)
{
	std::lock_guard<std::mutex> guard(book_mutex_);
	const auto t = book_.totals().find(job);
	if (t == book_.totals().end() || !t->second.lent_slice_seconds)
		return std::nullopt;
	log_info("lending: " + job_name(job) + " lent " + std::to_string(t->second.lent_slice_seconds) +
	         " slice-s");
	return t->second;
}

size_t LendingServer::totals_count()
{
	std::lock_guard<std::mutex> guard(book_mutex_);
	return book_.totals().size();
}

size_t LendingServer::active_reclaims()
{
	std::lock_guard<std::mutex> guard(book_mutex_);
	return book_.active_reclaims();
}

} // namespace flexslurm
