// SPDX-License-Identifier: GPL-2.0-or-later
// Prometheus metrics (flexslurm_*): the text exposition format 0.0.4 (HELP
// and TYPE lines, label escaping, histogram buckets) and the one place that
// names every metric, its labels and its unit, for the node agent's file and
// the controller's. The files go to node_exporter's textfile collector
// directory (written atomically: core/io/file_io.hpp); the DCGM exporter's
// job mapping files (--hpc-job-mapping-dir) are formatted here too.
//
// Labels join with DCGM's exporter: `gpu` (the device's NVML index, which is
// the vendor index for NVIDIA: the layout's k-th NVIDIA device in PCI order
// is NVML's k-th), `UUID` and `Hostname` (the Slurm node name); per-slice
// series carry `jobid` as jobstats does. The controller numbers devices in
// the node's slice layout order (`device`); flexslurm_device_info on the
// node maps `device` to `gpu` and `UUID`.
#pragma once

#include "core/model/lending.hpp"
#include "core/model/loan_book.hpp"
#include "core/model/report_intake.hpp"
#include "core/model/slice_layout.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flexslurm
{

// A histogram's buckets: upper bounds ascending (+Inf implied), counts per
// bucket (not cumulative; the last one is over the highest bound).
struct Histogram {
	std::vector<double> bounds;
	std::vector<uint64_t> counts;
	double sum = 0;
	uint64_t count = 0;

	explicit Histogram(std::vector<double> upper_bounds)
	    : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0)
	{
	}
	void observe(double value);
};

using MetricLabels = std::vector<std::pair<std::string_view, std::string>>;

// The text of one exposition: families in the order given, each with its
// HELP and TYPE lines and then its samples.
class Exposition
{
public:
	enum class Type { Gauge, Counter, Histogram };
	// Starts a family. `name` must be a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*).
	void family(std::string_view name, Type type, std::string_view help);
	// A sample of the current family (a gauge or counter).
	void sample(const MetricLabels &labels, double value);
	// The _bucket (cumulative, le="..."), _sum and _count lines of the current family.
	void histogram(const MetricLabels &labels, const Histogram &h);
	const std::string &text() const noexcept { return text_; }

private:
	void line(std::string_view suffix, const MetricLabels &labels, std::string_view extra_name,
	          const std::string &extra_value, const std::string &value);
	std::string text_;
	std::string name_;
};

// A sample value as the format writes it: integers without a fraction,
// others in the shortest form that reads back the same, NaN, +Inf, -Inf.
std::string metric_value(double v);
// A label value with \, " and newline escaped (\\, \", \n).
std::string escape_label_value(std::string_view v);
// HELP text with \ and newline escaped.
std::string escape_help(std::string_view v);

// Buckets of flexslurm_reclaim_duration_seconds and of
// flexslurm_lending_tick_duration_seconds.
std::vector<double> reclaim_duration_buckets();
std::vector<double> tick_duration_buckets();

// --- The node agent's file ----------------------------------------------------

// Who holds slice unit u of the node, as the controller last said (0: none).
struct SliceJobs {
	uint32_t owner = 0;
	uint32_t borrower = 0;
	bool operator==(const SliceJobs &) const = default;
};

// One device as the agent last sampled it (layout order).
struct DeviceUse {
	int device = 0;
	bool sampled = false; // false: the backend could not read it (no busy series)
	double busy_percent = 0;
	bool per_job = false;
	std::vector<std::pair<uint32_t, double>> job_busy_percent; // when per_job
	double last_activity_age_seconds = 0; // since it was last busy (or the agent started)
};

// flexslurm_device_info, _device_slices, _slice_memory_limit_bytes,
// _slice_compute_share_ratio, _slice_borrowed, _device_busy_ratio,
// _job_busy_ratio, _device_last_activity_age_seconds. `slices` by unit
// (missing units: no job); `use` in any order (missing devices: not sampled).
std::string node_metrics_text(const std::string &node, const SliceLayout &layout,
                              const std::vector<DeviceUse> &use, const std::vector<SliceJobs> &slices);

// DCGM's job mapping (--hpc-job-mapping-dir): per NVIDIA device's `gpu`
// index, every job on it (slice owners, jobs holding it whole, borrowers),
// each once, ascending. Devices with no job are absent.
std::map<int, std::vector<uint32_t>> dcgm_job_map(const SliceLayout &layout,
                                                  const std::vector<SliceJobs> &slices);
// A mapping file's text: one job id per line.
std::string dcgm_job_file(const std::vector<uint32_t> &jobs);

// --- The controller's file ------------------------------------------------------

// Counted by the loan book since the controller started.
struct LendingCounters {
	uint64_t loans = 0;                                    // slices lent (each borrow unit started)
	std::array<uint64_t, reclaim_reason_count> reclaims{}; // reclaims started, by reason
	Histogram reclaim_seconds{reclaim_duration_buckets()}; // signal to device free
};

struct ControllerMetrics {
	const std::vector<NodeBooks> *nodes = nullptr; // the job records' view
	LendingCounters counters;
	std::array<uint64_t, drop_reason_count> dropped{}; // by DropReason
	uint64_t accepted = 0;
	size_t reclaims_in_flight = 0;
	Histogram tick_seconds{tick_duration_buckets()};
};

// flexslurm_slices, _slices_allocated, _slices_lent, _slices_borrowed,
// _fragmentation_ratio, _loans_total, _reclaims_total, _reclaims_in_flight,
// _reclaim_duration_seconds, _reports_accepted_total,
// _reports_dropped_total, _lending_tick_duration_seconds.
std::string controller_metrics_text(const ControllerMetrics &m);

} // namespace flexslurm
