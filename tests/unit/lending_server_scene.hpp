// SPDX-License-Identifier: GPL-2.0-or-later
// The scene the LendingServer tests share: a fake controller (job records,
// signals, requeues, DNS), a fake clock (steady and wall apart), fake Munge,
// and a rig that drives the server second by second.
#pragma once

#include "log_capture.hpp"
#include "suites.hpp"

#include "node_records.hpp"

#include "core/io/file_io.hpp"
#include "core/service/lending_server.hpp"
#include "core/util/log.hpp"
#include "core/model/report.hpp"

#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace flexslurm;
using namespace std::chrono_literals;

namespace lending_server_scene
{

// Lines logged that hold `text`, each read as "error: " or "info: " and its message.
inline size_t count_logged(const std::string &text)
{
	const auto lines = logged_lines();
	return static_cast<size_t>(std::count_if(lines.begin(), lines.end(), [&](const LoggedLine &l) {
		return (std::string(l.level == LogLevel::Error ? "error: " : "info: ") + l.message)
		               .find(text) != std::string::npos;
	}));
}

inline bool has(const std::string &haystack, const std::string &needle)
{
	return haystack.find(needle) != std::string::npos;
}

inline std::string make_temp_dir()
{
	char tmpl[] = "/tmp/flexslurm-lendsrv-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	return tmpl;
}

inline std::string read_text(const std::string &path)
{
	std::ifstream in(path);
	std::ostringstream out;
	out << in.rdbuf();
	return out.str();
}

struct FakeJob {
	bool running = true;
	bool checkpoint = true;
	int64_t start_time = 0;
	std::string comment;
	uint32_t run = 0; // Slurm's restart count
	// What its record says when a test sets it; else from its holdings:
	// none left is pending, all completing is leaving, else running.
	std::optional<BorrowerRecord> record;
};

class FakeController final : public LendingController
{
public:
	// What read() and locked() say they held the locks for, ms (< 0: not measured).
	double held_ms = -1;
	bool primary = true;
	std::map<std::string, NodeRecords> records;
	std::map<uint32_t, FakeJob> jobs; // a job without a record is not here
	std::map<std::string, std::vector<std::string>> dns;
	bool requeue_fails = false;
	std::vector<std::string> calls;
	std::vector<std::vector<uint32_t>> asked;           // check_alive, per read
	std::vector<std::vector<uint32_t>> reclaimed_asked; // per read
	bool in_lock = false;
	std::function<void()> after_read; // once: what happens right after a read
	std::map<uint32_t, BorrowerRecord> v_borrowers;

	void add_node(const std::string &node, std::vector<int> device_of_slice, bool known = true)
	{
		NodeRecords &nb = records[node];
		nb.node = node;
		nb.known = known;
		nb.device_of_slice = std::move(device_of_slice);
		dns["h-" + node] = {"10.0.0." + std::to_string(records.size())};
	}
	void own(const std::string &node, int slice, uint32_t job, std::optional<Instant> end = std::nullopt)
	{
		records.at(node).owners[slice] = SliceOwner{job, "gpu", end};
		jobs[job];
	}
	void hold(const std::string &node, int unit, uint32_t job, bool completing = false)
	{
		const auto j = jobs.find(job);
		records.at(node).borrowers[unit] =
		        BorrowHolding{job, completing, j == jobs.end() ? 0 : j->second.run};
	}
	void leave(const std::string &node, int unit) { records.at(node).borrowers.erase(unit); }
	std::string take_calls()
	{
		std::string out;
		for (const std::string &c : calls)
			out += (out.empty() ? "" : ", ") + c;
		calls.clear();
		return out;
	}

