// SPDX-License-Identifier: GPL-2.0-or-later
// The controller's ledger of idle reclaim: one SliceLending per slice of
// every node, fed from three sides. Slurm's job records say who owns each
// slice and who holds each borrow unit (sync, every tick and after a
// restart: the books are the source of truth for allocations); the node
// agents' reports say how busy each owner is; the clock drives idle
// windows, loan limits and grace deadlines. Out come decisions for the
// plugin to carry out under Slurm's locks: which borrowers to signal, which
// to requeue, which processes a node must stop, and whether the scheduler
// should run because something became lendable.
//
// Borrow unit u of a node shadows slice u of that node (gres/vborrow has as
// many units per device as gres/vslice), so a loan is "unit u held by a
// borrower while slice u is held by its owner". Soft state (idle timers, loan
// start times, reclaims in flight, history, per-job totals) survives a
// controller restart through serialize()/restore(); allocations never need
// it.
#pragma once

#include "core/model/lending.hpp"
#include "core/model/report.hpp"

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

struct SliceOwner {
	uint32_t job = 0;
	std::string partition;
	std::optional<Instant> end; // the job's end time, if it has a limit
	bool whole = false;         // it holds the device whole (gres/gpu), not this slice

	bool operator==(const SliceOwner &) const = default;
};

struct BorrowHolding {
	uint32_t job = 0;
	bool completing = false; // requeued or ended, its processes not yet gone
	uint32_t run = 0;        // which run of the job: Slurm's restart count

	bool operator==(const BorrowHolding &) const = default;
};

// What a job record says about a borrower whose reclaim is in flight: the
// only word on whether it left. A controller killed right after a requeue
// restarts from job state saved before it, and the record shows the old run
// still running (or ended by the agent's hard stop while the controller was
// down): the requeue did not happen.
struct BorrowerRecord {
	enum class Stage {
		Running, // running or suspended
		Leaving, // completing: requeued or ended, its processes not yet gone
		Pending, // waiting to run (again)
		Failed,  // ended FAILED: what a hard stop leaves
		Ended,   // ended otherwise: completed, cancelled, timed out...
	};
	Stage stage = Stage::Running;
	uint32_t run = 0;           // Slurm's restart count
	std::optional<Instant> end; // when it ended (Failed, Ended)
};

// One node as Slurm's job records show it now. Flat, unit by unit: the
// controller fills the same records in place tick after tick (no memory
// is allocated once they have their sizes), and the book reads them
// along its slices.
struct NodeBooks {
	std::string node;
	// false: Slurm does not know the node's devices yet (a restarted
	// controller before the node registers): keep what the book has.
	bool known = true;
	std::vector<int> device_of_slice; // per slice unit: its device (layout order)
	// The partitions the node is in (LendingPolicy::free_slices_lent).
	std::vector<std::string> partitions;
	// Per slice unit, its owner (job 0: none); units past the end have none.
	std::vector<SliceOwner> owners;
	// Per borrow unit (= the slice it shadows), its borrower (job 0: none).
	std::vector<BorrowHolding> borrowers;

	// Unit u's owner or borrower (made, with the units before it, if
	// missing): what the controller sets from a job's units.
	SliceOwner &owner(size_t u);
	BorrowHolding &borrower(size_t u);
	// No owner and no borrower on any unit, the sizes kept.
	void clear_units();
};

struct ReclaimOrder {
	uint32_t borrower = 0;
	ReclaimReason reason = ReclaimReason::LenderBusy;
};

struct TickActions {
	std::vector<ReclaimOrder> signal; // reclaim starts: send the checkpoint signal
	std::vector<uint32_t> requeue;    // grace over (or no signal to wait for): requeue
	// A requeue the job record does not show (lost with a controller
	// restart), of a borrower the hard stop has ended meanwhile: requeue
	// the ended job (Slurm requeues a finished batch job too).
	std::vector<uint32_t> requeue_ended;
	bool lendable_appeared = false; // run the scheduler: a waiting borrower may fit
};

// What the book counted since the controller started (metrics): a clear()
// or restore() keeps them.
struct BookCounters {
	uint64_t loans = 0;                                    // borrow units started (lent())
	std::array<uint64_t, reclaim_reason_count> reclaims{}; // reclaims started, by ReclaimReason
};

struct JobTotals {
	uint64_t lent_slice_seconds = 0;
	uint64_t borrowed_slice_seconds = 0;

	bool operator==(const JobTotals &) const = default;
};

