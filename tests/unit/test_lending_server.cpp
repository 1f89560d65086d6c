// The controller side of idle reclaim (LendingServer), driven second by
// second with a fake controller (job records, signals, requeues, DNS), a
// fake clock (steady and wall apart) and fake Munge: reports become loans,
// loans are reclaimed with a grace and a hard stop, the admin asks for the
// status and takes loans back, a restart restores what was in flight.
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

namespace
{

// Lines logged that hold `text`, each read as "error: " or "info: " and its message.
size_t count_logged(const std::string &text)
{
	const auto lines = logged_lines();
	return static_cast<size_t>(std::count_if(lines.begin(), lines.end(), [&](const LoggedLine &l) {
		return (std::string(l.level == LogLevel::Error ? "error: " : "info: ") + l.message)
		               .find(text) != std::string::npos;
	}));
}

bool has(const std::string &haystack, const std::string &needle)
{
	return haystack.find(needle) != std::string::npos;
}

std::string make_temp_dir()
{
	char tmpl[] = "/tmp/flexslurm-lendsrv-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	return tmpl;
}

std::string read_text(const std::string &path)
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
	void locked(const std::function<void()> &body) override
	{
		in_lock = true;
		body();
		in_lock = false;
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
ServerSettings short_settings(const std::string &dir)
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
	std::map<std::string, int> writes; // file name -> times written
	std::unique_ptr<LendingServer> server;
	double lender_busy = 0;
	bool agent_up = true;
	uint64_t seq = 0;
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
		if (with_listener)
			io.listen = [this](uint16_t port, Listener::Handler handler) {
				listened.push_back(port);
				auto l = Listener::start("127.0.0.1", 0, std::move(handler));
				if (l)
					listener_port = (*l)->port();
				return l;
			};
		server = std::make_unique<LendingServer>(short_settings(dir), ctl, std::move(io));
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
		const std::string answer = server->handle("cred 0\n" + encode_report(r), "10.0.0.1");
		if (answer.empty())
			return "-";
		auto orders = parse_orders(answer.substr(7));
		ck_assert(static_cast<bool>(orders));
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

AdminRequest status_request()
{
	return AdminRequest{AdminRequest::Kind::Status, 0};
}

AdminRequest reclaim_request(uint32_t job)
{
	return AdminRequest{AdminRequest::Kind::Reclaim, job};
}

// Runs until the controller is called (at most `limit` s); "t+N: calls".
std::string until_called(Rig &rig, long limit)
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
bool port_open(uint16_t port)
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
std::string resolves(Rig &rig)
{
	std::string out;
	for (const std::string &c : rig.ctl.calls)
		if (c.rfind("resolve ", 0) == 0)
			out += (out.empty() ? "" : ", ") + c;
	rig.ctl.calls.clear();
	return out;
}

} // namespace

START_TEST(report_loan_reclaim_grace_and_hard_stop)
{
	Rig rig;
	rig.run(1);
	ck_assert(has(rig.ctl.take_calls(), "resolve h-n1"));
	rig.lend();
	rig.run(1);
	ck_assert(has(rig.status(), "n1 0 0 lent JobId=100 JobId=200 1s\n"));
	ck_assert_uint_eq(count_logged("n1 slice 0 of JobId=100 lent to JobId=200"), 1);

	// The lender is busy again: after two busy samples, the signal.
	rig.lender_busy = 70;
	ck_assert_str(until_called(rig, 20), "t+8: signal 200");
	ck_assert_uint_eq(rig.server->active_reclaims(), 1);
	ck_assert(has(rig.status(), "JobId=200 lender-busy started 0s ago, deadline in 20s"));
	// The agent is told to hard-stop it after the grace and hard_stop_after.
	rig.run(4);
	ck_assert_str(rig.report(), "200@21");
	// At the deadline, the requeue; the job records then show it leaving.
	ck_assert_str(until_called(rig, 30), "t+16: requeue 200");
	ck_assert(!rig.ctl.jobs[borrower].running);
	rig.run(2);
	ck_assert_uint_eq(rig.server->active_reclaims(), 1); // still on the device
	rig.ctl.leave("n1", 0);
	rig.run(1);
	ck_assert_uint_eq(rig.server->active_reclaims(), 0);
	ck_assert_uint_eq(count_logged("reclaim JobId=200 done (lender-busy)"), 1);
	ck_assert_str(rig.report(), "");
	// What the borrower borrowed is in its record.
	ck_assert(has(rig.ctl.jobs[borrower].comment, "flexslurm: borrowed "));
	// The lender ends: its total for its record.
	const auto lent = rig.server->ended(lender);
	ck_assert(lent && lent->lent_slice_seconds > 20);
	ck_assert(!rig.server->ended(borrower));
}
END_TEST

START_TEST(a_borrower_without_checkpoint_or_requeue)
{
	{
		Rig rig;
		rig.ctl.jobs[borrower].checkpoint = false;
		rig.lend();
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 20), "t+10: requeue 200"); // at once
		ck_assert_uint_eq(
		        count_logged("JobId=200 asked for no checkpoint signal (--signal): requeued at once"),
		        1);
	}
	{
		Rig rig;
		rig.ctl.requeue_fails = true;
		rig.lend();
		rig.ctl.jobs[borrower].start_time = rig.wall + 9; // too young for a signal
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 40), "t+30: requeue 200, kill 200");
		ck_assert_uint_eq(
		        count_logged(
		                "JobId=200 started 1s ago: no checkpoint signal, requeued at the deadline"),
		        1);
		const std::string why = "Requested operation is presently disabled";
		ck_assert_uint_eq(count_logged("error: lending: cannot requeue borrower JobId=200: " + why +
		                               "; killing it"),
		                  1);
	}
}
END_TEST

