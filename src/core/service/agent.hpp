// SPDX-License-Identifier: GPL-2.0-or-later
// The node agent of idle reclaim: a thread in slurmd that samples the
// node's accelerators every report interval, sends one Munge-sealed report
// to slurmctld, and carries out the "hard stop" orders in the answer: when a
// reclaimed borrower's grace (plus hard_stop_after) has run out, whatever
// is left of it on this node is killed. Orders are kept per job with their
// due time on this node's own clock, so a stop happens on time even if the
// controller cannot be reached at that moment; each answer replaces them.
//
// Slurm-free: the plugin hands in the node name, the controllers, the
// layout and a telemetry backend; tests hand in fakes for Munge, the network
// and the killer.
#pragma once

#include "core/io/channel.hpp"
#include "core/io/process_control.hpp"
#include "core/io/telemetry.hpp"
#include "core/io/munge.hpp"
#include "core/model/metrics.hpp"
#include "core/model/report.hpp"
#include "core/model/slice_layout.hpp"

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace flexslurm
{

struct AgentSettings {
	std::string node;
	std::vector<std::string> controllers; // tried in order until one answers
	uint16_t port = 0;
	std::string bind_address;           // speak from the node's own address ("" = any)
	std::vector<uid_t> controller_uids; // whose sealed orders are obeyed (root, SlurmUser)
	Seconds interval{5};                // between reports, give or take 10 % (next_delay)
	// Per exchange (connect, send, answer). The controller answers within
	// milliseconds and cuts a request that is not in after 2 s; 3 s leaves
	// room for one lost SYN (retried after 1 s). With two controllers a
	// report takes 6 s at most.
	Seconds timeout{3};
	// After each sample (metrics:, "" = off): node_exporter's textfile
	// directory gets flexslurm_node.prom; DCGM's job mapping directory one
	// file per GPU index with the jobs on it.
	std::string metrics_dir;
	std::string dcgm_job_mapping_dir;
	double idle_below_percent = 5; // lending.idle_below_percent: below it a sample is idle
};

struct AgentIo {
	std::function<Result<std::string>(std::string_view payload)> seal;
	Opener open;
	std::function<Exchanged(const std::string &host, uint16_t port, std::string_view request,
	                        const std::string &bind_address, Seconds timeout)>
	        exchange;
	// ordered_at: boot_ticks_now() when the stop was first ordered (kill_job_processes)
	std::function<int(uint32_t job, uint64_t ordered_at)> kill_job;
	std::function<Instant()> wall_clock;
	std::function<double()> random;       // uniform in [0, 1): the jitter of the report times
	std::function<uint64_t()> boot_ticks; // boot_ticks_now() if empty
	// The metrics and DCGM files: written atomically, readable by all;
	// remove: a DCGM mapping file of a GPU with no job left (gone is fine).
	std::function<Result<bool>(const std::string &path, const std::string &text)> write_public;
	std::function<void(const std::string &path)> remove;

	// Munge, TCP and SIGKILL for real.
	static AgentIo production(const MungeEndpoint &munge);
};

class NodeAgent
{
public:
	NodeAgent(AgentSettings settings, SliceLayout layout, std::unique_ptr<TelemetryBackend> backend,
	          AgentIo io);
	~NodeAgent(); // stops and joins the thread
	NodeAgent(const NodeAgent &) = delete;
	NodeAgent &operator=(const NodeAgent &) = delete;

	void start();

	// One report and its answer (the thread calls this every interval). Each
	// try (the next controller; the same one without the bind address, when
	// that is not this host's) sends a report of its own, with the next seq
	// and a fresh credential: one a controller may have taken already is
	// never sent again, where it would be dropped as a replay.
	void report_once();
	// How long the thread waits before its next report: a random part of one
	// interval before the first, the interval +-10 % after each, so that
	// agents started together (a cluster boot) spread out and stay apart.
	std::chrono::milliseconds next_delay(bool first);
	// Kills every borrower whose stop is due at `now` (steady clock).
	void run_due_stops(std::chrono::steady_clock::time_point now);

	// For tests: the stops now scheduled, job -> due.
	std::map<uint32_t, std::chrono::steady_clock::time_point> scheduled_stops() const;
	Report build_report(const std::vector<DeviceSample> &samples);
	// Who holds each slice unit, as the last answer said.
	std::vector<SliceJobs> slice_holders() const;
	// The metrics and DCGM files from a sample (report_once calls it).
	void write_metrics(const std::vector<DeviceSample> &samples);

private:
	void loop();
	void obey(const Orders &orders);
	struct Attempt {
		enum Kind { Delivered, Unreachable, BindNotLocal, BadAnswer, SealFailed } kind;
		std::string why;
	};
	Attempt attempt(const std::string &host, const std::vector<DeviceSample> &samples,
	                const std::string &bind_address);

	AgentSettings settings_;
	SliceLayout layout_;
	std::unique_ptr<TelemetryBackend> backend_;
	AgentIo io_;
	uint64_t epoch_ = 0;
	uint64_t seq_ = 0;
	std::string last_failure_; // logged once until it changes
	Instant started_at_{};
	std::vector<Instant> last_active_;                         // by layout device
	std::optional<std::map<int, std::vector<uint32_t>>> dcgm_; // as last written
	std::string metrics_failure_;                              // logged once until it changes

	struct Stop {
		std::chrono::steady_clock::time_point due;
		bool done = false;
		uint64_t ordered_at = 0; // boot ticks at the first order: binds it to the job running then
	};
	mutable std::mutex mutex_;
	std::condition_variable wake_;
	bool stopping_ = false;
	std::map<uint32_t, Stop> stops_;
	std::vector<SliceJobs> holders_; // by unit, from the last answer
	std::thread thread_;
};

} // namespace flexslurm