	bool in_control() override { return primary; }
	BorrowerRecord record_of(uint32_t id, const FakeJob &j) const
	{
		if (j.record)
			return *j.record;
		bool holds = false, leaving = true;
		for (const auto &[name, nb] : records)
			for (const auto &[u, h] : nb.borrowers)
				if (h.job == id) {
					holds = true;
					leaving = leaving && h.completing;
				}
		BorrowerRecord r;
		r.run = j.run;
		r.stage = !holds    ? BorrowerRecord::Stage::Pending
		          : leaving ? BorrowerRecord::Stage::Leaving
		                    : BorrowerRecord::Stage::Running;
		return r;
	}
	bool read(ControllerView &v, const std::vector<uint32_t> &check_alive,
	          const std::vector<uint32_t> &reclaimed) override
	{
		ck_assert(v.alive.empty() && v.borrowers.empty());
		ck_assert(!in_lock);
		v.locked_ms = held_ms;
		asked.push_back(check_alive);
		reclaimed_asked.push_back(reclaimed);
		for (uint32_t id : reclaimed)
			if (const auto j = jobs.find(id); j != jobs.end())
				v_borrowers[id] = record_of(id, j->second);
		// Over what the last read left, as the adapter does.
		v.nodes.resize(records.size());
		v.hosts.clear();
		size_t i = 0;
		for (const auto &[name, nb] : records) {
			v.nodes[i++] = nb.flat();
			v.hosts[name] = "h-" + name;
		}
		for (uint32_t id : check_alive)
			if (jobs.count(id))
				v.alive.push_back(id);
		v.borrowers = std::exchange(v_borrowers, {});
		if (after_read)
			std::exchange(after_read, nullptr)();
		return true;
	}
	double locked(const std::function<void()> &body) override
	{
		in_lock = true;
		body();
		in_lock = false;
		return held_ms;
	}
	std::optional<JobFacts> job(uint32_t id) override
	{
		ck_assert(in_lock);
		const auto j = jobs.find(id);
		if (j == jobs.end())
			return std::nullopt;
		return JobFacts{j->second.running, j->second.checkpoint, j->second.start_time};
	}
	std::string signal_checkpoint(uint32_t id) override
	{
		ck_assert(in_lock);
		calls.push_back("signal " + std::to_string(id));
		return "";
	}
	std::string requeue(uint32_t id) override
	{
		ck_assert(in_lock);
		calls.push_back("requeue " + std::to_string(id));
		if (requeue_fails)
			return "Requested operation is presently disabled";
		jobs.at(id).running = false;
		for (auto &[name, nb] : records)
			for (auto &[u, h] : nb.borrowers)
				if (h.job == id)
					h.completing = true;
		return "";
	}
	std::string requeue_ended(uint32_t id) override
	{
		ck_assert(in_lock);
		calls.push_back("requeue ended " + std::to_string(id));
		if (requeue_fails)
			return "Requested operation is presently disabled";
		FakeJob &j = jobs.at(id);
		j.running = false;
		j.record = BorrowerRecord{BorrowerRecord::Stage::Pending, j.run + 1, std::nullopt};
		return "";
	}
	void kill(uint32_t id) override
	{
		ck_assert(in_lock);
		calls.push_back("kill " + std::to_string(id));
	}
	void record_totals(uint32_t id, const JobTotals &t) override
	{
		ck_assert(in_lock);
		if (jobs.count(id))
			jobs[id].comment = totals_comment(jobs[id].comment, t);
	}
	void kick_scheduler() override { calls.push_back("kick"); }
	std::vector<std::string> resolve(const std::string &host) override
	{
		calls.push_back("resolve " + host);
		const auto a = dns.find(host);
		return a == dns.end() ? std::vector<std::string>{} : a->second;
	}
};

// Windows short enough to script second by second (as test_loan_book):
// idle 10 s, busy after 2 samples, grace 20 s, hard stop 5 s later.
inline ServerSettings short_settings(const std::string &dir)
{
	ServerSettings s;
	s.policy.idle_window = 10s;
	s.policy.busy_samples = 2;
	s.policy.min_loan = 5s;
	s.policy.max_loan = 3600s;
	s.policy.grace = 20s;
	s.policy.cooldown = 30s;
	s.telemetry_timeout = 15s;
	s.hard_stop_after = 5s;
	s.report_interval = 5s;
	s.state_dir = dir;
	s.admin_uids = {0, 450};
	return s;
}

constexpr uint32_t lender = 100;
constexpr uint32_t borrower = 200;

// One node n1 (slices 0-1 on device 0, 2-3 on device 1); the lender owns
// slice 0. The steady clock starts near the boot, the wall clock in 2023.
struct Rig {
	std::string dir;
	long steady = 500;
	long wall = 1700000000;
	FakeController ctl;
	std::map<std::string, int> writes;               // file name -> times written
	std::map<std::string, std::string> public_files; // io.write_public: path -> text
	std::vector<SliceHolders> last_slices;           // who holds what, in the last answer
	bool slice_holders = true;                       // ServerSettings::slice_holders
	std::unique_ptr<LendingServer> server;
	double lender_busy = 0;
	bool agent_up = true;
	uint64_t seq = 0;
	std::vector<DeviceIdentity> identities;             // n1's agent sends these (report version 2)
	std::size_t seal_limit = max_message_bytes * 3 / 4; // a Munge credential's payload
	// With use_listener(): the ports the server asked for, and the port
	// of the real listener it got (on 127.0.0.1, any free port).
	bool with_listener = false;
	std::vector<uint16_t> listened;
	uint16_t listener_port = 0;

	explicit Rig(std::string state_dir = "") : dir(state_dir.empty() ? make_temp_dir() : state_dir)
	{
		record_log();
		ctl.add_node("n1", {0, 0, 1, 1});
		ctl.own("n1", 0, lender);
		make();
	}