START_TEST(state_written_only_when_it_changes)
{
	Rig rig;
	rig.run(1);
	const std::string first = rig.state();
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], 1);
	rig.run(20); // the lender's idle timer runs (reports from 505): quiet, saved within 30 s
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], 1);
	ck_assert_str(rig.state(), first);
	rig.run(10);
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], 2);
	ck_assert(has(rig.state(), " idle=" + std::to_string(rig.wall - 26) + " "));
	rig.lend();
	rig.run(1); // the loan: an event, saved at once
	const int lent = rig.writes["flexslurm_lending.state"];
	ck_assert_int_eq(lent, 3);
	const int status_at_loan = rig.writes["flexslurm_lending.status"];
	ck_assert(has(rig.state(), "\ntotal 100 1 0\n"));
	rig.run(28); // only the totals grow while lent: saved every 30 s
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], lent);
	ck_assert_uint_eq(rig.server->state_writes(), static_cast<uint64_t>(lent));
	rig.run(2);
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], lent + 1);
	ck_assert(has(rig.state(), "\ntotal 100 31 0\n"));
	// The status file follows every 10 s.
	ck_assert_int_eq(rig.writes["flexslurm_lending.status"], status_at_loan + 3);
	// The file's times are wall clock times.
	ck_assert(has(rig.state(), "\nsaved " + std::to_string(rig.wall) + "\n"));
}
END_TEST

// In slurmctld a second thread formats and writes the files; what is
// pending when the server stops is written.
START_TEST(the_writer_thread_writes_the_files)
{
	Rig rig;
	rig.server->start_writer();
	rig.lend();
	rig.run(1);
	rig.server.reset(); // joins the writer after what is pending
	ck_assert(has(rig.state(), " state=lent owner=100 borrower=200 "));
	ck_assert(has(rig.status(), "n1 0 0 lent JobId=100 JobId=200 "));
}
END_TEST

