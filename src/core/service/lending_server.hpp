// SPDX-License-Identifier: GPL-2.0-or-later
// The controller side of idle reclaim: a thread in slurmctld that, every
// second, reads who holds what from the job records, keeps the LoanBook,
// carries out its reclaims (checkpoint signal, requeue, kill as a last
// resort), answers the node agents' reports with stop orders and the admin's
// requests (flexslurm-lending), and keeps the state and status files.
//
// Slurm-free, like the node side (NodeAgent): select/flex hands in a
// LendingController that reads and acts on the job records under the
// controller's locks, a clock, and the I/O (Munge, the listener, files);
// tests hand in fakes. The locks: a tick takes the controller's locks to
// read (LendingController::read), then the book's lock to decide, then the
// controller's job write lock once to act (LendingController::locked); text
// is formatted from a snapshot with no lock held. Calls from Slurm's
// select_p_* entry points (which hold the controller's locks) take only the
// book's lock: the order is always controller, then book.
//
// Timers (idle windows, grace, hard stops, report ages) run on the steady
// clock; the wall clock only dates what crosses a process boundary (a
// report's sent_at, a job's end time, the state file, the history).
#pragma once

#include "core/io/channel.hpp"
#include "core/io/munge.hpp"
#include "core/model/loan_book.hpp"
#include "core/util/recent_times.hpp"
#include "core/model/loan_book_text.hpp"
#include "core/model/admin_request.hpp"
#include "core/model/metrics.hpp"
#include "core/model/report.hpp"
#include "core/model/report_intake.hpp"

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace flexslurm
{

// What the controller's record of one job says, for a reclaim.
struct JobFacts {
	bool running = false;    // running (not pending, suspended or ended)
	bool checkpoint = false; // it asked for a warning signal (--signal)
	int64_t start_time = 0;  // unix seconds, 0 if unknown
};

// Read from the job records under the controller's locks.
struct ControllerView {
	// Every node with slices; SliceOwner::end in wall clock time.
	std::vector<NodeBooks> nodes;
	// node name -> the host name to resolve (NodeHostname, NodeAddr)
	std::map<std::string, std::string> hosts;
	// Of the jobs read() was asked about, those whose records still exist
	// (pending, running, suspended or completing). This and `borrowers`
	// come to read() empty.
	std::vector<uint32_t> alive;
	// The records of the borrowers read() was asked about (reclaims in
	// flight): stage, run (restart count), end time in wall clock time.
	// One missing: its record is gone.
	std::map<uint32_t, BorrowerRecord> borrowers;
	// How long read() held the controller's locks, ms (the wait for them
	// not counted); < 0: not measured (the whole read counts).
	double locked_ms = -1;
};

// select/flex in production, a fake in tests.
class LendingController
{
public:
	virtual ~LendingController() = default;

	// This process runs the cluster (a primary, or a backup that took
	// over; not one standing by, stopping or handing control back): only
	// then is the state file touched, the report port open and anything
	// reclaimed.
	virtual bool in_control() = 0;

	// Takes the controller's locks for reading and fills `view`, which
	// holds what the last read() left there: its node records are filled
	// in place (their memory reused, a tick allocates nothing once the
	// cluster's size is known). false: the controller has not read its
	// state yet. `check_alive`: jobs with totals; `reclaimed`: borrowers
	// whose records the reclaims in flight need.
	virtual bool read(ControllerView &view, const std::vector<uint32_t> &check_alive,
	                  const std::vector<uint32_t> &reclaimed) = 0;

	// Runs `body` under the controller's job write lock; the job calls
	// below are made only from inside it. A requeue re-enters the plugin
	// (select_p_job_fini), which takes the book's lock: never held here.
	// Returns how long the lock was held, ms (< 0: not measured).
	virtual double locked(const std::function<void()> &body) = 0;
	virtual std::optional<JobFacts> job(uint32_t id) = 0; // nullopt: no record
	// "" when done, else why not.
	virtual std::string signal_checkpoint(uint32_t id) = 0;
	virtual std::string requeue(uint32_t id) = 0;
	// Requeues a borrower that has ended: the hard stop ended it while the
	// controller was down, and the requeue before that was lost with the
	// controller's restart (Slurm requeues a finished batch job too).
	virtual std::string requeue_ended(uint32_t id) = 0;
	virtual void kill(uint32_t id) = 0;
	// The job's SystemComment gets its totals (totals_comment).
	virtual void record_totals(uint32_t id, const JobTotals &totals) = 0;

	// No lock held: a waiting borrower may fit now.
	virtual void kick_scheduler() = 0;
	// No lock held; may block. The numeric addresses, empty if it failed.
	virtual std::vector<std::string> resolve(const std::string &host) = 0;
};

struct ServerIo {
	std::function<Instant()> steady_clock; // timers
	std::function<Instant()> wall_clock;   // unix seconds
	std::function<Result<std::string>(std::string_view payload)> seal;
	Opener open;
	std::function<Result<std::unique_ptr<Listener>>(uint16_t port, Listener::Handler handler)> listen;
	std::function<Result<bool>(const std::string &path, const std::string &text, bool sync)> write_file;
	// The metrics file: written atomically, readable by all (node_exporter).
	std::function<Result<bool>(const std::string &path, const std::string &text)> write_public;

	// Munge, TCP, the system's clocks and files for real.
	static ServerIo production(const MungeEndpoint &munge);
};

struct ServerSettings {
	LendingPolicy policy;
	Seconds telemetry_timeout{30};
	Seconds hard_stop_after{30};
	Seconds report_interval{5};
	uint16_t port = 0;
	std::string state_dir;         // flexslurm_lending.state and .status go there
	std::vector<uid_t> admin_uids; // root and SlurmUser: reports and admin requests
	// metrics.controller_textfile_dir: flexslurm_controller.prom goes there
	// every metrics_interval ("" = off); kept until a restart.
	std::string metrics_dir;
	// The answers say who holds each slice (node metrics or DCGM files on:
	// metrics.node_textfile_dir or dcgm_job_mapping_dir). Nodes must run
	// this version first: an older agent refuses such an answer.
	bool slice_holders = false;
};

// "flexslurm: lent 120 slice-s" in a job's SystemComment (scontrol show
// job, sacct -o SystemComment), keeping whatever else is there.
std::string totals_comment(std::string_view existing, const JobTotals &totals);
// Whether a job's SystemComment holds such totals (it lent or borrowed).
bool has_totals(std::string_view comment);

// An admin's status answer cut to max_status_answer_bytes: every reclaim
// in flight that fits, the first slices, the newest events, each cut at a
// line, and a last line that says so and names the status file.
std::string fit_status_answer(const std::string &text, const std::string &status_path);

class LendingServer
{
public:
	// The admin's status answer fits one Munge credential (max_message_bytes
	// of base64): longer ones are cut at a line and say so.
	static constexpr size_t max_status_answer_bytes = 44 * 1024;
	// The state file is read line by line: no total larger than this, no
	// line longer (a reclaim line lists the borrower's nodes).
	static constexpr size_t max_state_bytes = size_t{1} << 30;
	static constexpr size_t max_state_line_bytes = size_t{1} << 20;
	// A host name that did not resolve is tried again after this long
	// (doubling up to the cap); one that did, after refresh_after.
	static constexpr Seconds dns_retry_first{30};
	static constexpr Seconds dns_retry_cap{60};
	static constexpr Seconds dns_refresh_after{600};
	// Refused admin requests: one line per source per window, with a count.
	static constexpr Seconds refusal_log_window{60};
	static constexpr size_t max_refusal_sources = 1024;
	// The state and status files are rewritten from a snapshot of the book
	// when it saw an event (a loan, a reclaim and its steps: saved at once),
	// else every status_refresh_interval; quiet changes of the state (idle
	// timers, per-job totals, which grow every second while anything is
	// lent) are saved at most every totals_save_interval (a restart counts
	// the loans' time since the state's `saved` again). Nothing is written
	// that did not change.
	static constexpr Seconds totals_save_interval{30};
	static constexpr Seconds status_refresh_interval{10};
	// How often the metrics file is rewritten (node_exporter reads it at
	// each scrape, typically every 15-60 s).
	static constexpr Seconds metrics_interval{5};

	LendingServer(ServerSettings settings, LendingController &controller, ServerIo io);
	~LendingServer(); // stops the thread and the listener
	LendingServer(const LendingServer &) = delete;
	LendingServer &operator=(const LendingServer &) = delete;

	// The threads: a tick every second, and a writer that formats and
	// writes the files from the snapshots the ticks hand over (without it,
	// as in the unit tests, the tick writes them itself).
	void start();
	// Only the writer (the benchmark).
	void start_writer();

	// One tick (the thread calls this every second).
	void tick();
	// New settings (select_p_reconfigure): the policy, telemetry timeout
	// and hard stop now, the port at the next tick (which listens again).
	// The report intake keeps its report interval, the state directory and
	// the admins stay, until a restart.
	void reconfigure(const ServerSettings &settings);
	// A frame from the listener: a node's report or an admin's request;
	// returns the sealed answer ("" = none). The listener's thread.
	std::string handle(std::string_view frame, const std::string &peer);

	// From select_p_* calls, under the controller's locks:
	// the borrow units of a node a borrower may be given now (job_test;
	// `allocated_now`: LoanBook::lendable_units);
	std::set<int> lendable(const std::string &node, const std::function<bool(int)> &allocated_now = {});
	// a borrower was started on these (node, unit)s (nodeinfo_set);
	void committed(uint32_t job, const std::vector<std::pair<std::string, int>> &units);
	// a job ended (job_fini): its lent total, if it lent, for its record.
	std::optional<JobTotals> ended(uint32_t job);

	std::string state_path() const { return settings_.state_dir + "/flexslurm_lending.state"; }
	std::string status_path() const { return settings_.state_dir + "/flexslurm_lending.status"; }

	// Where the last tick spent its time (real time, milliseconds): reading
	// the job records (under the controller's read locks), the book's
	// decisions and snapshot (under its lock), acting (under the
	// controller's write lock), and the rest with no lock held (names,
	// the listener, handing the snapshot to the writer, or writing the
	// files when there is no writer). read_ms and act_ms count the wait
	// for the controller's locks; *_held_ms only the time holding them.
	struct TickTimes {
		double read_ms = 0, book_ms = 0, act_ms = 0, files_ms = 0;
		double read_held_ms = 0, act_held_ms = 0;
	};
	TickTimes last_tick_times() const noexcept { return times_; }
	std::string metrics_path() const { return settings_.metrics_dir + "/flexslurm_controller.prom"; }

	// For tests and the benchmark.
	size_t totals_count();
	size_t active_reclaims();
	uint64_t state_writes() const noexcept { return state_writes_.load(); }
	const ReportIntake &intake() const noexcept { return intake_; }

private:
	struct Host {
		std::vector<std::string> addresses;
		Instant next_lookup{};
		Seconds backoff{0};
	};
	enum class Done { Signalled, Requeued, GaveUp };

	void loop();
	void stand_by();
	void restore_once();
	void anchor_clocks(Instant steady, Instant wall);
	void execute(const TickActions &actions, Instant now, std::vector<std::pair<uint32_t, Done>> &done);
	void requeue(uint32_t borrower, std::vector<std::pair<uint32_t, Done>> &done);
	void refresh_addresses(const std::map<std::string, std::string> &hosts, Instant now);
	void hand_over(BookSnapshot &&snapshot, bool urgent);
	void writer_loop();
	void write_metrics(Instant now, const BookCounters &counters, const std::vector<int64_t> &durations,
	                   size_t in_flight, double tick_seconds);
	void save(BookSnapshot &&snapshot, bool urgent); // the writer's
	std::string answer_admin(const Result<AdminRequest> &request, uid_t uid, const std::string &peer);
	void log_refusal(const std::string &peer, uid_t uid);
	IntakeRules rules();
	// The credential handle() opened on this thread, for the intake.
	static Result<Sealed> take_opened(std::string_view credential);
	static std::string job_name(uint32_t job) { return book_text::job_text(job); } // "JobId=N"

	ServerSettings settings_;
	LendingController &controller_;
	ServerIo io_;

	std::mutex book_mutex_;
	LoanBook book_;
	std::atomic<uint64_t> commits_{0}; // committed() calls, under book_mutex_
	std::vector<std::string> events_;  // taken from the book, logged with no lock held

	std::atomic<uint16_t> new_port_{0}; // set by reconfigure, taken by the tick

	// The tick thread's.
	bool in_control_ = false;
	bool restored_ = false;
	std::optional<Seconds> wall_offset_;
	ControllerView view_;                           // the last read, filled in place by the next
	std::vector<uint32_t> totals_jobs_;             // asked about at the next read
	std::map<uint32_t, JobTotals> recorded_;        // borrowers' totals as last recorded
	std::map<std::string, Host> hosts_;             // host name -> addresses
	std::map<std::string, std::string> hosts_seen_; // node -> host, as last resolved
	Instant retry_at_{};                            // the next failed lookup due
	uint64_t snapshot_revision_ = ~uint64_t{0};
	std::optional<Instant> snapshot_at_;
	TickTimes times_;
	// The last ten minutes of ticks: reading the records (under the
	// controller's read locks, waiting for them included) and acting
	// (under its write lock, only ticks that took it).
	RecentTimes read_times_{600}, act_times_{600}, wait_times_{600};
	std::string tick_summary() const;
	ControllerMetrics metrics_;         // counted by the ticks
	std::optional<Instant> metrics_at_; // the metrics file last written
	bool metrics_write_failed_ = false;
	Instant next_listen_{};
	std::unique_ptr<Listener> listener_;

	// Read by the listener thread.
	std::mutex addr_mutex_;
	std::map<std::string, std::vector<std::string>> node_addrs_;

	// The listener's threads.
	ReportIntake intake_;
	// The devices' identities of each node's last accepted report (only
	// nodes the intake knows: at most the cluster's node count).
	std::mutex identities_mutex_;
	std::map<std::string, std::vector<DeviceIdentity>, std::less<>> identities_;
	std::mutex refusal_mutex_;
	LogThrottle refusals_{refusal_log_window, 1, max_refusal_sources}; // guarded by refusal_mutex_

	std::mutex stop_mutex_;
	std::condition_variable stop_;
	bool stopping_ = false;
	std::thread thread_;

	// The writer's (the tick thread's when there is no writer).
	std::optional<BookSnapshot> saved_;     // what the state file holds
	std::atomic<bool> forget_saved_{false}; // control lost: the file is another's
	Instant state_written_at_{};
	bool urgent_ = true; // an event not yet in the state file
	bool state_write_failed_ = false;
	std::atomic<uint64_t> state_writes_{0};
	// Handed over from the tick to the writer: the newest snapshot wins.
	std::mutex writer_mutex_;
	std::condition_variable writer_wake_;
	std::optional<BookSnapshot> pending_;
	bool pending_urgent_ = false;
	bool writer_stopping_ = false;
	std::thread writer_;
};

} // namespace flexslurm