	void make()
	{
		server.reset();
		ServerIo io;
		io.steady_clock = [this] { return Instant(Seconds(steady)); };
		io.wall_clock = [this] { return Instant(Seconds(wall)); };
		io.seal = [this](std::string_view payload) -> Result<std::string> {
			if (payload.size() > seal_limit)
				return Result<std::string>::failure("payload too large");
			return "cred 0\n" + std::string(payload);
		};
		io.open = [](std::string_view cred) -> Result<Sealed> {
			Sealed s;
			const size_t eol = cred.find('\n');
			if (cred.substr(0, 5) != "cred " || eol == std::string_view::npos)
				return Result<Sealed>::failure("bad credential");
			s.uid = static_cast<uid_t>(std::stoul(std::string(cred.substr(5, eol - 5))));
			s.payload = std::string(cred.substr(eol + 1));
			return s;
		};
		io.write_file = [this](const std::string &path, const std::string &text, bool sync) {
			++writes[path.substr(path.rfind('/') + 1)];
			(void)sync; // tests need no fsync
			return write_file_atomically(path, text, 0600, false);
		};
		io.write_public = [this](const std::string &path, const std::string &text) {
			public_files[path] = text;
			return Result<bool>(true);
		};
		if (with_listener)
			io.listen = [this](uint16_t port, Listener::Handler handler) {
				listened.push_back(port);
				auto l = Listener::start("127.0.0.1", 0, std::move(handler));
				if (l)
					listener_port = (*l)->port();
				return l;
			};
		ServerSettings settings = short_settings(dir);
		settings.metrics_dir = "/metrics";
		settings.slice_holders = slice_holders;
		server = std::make_unique<LendingServer>(settings, ctl, std::move(io));
	}
	void use_listener()
	{
		with_listener = true;
		make();
	}

	std::string state() const { return read_text(dir + "/flexslurm_lending.state"); }
	std::string status() const { return read_text(dir + "/flexslurm_lending.status"); }

	// n1's agent: the lender's use of device 0, per job; device 1 idle.
	std::string report()
	{
		Report r;
		r.node = "n1";
		r.epoch = 1;
		r.seq = ++seq;
		r.sent_at = wall;
		DeviceReport d0, d1;
		d0.device = 0;
		d0.per_job = true;
		d0.jobs = {{lender, lender_busy, 0}};
		d0.busy_percent = lender_busy;
		d0.lendable_memory_mib = 1024;
		d1.device = 1;
		d1.lendable_memory_mib = 1024;
		r.devices = {d0, d1};
		r.identities = identities;
		const std::string answer = server->handle("cred 0\n" + encode_report(r), "10.0.0.1");
		if (answer.empty())
			return "-";
		auto orders = parse_orders(answer.substr(7));
		ck_assert(static_cast<bool>(orders));
		last_slices = orders->slices;
		std::string out;
		for (const StopOrder &s : orders->stops)
			out += (out.empty() ? "" : " ") + std::to_string(s.job) + "@" +
			       std::to_string(s.in_seconds);
		return out;
	}

	// Seconds of the lending thread: both clocks advance, the agent
	// reports every 5 s (of the steady clock), then the tick.
	void run(long seconds)
	{
		for (long i = 0; i < seconds; ++i) {
			++steady;
			++wall;
			if (agent_up && steady % 5 == 0)
				report();
			server->tick();
		}
	}

	std::string admin(AdminRequest request, uid_t uid, const std::string &peer = "10.9.9.9")
	{
		const std::string answer =
		        server->handle("cred " + std::to_string(uid) + "\n" + encode_admin(request), peer);
		return answer.size() > 7 ? answer.substr(7) : answer;
	}

	// The lender idle for the window: slice 0 lendable; the borrower
	// started on it.
	void lend()
	{
		run(15);
		ck_assert_msg(server->lendable("n1") == std::set<int>{0}, "%s", status().c_str());
		ck_assert(has(ctl.take_calls(), "kick"));
		ctl.jobs[borrower].start_time = wall - 100;
		server->committed(borrower, {{"n1", 0}});
		ctl.hold("n1", 0, borrower);
		ck_assert(server->lendable("n1").empty());
	}
};

inline AdminRequest status_request()
{
	return AdminRequest{AdminRequest::Kind::Status, 0};
}

inline AdminRequest reclaim_request(uint32_t job)
{
	return AdminRequest{AdminRequest::Kind::Reclaim, job};
}

// Runs until the controller is called (at most `limit` s); "t+N: calls".
inline std::string until_called(Rig &rig, long limit)
{
	for (long i = 1; i <= limit; ++i) {
		rig.run(1);
		std::string calls = rig.ctl.take_calls();
		if (!calls.empty())
			return "t+" + std::to_string(i) + ": " + calls;
	}
	return "nothing";
}

// Whether something accepts connections on 127.0.0.1:port.
inline bool port_open(uint16_t port)
{
	const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	sockaddr_in a{};
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	const bool open = ::connect(fd, reinterpret_cast<const sockaddr *>(&a), sizeof(a)) == 0;
	::close(fd);
	return open;
}

// The DNS lookups since the last call.
inline std::string resolves(Rig &rig)
{
	std::string out;
	for (const std::string &c : rig.ctl.calls)
		if (c.rfind("resolve ", 0) == 0)
			out += (out.empty() ? "" : ", ") + c;
	rig.ctl.calls.clear();
	return out;
}

} // namespace lending_server_scene