START_TEST(admin_status_reclaim_and_refusals)
{
	Rig rig;
	rig.lend();
	const std::string status = rig.admin(status_request(), 0);
	ck_assert(has(status, "NODE SLICE DEVICE STATE OWNER BORROWER SINCE\n"));
	ck_assert(has(status, "n1 0 0 lent JobId=100 JobId=200 "));
	ck_assert(has(rig.admin(status_request(), 450), "RECLAIMS IN FLIGHT\n"));
	ck_assert_str(rig.admin(reclaim_request(999), 0), "error: JobId=999 borrows nothing\n");
	ck_assert_str(rig.admin(reclaim_request(borrower), 450), "reclaim of JobId=200 started\n");
	ck_assert_str(until_called(rig, 3), "t+1: signal 200");
	ck_assert(has(rig.admin(status_request(), 0), "JobId=200 admin started"));

	// Anyone else is refused, and logged without flooding the log.
	for (int i = 0; i < 100; ++i)
		ck_assert_str(rig.admin(status_request(), 1000, "10.9.9.9"),
		              "error: only root and SlurmUser may use flexslurm-lending\n");
	ck_assert_str(rig.admin(reclaim_request(borrower), 1000, "10.8.8.8"),
	              "error: only root and SlurmUser may use flexslurm-lending\n");
	ck_assert_uint_eq(count_logged("admin request from 10.9.9.9 with uid 1000 refused"), 1);
	ck_assert_uint_eq(count_logged("admin request from 10.8.8.8 with uid 1000 refused"), 1);
	rig.run(59);
	ck_assert_uint_eq(count_logged("more admin request(s) from 10.9.9.9"), 0);
	rig.run(1); // a minute later: the count
	ck_assert_uint_eq(count_logged("99 more admin request(s) from 10.9.9.9 refused in the last 60 s"), 1);
	ck_assert_uint_eq(count_logged("more admin request(s) from 10.8.8.8"), 0); // one was logged
	rig.admin(status_request(), 1000, "10.9.9.9"); // a new minute: logged again
	ck_assert_uint_eq(count_logged("admin request from 10.9.9.9 with uid 1000 refused"), 2);
}
END_TEST

START_TEST(status_answer_larger_than_a_credential_says_truncated)
{
	Rig rig;
	rig.lend();
	ck_assert_str(rig.admin(reclaim_request(borrower), 0), "reclaim of JobId=200 started\n");
	// 40 nodes x 64 slices, all owned: the status is well over one credential.
	for (int n = 2; n <= 41; ++n) {
		const std::string node = "big-node-" + std::to_string(n);
		rig.ctl.add_node(node, std::vector<int>(64, 0));
		for (int u = 0; u < 64; ++u)
			rig.ctl.own(node, u, static_cast<uint32_t>(1000 + n));
	}
	rig.run(2);
	const std::string file = rig.status();
	ck_assert_uint_gt(file.size(), max_message_bytes);
	const std::string answer = rig.admin(status_request(), 0);
	ck_assert_uint_le(answer.size(), LendingServer::max_status_answer_bytes);
	ck_assert(answer.rfind("NODE SLICE DEVICE STATE OWNER BORROWER SINCE\n", 0) == 0);
	ck_assert(has(answer, "\ntruncated: "));
	ck_assert(has(answer, " lines shown (an answer is at most 45056 bytes); the whole status is in " +
	                              rig.dir + "/flexslurm_lending.status\n"));
	// The slices that fit, then every reclaim in flight and the newest history.
	const std::string slices = answer.substr(0, answer.find("RECLAIMS IN FLIGHT\n"));
	ck_assert(file.rfind(slices, 0) == 0);
	ck_assert_uint_gt(slices.size(), 30000);
	ck_assert(has(answer, "RECLAIMS IN FLIGHT\nJobId=200 admin started "));
	ck_assert_msg(
	        has(answer, "reclaim JobId=200 from n1 slice 0 of JobId=100: admin, grace 20 s\ntruncated: "),
	        "%s", answer.substr(answer.size() - 700).c_str());
	// An answer that cannot be sealed still says so.
	rig.seal_limit = 10;
	ck_assert_str(rig.admin(status_request(), 0), "");
	ck_assert_uint_eq(count_logged("cannot seal the answer to an admin request from 10.9.9.9"), 1);
}
END_TEST

