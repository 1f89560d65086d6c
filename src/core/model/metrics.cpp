// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

namespace flexslurm
{

void Histogram::observe(double value)
{
	const auto at = std::lower_bound(bounds.begin(), bounds.end(), value); // le: value <= bound
	++counts[static_cast<size_t>(at - bounds.begin())];
	sum += value;
	++count;
}

std::string metric_value(double v)
{
	if (std::isnan(v))
		return "NaN";
	if (std::isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) // 2^53: exact as an integer
		return std::to_string(static_cast<int64_t>(v));
	char buf[64];
	const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
	return ec == std::errc() ? std::string(buf, end) : "NaN";
}

namespace
{

std::string escaped(std::string_view v, bool quotes)
{
	std::string out;
	out.reserve(v.size());
	for (const char c : v) {
		if (c == '\\')
			out += "\\\\";
		else if (c == '\n')
			out += "\\n";
		else if (c == '"' && quotes)
			out += "\\\"";
		else
			out += c;
	}
	return out;
}

} // namespace

std::string escape_label_value(std::string_view v)
{
	return escaped(v, true);
}

std::string escape_help(std::string_view v)
{
	return escaped(v, false);
}

std::vector<double> reclaim_duration_buckets()
{
	return {1, 2, 5, 10, 20, 30, 60, 120, 300, 600};
}

std::vector<double> tick_duration_buckets()
{
	return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
}

void Exposition::family(std::string_view name, Type type, std::string_view help)
{
	name_ = std::string(name);
	text_ += "# HELP " + name_ + " " + escape_help(help) + "\n";
	text_ += "# TYPE " + name_ + " " +
	         (type == Type::Gauge     ? "gauge"
	          : type == Type::Counter ? "counter"
	                                  : "histogram") +
	         "\n";
}

void Exposition::line(std::string_view suffix, const MetricLabels &labels, std::string_view extra_name,
                      const std::string &extra_value, const std::string &value)
{
	text_ += name_;
	text_ += suffix;
	if (!labels.empty() || !extra_name.empty()) {
		text_ += '{';
		bool first = true;
		for (const auto &[k, v] : labels) {
			text_ += (first ? "" : ",") + std::string(k) + "=\"" + escape_label_value(v) + "\"";
			first = false;
		}
		if (!extra_name.empty())
			text_ += (first ? "" : ",") + std::string(extra_name) + "=\"" + extra_value + "\"";
		text_ += '}';
	}
	text_ += ' ' + value + '\n';
}

void Exposition::sample(const MetricLabels &labels, double value)
{
	line("", labels, "", "", metric_value(value));
}

void Exposition::histogram(const MetricLabels &labels, const Histogram &h)
{
	uint64_t cumulative = 0;
	for (size_t i = 0; i < h.bounds.size(); ++i) {
		cumulative += h.counts[i];
		line("_bucket", labels, "le", metric_value(h.bounds[i]), std::to_string(cumulative));
	}
	line("_bucket", labels, "le", "+Inf", std::to_string(h.count));
	line("_sum", labels, "", "", metric_value(h.sum));
	line("_count", labels, "", "", std::to_string(h.count));
}

namespace
{

using Type = Exposition::Type;

MetricLabels device_labels(const std::string &node, const DeviceSlices &d)
{
	return {{"Hostname", node}, {"gpu", std::to_string(d.vendor_index)}, {"UUID", d.uuid}};
}

std::string job_label(uint32_t job)
{
	return job ? std::to_string(job) : std::string();
}

} // namespace

std::string node_metrics_text(const std::string &node, const SliceLayout &layout,
                              const std::vector<DeviceUse> &use, const std::vector<SliceJobs> &slices)
{
	const auto &devices = layout.devices();
	const auto jobs_of = [&](int unit) {
		return unit >= 0 && static_cast<size_t>(unit) < slices.size()
		               ? slices[static_cast<size_t>(unit)]
		               : SliceJobs{};
	};
	std::vector<const DeviceUse *> used(devices.size(), nullptr);
	for (const DeviceUse &u : use)
		if (u.device >= 0 && static_cast<size_t>(u.device) < devices.size())
			used[static_cast<size_t>(u.device)] = &u;

	Exposition e;
	e.family(
	        "flexslurm_device_info", Type::Gauge,
	        "A sliced device: its index in the node's slice layout (device) and DCGM's gpu index and UUID (always 1)");
	for (size_t i = 0; i < devices.size(); ++i) {
		MetricLabels l = device_labels(node, devices[i]);
		l.emplace_back("device", std::to_string(i));
		l.emplace_back("vendor", std::string(vendor_name(devices[i].vendor)));
		l.emplace_back("model", devices[i].model);
		e.sample(l, 1);
	}
	e.family("flexslurm_device_slices", Type::Gauge, "Slices the device is cut into");
	for (const DeviceSlices &d : devices)
		e.sample(device_labels(node, d), d.slices);
	e.family(
	        "flexslurm_slice_memory_limit_bytes", Type::Gauge,
	        "Device memory a slice may hold (0: unknown); jobid: the job holding the slice (empty: free)");
	for (const DeviceSlices &d : devices)
		for (int s = d.first_slice; s < d.first_slice + d.slices; ++s) {
			MetricLabels l = device_labels(node, d);
			l.emplace_back("slice", std::to_string(s));
			l.emplace_back("jobid", job_label(jobs_of(s).owner));
			e.sample(l, static_cast<double>(d.slice_memory_bytes));
		}
	e.family(
	        "flexslurm_slice_compute_share_ratio", Type::Gauge,
	        "A slice's share of the device's compute (0..1); jobid: the job holding the slice (empty: free)");
	for (const DeviceSlices &d : devices)
		for (int s = d.first_slice; s < d.first_slice + d.slices; ++s) {
			MetricLabels l = device_labels(node, d);
			l.emplace_back("slice", std::to_string(s));
			l.emplace_back("jobid", job_label(jobs_of(s).owner));
			e.sample(l, d.compute_percent / 100.0);
		}
	e.family("flexslurm_slice_borrower_info", Type::Gauge,
	         "A slice lent out: jobid is the borrower (always 1)");
	for (const DeviceSlices &d : devices)
		for (int s = d.first_slice; s < d.first_slice + d.slices; ++s)
			if (const uint32_t b = jobs_of(s).borrower) {
				MetricLabels l = device_labels(node, d);
				l.emplace_back("slice", std::to_string(s));
				l.emplace_back("jobid", job_label(b));
				e.sample(l, 1);
			}
	e.family("flexslurm_device_busy_ratio", Type::Gauge,
	         "How busy the whole device was at the last sample (0..1)");
	for (size_t i = 0; i < devices.size(); ++i)
		if (used[i] && used[i]->sampled)
			e.sample(device_labels(node, devices[i]),
			         std::clamp(used[i]->busy_percent, 0.0, 100.0) / 100.0);
	e.family(
	        "flexslurm_job_busy_ratio", Type::Gauge,
	        "A job's share of the device's compute at the last sample (0..1), where the telemetry attributes use to jobs");
	for (size_t i = 0; i < devices.size(); ++i)
		if (used[i] && used[i]->sampled && used[i]->per_job)
			for (const auto &[job, busy] : used[i]->job_busy_percent) {
				MetricLabels l = device_labels(node, devices[i]);
				l.emplace_back("jobid", job_label(job));
				e.sample(l, std::clamp(busy, 0.0, 100.0) / 100.0);
			}
	e.family(
	        "flexslurm_device_last_activity_age_seconds", Type::Gauge,
	        "Seconds since a sample last found the device busy (at or above lending.idle_below_percent), or since the agent started");
	for (size_t i = 0; i < devices.size(); ++i)
		if (used[i] && used[i]->sampled)
			e.sample(device_labels(node, devices[i]), used[i]->last_activity_age_seconds);
	return e.text();
}

std::map<int, std::vector<uint32_t>> dcgm_job_map(const SliceLayout &layout,
                                                  const std::vector<SliceJobs> &slices)
{
	std::map<int, std::vector<uint32_t>> out;
	for (const DeviceSlices &d : layout.devices()) {
		if (d.vendor != Vendor::Nvidia)
			continue;
		std::set<uint32_t> jobs;
		for (int s = d.first_slice; s < d.first_slice + d.slices; ++s) {
			if (s < 0 || static_cast<size_t>(s) >= slices.size())
				continue;
			for (const uint32_t j :
			     {slices[static_cast<size_t>(s)].owner, slices[static_cast<size_t>(s)].borrower})
				if (j)
					jobs.insert(j);
		}
		if (!jobs.empty())
			out[d.vendor_index].assign(jobs.begin(), jobs.end());
	}
	return out;
}

std::string dcgm_job_file(const std::vector<uint32_t> &jobs)
{
	std::string out;
	for (const uint32_t j : jobs)
		out += std::to_string(j) + "\n";
	return out;
}

std::string controller_metrics_text(const ControllerMetrics &m)
{
	struct DeviceCounts {
		int slices = 0, allocated = 0, lent = 0, borrowed = 0;
	};
	struct NodeCounts {
		const std::string *node;
		std::vector<DeviceCounts> devices;
	};
	std::vector<NodeCounts> nodes;
	static const std::vector<NodeBooks> no_nodes;
	for (const NodeBooks &nb : m.nodes ? *m.nodes : no_nodes) {
		if (!nb.known)
			continue;
		NodeCounts n{&nb.node, {}};
		for (size_t u = 0; u < nb.device_of_slice.size(); ++u) {
			const int d = nb.device_of_slice[u];
			if (d < 0 || d > 4096)
				continue;
			if (n.devices.size() <= static_cast<size_t>(d))
				n.devices.resize(static_cast<size_t>(d) + 1);
			DeviceCounts &c = n.devices[static_cast<size_t>(d)];
			const bool owned = u < nb.owners.size() && nb.owners[u].job;
			const bool borrowed = u < nb.borrowers.size() && nb.borrowers[u].job;
			++c.slices;
			c.allocated += owned;
			c.borrowed += borrowed;
			c.lent += owned && borrowed;
		}
		nodes.push_back(std::move(n));
	}
	const auto per_device = [&](Exposition &e, int DeviceCounts::*field) {
		for (const NodeCounts &n : nodes)
			for (size_t d = 0; d < n.devices.size(); ++d)
				if (n.devices[d].slices)
					e.sample({{"Hostname", *n.node}, {"device", std::to_string(d)}},
					         n.devices[d].*field);
	};

	Exposition e;
	e.family(
	        "flexslurm_slices", Type::Gauge,
	        "Slices of the device (device: its index in the node's slice layout, see flexslurm_device_info)");
	per_device(e, &DeviceCounts::slices);
	e.family("flexslurm_slices_allocated", Type::Gauge,
	         "Slices of the device a job holds (gres/vslice, or the device held whole)");
	per_device(e, &DeviceCounts::allocated);
	e.family("flexslurm_slices_lent", Type::Gauge, "Allocated slices of the device a borrower holds now");
	per_device(e, &DeviceCounts::lent);
	e.family("flexslurm_slices_borrowed", Type::Gauge,
	         "Borrow units (gres/vborrow) of the device held by borrowers");
	per_device(e, &DeviceCounts::borrowed);
	e.family("flexslurm_devices_partly_allocated", Type::Gauge,
	         "Devices of the node with some but not all slices allocated");
	for (const NodeCounts &n : nodes)
		e.sample({{"Hostname", *n.node}},
		         static_cast<double>(
		                 std::count_if(n.devices.begin(), n.devices.end(), [](const DeviceCounts &c) {
			                 return c.allocated > 0 && c.allocated < c.slices;
		                 })));
	e.family("flexslurm_fragmentation_ratio", Type::Gauge,
	         "Share of the node's sliced devices that are partly allocated (0..1)");
	for (const NodeCounts &n : nodes) {
		const auto sliced = std::count_if(n.devices.begin(), n.devices.end(),
		                                  [](const DeviceCounts &c) { return c.slices > 0; });
		const auto partly =
		        std::count_if(n.devices.begin(), n.devices.end(), [](const DeviceCounts &c) {
			        return c.allocated > 0 && c.allocated < c.slices;
		        });
		e.sample({{"Hostname", *n.node}},
		         sliced ? static_cast<double>(partly) / static_cast<double>(sliced) : 0.0);
	}
	e.family("flexslurm_loans_total", Type::Counter, "Slices lent to borrowers since slurmctld started");
	e.sample({}, static_cast<double>(m.counters.loans));
	e.family("flexslurm_reclaims_total", Type::Counter,
	         "Reclaims started since slurmctld started, by reason");
	for (size_t r = 0; r < reclaim_reason_count; ++r)
		e.sample({{"reason", std::string(reason_name(static_cast<ReclaimReason>(r)))}},
		         static_cast<double>(m.counters.reclaims[r]));
	e.family("flexslurm_reclaims_in_flight", Type::Gauge, "Reclaims started and not yet done");
	e.sample({}, static_cast<double>(m.reclaims_in_flight));
	e.family("flexslurm_reclaim_duration_seconds", Type::Histogram,
	         "From a reclaim's start to its borrower gone from the device");
	e.histogram({}, m.counters.reclaim_seconds);
	e.family("flexslurm_reports_accepted_total", Type::Counter, "Node agent reports accepted");
	e.sample({}, static_cast<double>(m.accepted));
	e.family("flexslurm_reports_dropped_total", Type::Counter, "Node agent reports dropped, by reason");
	for (size_t r = 0; r < drop_reason_count; ++r)
		e.sample({{"reason", std::string(drop_reason_name(static_cast<DropReason>(r)))}},
		         static_cast<double>(m.dropped[r]));
	e.family("flexslurm_lending_tick_duration_seconds", Type::Histogram,
	         "Real time of the lending server's ticks (once a second)");
	e.histogram({}, m.tick_seconds);
	return e.text();
}

} // namespace flexslurm