// A reclaim in flight, as the book keeps it and the state file saves it.
struct ReclaimInFlight {
	uint32_t borrower = 0;
	ReclaimReason reason = ReclaimReason::LenderBusy;
	Instant t0{};
	Instant deadline{};
	bool signalled = false;
	std::optional<Instant> requeued_at;
	std::set<std::string> nodes;
	std::optional<uint32_t> run; // the run being taken back (restart count)
	int requeued_again = 0;      // requeues the job record did not show
	bool operator==(const ReclaimInFlight &) const = default;
};

// Everything serialize() and status() show, copied out of the book so that
// the text can be formatted without holding the book's lock. Slices still
// in their initial state (free, no history) are left out: the state file
// does not need them (sync recreates them) and the status skips free ones.
// A node's rows are shared, unchanged, between the snapshots taken while
// none of its slices changed: a snapshot costs what changed since the last.
struct BookSnapshot {
	struct SliceRow {
		int unit = 0;
		int device = 0;
		SliceLending::Memento m;
		bool operator==(const SliceRow &) const = default;
	};
	struct NodeRows {
		std::string node;
		std::vector<SliceRow> rows; // unit by unit, never empty in a snapshot
	};
	Instant now{};                                      // the book's clock when taken
	Seconds wall_offset{0};                             // wall clock minus the book's clock
	std::vector<std::shared_ptr<const NodeRows>> nodes; // node by node
	std::vector<ReclaimInFlight> reclaims;
	std::vector<std::pair<uint32_t, JobTotals>> totals;
	std::vector<std::string> history; // each line starts with its wall time
	// The lending server's "TICK ..." line (its tick times), shown in the
	// status before the history; empty: none.
	std::string tick_summary;

	// Same content, whenever taken (`now` aside; the per-job totals only
	// if asked): the state need not be written again.
	bool same_content(const BookSnapshot &o, bool with_totals = true) const;
	// The state file's text ("saved" is now in wall clock time).
	std::string state_text() const;
	// Per slice: owner, borrower, since when, state; then reclaim history.
	std::string status_text() const;
};

class LoanBook
{
public:
	LoanBook(LendingPolicy policy, Seconds telemetry_timeout, Seconds hard_stop_after);
	LoanBook(const LoanBook &) = delete;
	LoanBook &operator=(const LoanBook &) = delete;

	// `borrowers`: the job records of reclaim_borrowers() (one missing:
	// no record, the job is gone). Without them a borrower that holds no
	// unit any more counts as gone.
	// New settings (reconfigure): idle windows and loans already started
	// follow them from now on; a reclaim in flight keeps its deadline.
	void set_policy(LendingPolicy policy, Seconds telemetry_timeout, Seconds hard_stop_after);

	// `end_offset`: the owners' end times are on a clock that far ahead
	// of the book's (the controller hands in wall clock times).
	void sync(Instant now, const std::vector<NodeBooks> &nodes,
	          const std::map<uint32_t, BorrowerRecord> *borrowers = nullptr,
	          Seconds end_offset = Seconds(0));
	void report(Instant now, const Report &r);

	// Borrow units of a node a borrower may be given now: slices idle
	// owners lend, and, with policy.free_slices, free slices of devices the
	// node's last report showed with memory to lend. `allocated_now`
	// (optional): whether Slurm's books show slice u allocated now, a job
	// placed since the last sync (a free slice it says yes to is not lent).
	std::vector<int> lendable_units(const std::string &node, Instant now,
	                                const std::function<bool(int)> &allocated_now = {}) const;
	// A borrower was started on these units (select_p_job_begin).
	void lent(Instant now, const std::string &node, int unit, uint32_t borrower);
	// The admin takes a loan back: false if that job borrows nothing.
	bool admin_reclaim(Instant now, uint32_t borrower);

	TickActions tick(Instant now);
	void signalled(uint32_t borrower, Instant now);
	void requeued(uint32_t borrower, Instant now);
	// The job cannot be requeued: it was stopped another way.
	void gave_up(uint32_t borrower, Instant now);

	// `with_slices`: also who holds each slice (the node's metrics and DCGM
	// files); an agent older than that refuses such an answer.
	Orders orders_for(const std::string &node, uint64_t seq, Instant now, bool with_slices = false) const;

	const std::map<uint32_t, JobTotals> &totals() const noexcept { return totals_; }
	// The totals of these jobs go: their records are gone (the controller
	// asks the job records which of the jobs with totals still exist).
	void forget_totals(const std::vector<uint32_t> &jobs);
	// Log lines since the last call: loans, reclaims with their latencies.
	std::vector<std::string> take_events();
	const BookCounters &counters() const noexcept { return counters_; }
	// Seconds from each reclaim's start to its device free, for the
	// reclaims done since the last call.
	std::vector<int64_t> take_reclaim_durations();
	// Counts the events (loans, reclaims and their steps) and the
	// restores: the state is worth saving at once when it moved.
	uint64_t revision() const noexcept { return revision_; }