START_TEST(a_restart_restores_reclaims_in_flight)
{
	std::string dir;
	long wall_at_save = 0;
	{
		Rig rig;
		dir = rig.dir;
		rig.lend();
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 20), "t+10: signal 200");
		rig.run(5); // 15 s of grace left
		wall_at_save = rig.wall;
	}
	// The controller restarts on another boot: a steady clock far from the
	// old one, the wall clock 5 s later.
	Rig rig(dir);
	rig.steady = 20;
	rig.wall = wall_at_save + 5;
	rig.ctl.hold("n1", 0, borrower);
	rig.ctl.jobs[borrower].start_time = rig.wall - 200;
	rig.lender_busy = 70;
	rig.run(1);
	ck_assert_uint_eq(count_logged("state restored from " + dir +
	                               "/flexslurm_lending.state (1 reclaim(s) in flight)"),
	                  1);
	ck_assert_uint_eq(rig.server->active_reclaims(), 1);
	ck_assert_str(rig.ctl.take_calls(), "resolve h-n1"); // no second signal
	// The deadline keeps its wall clock time: 15 - 5 - 1 s left.
	ck_assert_str(until_called(rig, 20), "t+9: requeue 200");
}
END_TEST

START_TEST(a_state_larger_than_16_mib_restores)
{
	const std::string dir = make_temp_dir();
	{
		std::string text = "flexslurm-lending 1\nsaved 1700000000\n";
		for (int n = 0; n < 1600 && text.size() <= (17u << 20); ++n)
			for (int u = 0; u < 64; ++u)
				text += "slice node-with-a-long-name-" + std::to_string(n) + " " +
				        std::to_string(u) + " " + std::to_string(u / 8) +
				        " state=owned-busy owner=123456 borrower=0 lends=1 gone=0 overdue=0 streak=0 end=1700003600 idle=- lent=0 cool=- reason=- deadline=-\n";
		text += "reclaim 200 reason=admin t0=1699999990 deadline=1700000010 signalled=1 requeued=- nodes=n1\n";
		text += "end\n";
		ck_assert_uint_gt(text.size(), 16u << 20);
		std::ofstream(dir + "/flexslurm_lending.state") << text;
	}
	Rig rig(dir);
	rig.wall = 1700000001;
	rig.ctl.jobs[borrower].running = false; // its record: requeued, still completing
	rig.ctl.hold("n1", 0, borrower, true);
	rig.run(1);
	ck_assert_uint_eq(count_logged("(1 reclaim(s) in flight)"), 1);
	ck_assert_uint_eq(rig.server->active_reclaims(), 1);

	// A line over the bound is refused, with the reason.
	std::ofstream(dir + "/flexslurm_lending.state")
	        << "flexslurm-lending 1\nhistory " << std::string(LendingServer::max_state_line_bytes, 'x')
	        << "\nend\n";
	Rig again(dir);
	again.run(1);
	ck_assert_uint_eq(count_logged("a line longer than 1048576 bytes; starting with no loan history"), 1);
	ck_assert_uint_eq(again.server->active_reclaims(), 0);
}
END_TEST

// Totals go with the job records, not with which nodes are registered: a
// node that never registers must not keep them forever.
START_TEST(totals_cleaned_by_job_liveness_with_a_node_never_registered)
{
	Rig rig;
	rig.ctl.add_node("n2", {}, false); // configured, never registered
	rig.lend();
	rig.ctl.jobs.erase(borrower);
	rig.ctl.leave("n1", 0);
	rig.run(1);
	for (uint32_t b = 1000; b < 6000; ++b) { // 5,000 borrowers, one after the other
		rig.ctl.jobs[b];
		rig.server->committed(b, {{"n1", 0}});
		rig.ctl.hold("n1", 0, b);
		rig.run(1);
		rig.ctl.leave("n1", 0);
		rig.ctl.jobs.erase(b); // ended and purged
		rig.server->tick();
	}
	rig.run(31);                                      // a quiet change: saved within 30 s
	ck_assert_uint_eq(rig.server->totals_count(), 1); // the lender, still running
	ck_assert(has(rig.state(), "\ntotal 100 "));
	ck_assert(!has(rig.state(), "\ntotal 5999 "));
	// What the controller was asked about is what had totals.
	ck_assert(rig.ctl.asked.back() == std::vector<uint32_t>{lender});
	rig.ctl.jobs.erase(lender);
	rig.ctl.records.at("n1").owners.clear();
	rig.run(2);
	ck_assert_uint_eq(rig.server->totals_count(), 0);
}
END_TEST

