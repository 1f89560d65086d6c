// SPDX-License-Identifier: GPL-2.0-or-later
// The node agent with Munge, the network and the killer faked (AgentRig),
// for test_agent and the book-and-agent test of test_loan_book.
#pragma once

#include "log_capture.hpp"
#include "suites.hpp"

#include "core/io/telemetry.hpp"
#include "core/model/report.hpp"
#include "core/model/slice_layout.hpp"
#include "core/service/agent.hpp"
#include "core/util/log.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace
{

using namespace flexslurm;
using namespace std::chrono_literals;

// Device 0: 4 slices with 1 GiB per borrow unit; device 1: 2 slices, nothing to lend.
inline SliceLayout two_device_layout()
{
	auto layout = SliceLayout::deserialize(
	        "flexslurm-layout 1\n"
	        "nvidia\t0\ta100\t/dev/nvidia0\t195:0\t0\t4\t25\t10737418240\t\t1073741824\n"
	        "nvidia\t1\ta100\t/dev/nvidia1\t195:1\t4\t2\t50\t10737418240\t\t0\n");
	ck_assert_msg(static_cast<bool>(layout), "%s", layout.error().c_str());
	return *layout;
}

class ScriptedTelemetry : public TelemetryBackend
{
public:
	std::string_view name() const noexcept override { return "scripted"; }
	Result<std::vector<DeviceSample>> sample() override { return next; }
	Result<std::vector<DeviceSample>> next = std::vector<DeviceSample>{};
};

// A node agent with Munge, the network and the killer faked: seal is the
// identity, the "credential" of an answer is its payload with the uid (and
// replay flag) the test sets, and `answer` plays the controllers.
struct AgentRig {
	struct Exchange {
		std::string host;
		std::string bind_address;
		std::string request;
	};
	Instant wall = Instant(Seconds(1000));
	uid_t answer_uid = 0;
	bool answer_replayed = false;
	bool answer_forged = false;  // munge cannot open it
	bool bind_not_local = false; // the node's address is not this host's
	double random = 0;           // what io.random draws
	std::function<Result<std::string>(const std::string &host, const Report &report)> answer;
	std::vector<Exchange> exchanges;
	std::vector<uint32_t> killed;
	std::vector<uint64_t> ordered_at; // kill_job's second argument, per kill
	uint64_t ticks = 1000;            // the agent's boot clock
	ScriptedTelemetry *telemetry = nullptr;
	std::unique_ptr<NodeAgent> agent;

	std::map<std::string, std::string> files; // io.write_public
	std::vector<std::string> removed;         // io.remove

	explicit AgentRig(std::vector<std::string> controllers = {"ctl1"}, std::string bind_address = "",
	                  const std::function<void(AgentSettings &)> &tune = nullptr)
	{
		record_log();
		AgentSettings settings;
		settings.node = "n1";
		settings.controllers = std::move(controllers);
		settings.port = 6830;
		settings.bind_address = std::move(bind_address);
		settings.controller_uids = {0, 450};
		if (tune)
			tune(settings);
		AgentIo io;
		io.write_public = [this](const std::string &path, const std::string &text) {
			files[path] = text;
			return Result<bool>(true);
		};
		io.remove = [this](const std::string &path) {
			files.erase(path);
			removed.push_back(path);
		};
		io.seal = [](std::string_view payload) { return Result<std::string>(std::string(payload)); };
		io.open = [this](std::string_view credential) -> Result<Sealed> {
			if (answer_forged)
				return Result<Sealed>::failure("Invalid credential format");
			return Sealed{std::string(credential), answer_uid, 0, answer_replayed};
		};
		io.exchange = [this](const std::string &host, uint16_t port, std::string_view request,
		                     const std::string &bind, Seconds timeout) -> Exchanged {
			ck_assert_uint_eq(port, 6830);
			ck_assert(timeout == 3s);
			exchanges.push_back({host, bind, std::string(request)});
			auto report = parse_report(request);
			ck_assert_msg(static_cast<bool>(report), "%s", report.error().c_str());
			const std::string not_ours = ":6830: bind: Cannot assign requested address";
			if (bind_not_local && !bind.empty())
				return {Result<std::string>::failure(host + not_ours), true};
			return {answer(host, *report)};
		};
		io.kill_job = [this](uint32_t job, uint64_t at) {
			killed.push_back(job);
			ordered_at.push_back(at);
			return 1;
		};
		io.boot_ticks = [this] { return ticks; };
		io.wall_clock = [this] { return wall; };
		io.random = [this] { return random; };
		auto backend = std::make_unique<ScriptedTelemetry>();
		telemetry = backend.get();
		agent = std::make_unique<NodeAgent>(std::move(settings), two_device_layout(),
		                                    std::move(backend), std::move(io));
	}

	// Answers every report with these stops, as the controller for node n1.
	void answer_with(std::vector<StopOrder> stops)
	{
		answer = [stops](const std::string &, const Report &r) -> Result<std::string> {
			return encode_orders(Orders{r.node, r.seq, stops, {}});
		};
	}
	size_t kills_of(uint32_t job) const
	{
		return static_cast<size_t>(std::count(killed.begin(), killed.end(), job));
	}
};

} // namespace