	// The book's clock may be a steady clock: times written to the state
	// file and the history are shown on the wall clock, `offset` (wall
	// minus the book's clock) later, and a restored state is shifted back
	// by the offset set when restore() runs. 0 (the default): the book's
	// clock is the wall clock.
	void set_wall_offset(Seconds offset) noexcept { wall_offset_ = offset; }

	// Rebuilds the rows of the nodes whose slices changed since the last
	// snapshot and shares the others'.
	BookSnapshot snapshot(Instant now) const;
	// The same built from scratch (tests compare the two).
	BookSnapshot fresh_snapshot(Instant now) const;
	std::string serialize(Instant now) const;
	// false (and the book stays empty) if the text is not a state this
	// version wrote; the caller logs why and starts afresh, which is safe.
	bool restore(std::string_view text, std::string &why);
	// The same from a stream of lines (without their '\n'): `next` returns
	// false at the end. A state file need not fit in memory twice.
	using LineSource = std::function<bool(std::string_view &line)>;
	bool restore(const LineSource &next, std::string &why);
	// Forgets everything (a controller that stands by: what it knew is
	// stale once another one runs the cluster).
	void clear();
	// Per slice: owner, borrower, since when, state; then reclaim history.
	std::string status(Instant now) const;

	size_t active_reclaims() const noexcept { return reclaims_.size(); }
	// Borrowers with a reclaim in flight: whose job records sync wants.
	std::vector<uint32_t> reclaim_borrowers() const;

private:
	struct Slice {
		explicit Slice(const LendingPolicy &p) : lending(p) {}
		SliceLending lending;
		int device = 0;
	};
	struct Node {
		std::vector<Slice> slices; // by unit
		std::optional<Instant> last_report;
		std::set<int> lendable_memory_devices; // devices with memory no slice reserved
		std::set<int> borrowed_units;          // as last synced
		std::vector<std::string> partitions;   // as last synced
		std::vector<bool> lendable_before;     // by unit, at the last tick
		uint64_t synced = 0;                   // the sync that last saw it
		// A slice (or its device) changed since `rows` were taken.
		mutable bool changed = true;
		mutable std::shared_ptr<const BookSnapshot::NodeRows> rows;
	};
	using Nodes = std::map<std::string, Node>;
	using Reclaim = ReclaimInFlight;
	enum class Verdict { Wait, Done, RequeueAgain, RequeueEnded };

	// A slice's state may have changed: its node's rows are taken again.
	static void touched(Node &n, Slice &s)
	{
		if (s.lending.take_changed())
			n.changed = true;
	}
	Node *node_of(size_t index, const std::string &name);
	void sync_node(Node &n, const NodeBooks &nb, Instant now, Seconds end_offset,
	               std::map<uint32_t, bool> *borrower_running);
	// The reclaims in flight against the job records (loan_book_reclaims.cpp).
	void settle_reclaims(Instant now, const std::map<uint32_t, BorrowerRecord> &borrowers);
	void settle_reclaims(Instant now, const std::map<uint32_t, bool> &borrower_running,
	                     const std::vector<std::string> &unknown_nodes);
	Verdict judge(Reclaim &r, const BorrowerRecord *record, Instant now);
	void new_run_is_a_loan(uint32_t borrower, Instant now);
	std::optional<uint32_t> run_of(uint32_t borrower) const;
	void start_reclaim(const std::string &name, size_t unit, const SliceLending &l, Instant now,
	                   TickActions &out);
	void finish_reclaim(const Reclaim &r, Instant now);
	void event(Instant now, std::string text);
	bool fresh(const Node &n, Instant now) const;
	bool lendable(const Node &n, size_t unit, Instant now) const; // given fresh()
	BookSnapshot snapshot(Instant now, bool reuse) const;

	LendingPolicy policy_;
	Seconds telemetry_timeout_;
	Seconds hard_stop_after_;
	Nodes nodes_;
	std::vector<Nodes::iterator> sync_order_; // nodes_ in the order the last sync saw them
	uint64_t syncs_ = 0;
	std::map<uint32_t, Reclaim> reclaims_;
	std::map<uint32_t, JobTotals> totals_;
	// As last synced: borrower -> its run, sorted by borrower.
	std::vector<std::pair<uint32_t, uint32_t>> borrower_run_;
	std::vector<uint32_t> requeue_ended_; // for the next tick
	std::optional<Instant> last_tick_;
	Seconds wall_offset_{0};
	uint64_t revision_ = 0;
	std::vector<std::string> pending_events_;
	BookCounters counters_;
	std::vector<int64_t> reclaim_durations_; // bounded: taken every tick
	std::deque<std::string> history_;        // bounded
};

} // namespace flexslurm