START_TEST(wall_clock_steps_move_no_timer)
{
	for (const long step : {3600L, -3600L}) {
		Rig rig;
		rig.lend();
		// A step of the wall clock: no loan is taken back for it (max loan,
		// telemetry age), and nothing is lendable sooner or later for it.
		rig.wall += step;
		rig.run(30);
		ck_assert_str(rig.ctl.take_calls(), "");
		ck_assert_uint_eq(rig.server->active_reclaims(), 0);
		ck_assert_uint_eq(count_logged("the wall clock moved by " + std::to_string(step) + " s"), 1);
		// A reclaim, and another step in the grace: the requeue comes on
		// time, 20 s after the signal.
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 20), "t+10: signal 200");
		rig.run(5);
		rig.wall -= step;
		ck_assert_str(until_called(rig, 30), "t+15: requeue 200");
		// The state file is in wall clock time, as the wall clock is now;
		// the history as it was then.
		ck_assert(has(rig.state(), "\nsaved " + std::to_string(rig.wall) + "\n"));
		ck_assert(has(rig.state(), " deadline=" + std::to_string(rig.wall) + "\n"));
		ck_assert(has(rig.state(), "\nhistory " + std::to_string(rig.wall - 20 + step) +
		                                   " reclaim JobId=200 from n1"));
	}
}
END_TEST

START_TEST(a_failed_dns_lookup_is_tried_again)
{
	Rig rig;
	rig.ctl.dns.erase("h-n1");
	rig.run(1);
	ck_assert_str(resolves(rig), "resolve h-n1");
	ck_assert_uint_eq(
	        count_logged("cannot resolve h-n1 (node n1): its reports are refused until it resolves"), 1);
	ck_assert_str(rig.report(), "-"); // refused: unknown node
	rig.run(29);
	ck_assert_str(resolves(rig), ""); // not at every tick
	rig.run(1);
	ck_assert_str(resolves(rig), "resolve h-n1"); // after 30 s
	rig.run(59);
	ck_assert_str(resolves(rig), "");
	rig.ctl.dns["h-n1"] = {"10.0.0.1"};
	rig.run(1);
	ck_assert_str(resolves(rig), "resolve h-n1"); // after 60 s more
	ck_assert_str(rig.report(), "");              // heard now
	rig.run(120);
	ck_assert_str(resolves(rig), ""); // resolved: kept
	ck_assert_uint_eq(count_logged("h-n1 (node n1) resolves now"), 1);
}
END_TEST

// The scheduler starts a borrower between the tick's read of the job
// records and its decisions: the records are read again, the loan stays.
START_TEST(a_loan_committed_during_a_read_is_kept)
{
	Rig rig;
	rig.run(15);
	ck_assert(rig.server->lendable("n1") == std::set<int>{0});
	const size_t reads = rig.ctl.asked.size();
	rig.ctl.after_read = [&] {
		rig.ctl.jobs[borrower];
		rig.server->committed(borrower, {{"n1", 0}});
		rig.ctl.hold("n1", 0, borrower);
	};
	rig.run(1);
	ck_assert_uint_eq(rig.ctl.asked.size(), reads + 2);
	ck_assert_uint_eq(count_logged("n1 slice 0 of JobId=100 lent to JobId=200"), 1);
	ck_assert_uint_eq(count_logged("loan found in the job records"), 0);
	ck_assert(has(rig.status(), "n1 0 0 lent JobId=100 JobId=200 0s\n"));
	ck_assert(rig.server->lendable("n1").empty());
}
END_TEST

START_TEST(a_backup_controller_does_nothing)
{
	Rig rig;
	rig.ctl.primary = false;
	rig.run(20);
	ck_assert(rig.ctl.asked.empty());
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], 0);
}
END_TEST

START_TEST(totals_in_a_job_comment)
{
	ck_assert_str(totals_comment("", {120, 0}), "flexslurm: lent 120 slice-s");
	ck_assert_str(totals_comment("site note", {0, 30}), "site note; flexslurm: borrowed 30 slice-s");
	ck_assert_str(totals_comment("site note; flexslurm: borrowed 30 slice-s", {5, 40}),
	              "site note; flexslurm: lent 5 slice-s, borrowed 40 slice-s");
	ck_assert_str(totals_comment("flexslurm: lent 1 slice-s; other", {2, 0}),
	              "other; flexslurm: lent 2 slice-s");
}
END_TEST

// Failover: a controller that is no longer in control closes the report
// port, writes nothing and forgets what it knew; when control comes back
// it reads the state file afresh (another controller ran the cluster
// meanwhile) and listens again.
START_TEST(standby_then_in_control_reads_the_state_again)
{
	Rig rig;
	rig.use_listener();
	rig.lend();
	rig.run(1);
	ck_assert_uint_eq(rig.listened.size(), 1);
	ck_assert(port_open(rig.listener_port));
	ck_assert(has(rig.state(), "borrower=200"));
	const int writes = rig.writes["flexslurm_lending.state"];

	rig.ctl.primary = false;
	rig.run(1);
	ck_assert_uint_eq(count_logged("lending: not in control: report port closed, standing by"), 1);
	ck_assert(!port_open(rig.listener_port));
	ck_assert(rig.server->lendable("n1").empty());
	ck_assert_uint_eq(rig.server->totals_count(), 0);
	rig.lender_busy = 70; // nothing is reclaimed by a controller standing by
	rig.run(30);
	ck_assert_str(rig.ctl.take_calls(), "");
	ck_assert_int_eq(rig.writes["flexslurm_lending.state"], writes);
	ck_assert_uint_eq(rig.listened.size(), 1);

	// Meanwhile the controller in control started a reclaim (its file).
	{
		std::ofstream out(rig.dir + "/flexslurm_lending.state");
		out << "flexslurm-lending 1\nsaved " << rig.wall << "\n"
		    << "reclaim 200 reason=lender-busy t0=" << rig.wall - 5 << " deadline=" << rig.wall + 10
		    << " signalled=1 requeued=- nodes=n1 run=0 again=0\nend\n";
	}
	rig.ctl.primary = true;
	rig.run(1);
	ck_assert_uint_eq(count_logged("lending: in control: reading the state file"), 2);
	ck_assert_uint_eq(count_logged("(1 reclaim(s) in flight)"), 1);
	ck_assert_uint_eq(rig.server->active_reclaims(), 1);
	ck_assert_uint_eq(rig.listened.size(), 2);
	ck_assert(port_open(rig.listener_port));
	// Written again at once: this controller's view of the reclaim.
	ck_assert(has(rig.state(), "reclaim 200 reason=lender-busy"));
	ck_assert_int_gt(rig.writes["flexslurm_lending.state"], writes);
	// No second signal; the restored deadline holds.
	ck_assert_str(until_called(rig, 20), "t+9: requeue 200");
}
END_TEST

// A controller killed right after a requeue restarts from job state saved
// before it: the record still shows the reclaimed run running, and it is
// requeued again; one the hard stop ended FAILED meanwhile is requeued
// from its end.
START_TEST(a_requeue_lost_with_a_restart_is_made_again)
{
	std::string dir;
	{
		Rig rig;
		dir = rig.dir;
		rig.lend();
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 20), "t+10: signal 200");
		ck_assert_str(until_called(rig, 30), "t+20: requeue 200");
		ck_assert(has(rig.state(), " run=0 again=0"));
		ck_assert(!has(rig.state(), "requeued=-"));
	}
	{
		// The restarted controller, 100 s later: the record shows run 0
		// running.
		Rig rig(dir);
		rig.wall += 100;
		rig.ctl.hold("n1", 0, borrower);
		rig.ctl.jobs[borrower].start_time = rig.wall - 100;
		rig.lender_busy = 70;
		rig.run(1);
		ck_assert_uint_eq(count_logged("(1 reclaim(s) in flight)"), 1);
		ck_assert_uint_eq(
		        count_logged(
		                "reclaim JobId=200: its job record still shows it running, not requeued"),
		        1);
		ck_assert_str(rig.ctl.take_calls(), "requeue 200, resolve h-n1"); // in the same tick
		// Requeued now: it leaves, and comes back as run 1, pending.
		rig.ctl.leave("n1", 0);
		rig.ctl.jobs[borrower].run = 1;
		rig.run(1);
		ck_assert_uint_eq(rig.server->active_reclaims(), 0);
		ck_assert_uint_eq(count_logged("reclaim JobId=200 done (lender-busy)"), 1);
	}
	clear_log();
	std::string again_dir;
	{
		Rig rig;
		again_dir = rig.dir;
		rig.lend();
		rig.lender_busy = 70;
		ck_assert_str(until_called(rig, 20), "t+10: signal 200");
		ck_assert_str(until_called(rig, 30), "t+20: requeue 200");
	}
	{
		// The hard stop ended it FAILED while the controller was down.
		Rig rig(again_dir);
		rig.wall += 100;
		rig.ctl.jobs[borrower].running = false;
		rig.ctl.jobs[borrower].record =
		        BorrowerRecord{BorrowerRecord::Stage::Failed, 0, Instant(Seconds(rig.wall - 1))};
		rig.run(1);
		ck_assert_uint_eq(count_logged("reclaim JobId=200: ended FAILED after its deadline"), 1);
		ck_assert_str(rig.ctl.take_calls(), "requeue ended 200, resolve h-n1");
		rig.run(1); // pending, run 1: done
		ck_assert_uint_eq(rig.server->active_reclaims(), 0);
		ck_assert_uint_eq(count_logged("reclaim JobId=200 done (lender-busy)"), 1);
	}
}
END_TEST

// select_p_reconfigure: a new grace for the reclaims started after it, a
// new port listened on at the next tick.
START_TEST(reconfigure_changes_the_grace_and_the_port)
{
	Rig rig;
	rig.use_listener();
	rig.lend();
	ck_assert_uint_eq(rig.listened.size(), 1);
	ServerSettings s = short_settings(rig.dir);
	s.policy.grace = 40s;
	s.port = 7001;
	rig.server->reconfigure(s);
	ck_assert_uint_eq(count_logged("lending: settings reloaded (grace 40 s, idle window 10 s)"), 1);
	rig.run(1);
	ck_assert_uint_eq(rig.listened.size(), 2);
	ck_assert_uint_eq(rig.listened.back(), 7001);
	ck_assert(port_open(rig.listener_port));
	rig.lender_busy = 70;
	ck_assert_str(until_called(rig, 20), "t+9: signal 200");
	ck_assert(has(rig.status(), "deadline in 40s"));
	ck_assert_str(until_called(rig, 60), "t+40: requeue 200");
}
END_TEST

Suite *lending_server_suite()
{
	Suite *s = suite_create("lending_server");
	TCase *tc = tcase_create("lending_server");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, report_loan_reclaim_grace_and_hard_stop);
	tcase_add_test(tc, a_borrower_without_checkpoint_or_requeue);
	tcase_add_test(tc, state_written_only_when_it_changes);
	tcase_add_test(tc, the_writer_thread_writes_the_files);
	tcase_add_test(tc, admin_status_reclaim_and_refusals);
	tcase_add_test(tc, status_answer_larger_than_a_credential_says_truncated);
	tcase_add_test(tc, a_restart_restores_reclaims_in_flight);
	tcase_add_test(tc, a_state_larger_than_16_mib_restores);
	tcase_add_test(tc, totals_cleaned_by_job_liveness_with_a_node_never_registered);
	tcase_add_test(tc, wall_clock_steps_move_no_timer);
	tcase_add_test(tc, a_failed_dns_lookup_is_tried_again);
	tcase_add_test(tc, a_loan_committed_during_a_read_is_kept);
	tcase_add_test(tc, a_backup_controller_does_nothing);
	tcase_add_test(tc, totals_in_a_job_comment);
	tcase_add_test(tc, standby_then_in_control_reads_the_state_again);
	tcase_add_test(tc, a_requeue_lost_with_a_restart_is_made_again);
	tcase_add_test(tc, reconfigure_changes_the_grace_and_the_port);
	suite_add_tcase(s, tc);
	return s;
}
