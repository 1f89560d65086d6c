// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/slice_map.hpp"

#include "core/util/text.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace flexslurm
{

namespace
{

constexpr std::string_view slice_gres = "vslice";
constexpr std::string_view borrow_gres = "vborrow";
constexpr std::string_view gpu_gres = "gpu";

// Splits at commas outside parentheses.
std::vector<std::string_view> top_level_items(std::string_view text)
{
	std::vector<std::string_view> out;
	int depth = 0;
	size_t start = 0;
	for (size_t i = 0; i <= text.size(); ++i) {
		if (i == text.size() || (text[i] == ',' && depth == 0)) {
			out.push_back(text.substr(start, i - start));
			start = i + 1;
		} else if (text[i] == '(') {
			++depth;
		} else if (text[i] == ')' && depth > 0) {
			--depth;
		}
	}
	return out;
}

Result<GresEntry> parse_entry(std::string_view item)
{
	const auto bad = [&](std::string_view why) {
		return Result<GresEntry>::failure("GRES entry " + quoted(item, 64) + ": " + std::string(why));
	};
	GresEntry e;
	std::string_view head = item;
	std::string_view detail;
	if (const size_t open = item.find('('); open != std::string_view::npos) {
		if (item.back() != ')')
			return bad("no closing parenthesis");
		head = item.substr(0, open);
		detail = item.substr(open + 1, item.size() - open - 2);
	}
	const auto fields = split(head, ':');
	if (fields.empty() || fields[0].empty() || fields.size() > 3)
		return bad("not name[:type][:count]");
	e.name = std::string(fields[0]);
	e.count = 1;
	if (fields.size() == 3) {
		e.type = std::string(fields[1]);
		if (!parse_number(fields[2], e.count))
			return bad("the count is not a number");
	} else if (fields.size() == 2) {
		// name:count or name:type (count 1)
		if (!parse_number(fields[1], e.count)) {
			e.type = std::string(fields[1]);
			e.count = 1;
		}
	}
	// The detail: "IDX:0-2", "S:0-1", "CNT:3", "S:0,IDX:1" (shared GRES
	// per-device forms of 23.11+ carry no IDX: and are ignored here).
	if (const size_t idx = detail.find("IDX:"); idx != std::string_view::npos) {
		std::string_view list = detail.substr(idx + 4);
		auto indices = parse_index_list(list);
		if (!indices)
			return bad(indices.error());
		e.indices = std::move(*indices);
		e.has_indices = true;
	}
	return e;
}

bool is_digits(std::string_view s)
{
	return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

} // namespace

Result<std::vector<int>> parse_index_list(std::string_view text)
{
	std::vector<int> out;
	if (text == "N/A")
		return out;
	for (std::string_view part : split(text, ',')) {
		const size_t dash = part.find('-');
		int lo = 0, hi = 0;
		const std::string_view a = part.substr(0, dash);
		const std::string_view b = dash == std::string_view::npos ? a : part.substr(dash + 1);
		if (!is_digits(a) || !is_digits(b) || !parse_number(a, lo, 0, max_slice_index) ||
		    !parse_number(b, hi, 0, max_slice_index) || hi < lo)
			return Result<std::vector<int>>::failure("index list " + quoted(text, 64) +
			                                         " is not like 0-2,5");
		if (out.size() + static_cast<size_t>(hi - lo) >= static_cast<size_t>(max_slice_index))
			return Result<std::vector<int>>::failure("index list " + quoted(text, 64) +
			                                         " is too long");
		for (int i = lo; i <= hi; ++i)
			out.push_back(i);
	}
	std::sort(out.begin(), out.end());
	out.erase(std::unique(out.begin(), out.end()), out.end());
	return out;
}

Result<std::vector<GresEntry>> parse_gres_list(std::string_view text)
{
	std::vector<GresEntry> out;
	text = trim(text);
	if (text.empty() || text == "(null)")
		return out;
	for (std::string_view item : top_level_items(text)) {
		item = trim(item);
		if (item.empty())
			continue;
		auto e = parse_entry(item);
		if (!e)
			return Result<std::vector<GresEntry>>::failure(e.error());
		out.push_back(std::move(*e));
	}
	return out;
}

Result<std::vector<LendingRow>> parse_lending_status(std::string_view text)
{
	std::vector<LendingRow> rows;
	bool header = false;
	for (std::string_view line : split(text, '\n')) {
		line = trim(line);
		if (line.empty())
			continue;
		if (!header) {
			if (line.rfind("NODE SLICE DEVICE STATE", 0) != 0)
				return Result<std::vector<LendingRow>>::failure(
				        "the lending status does not start with its header");
			header = true;
			continue;
		}
		if (line == "RECLAIMS IN FLIGHT")
			break;
		const auto w = words(line);
		LendingRow r;
		const auto job = [](std::string_view s, uint32_t &out) {
			if (s == "-")
				return true;
			return s.rfind("JobId=", 0) == 0 && parse_number(s.substr(6), out, 1u, UINT32_MAX);
		};
		bool ok = w.size() == 7 && parse_number(w[1], r.slice, 0, max_slice_index) &&
		          parse_number(w[2], r.device, 0, max_slice_index) && job(w[4], r.owner) &&
		          job(w[5], r.borrower);
		if (ok && w[6] != "-") {
			int64_t s = 0;
			ok = w[6].size() > 1 && w[6].back() == 's' &&
			     parse_number(w[6].substr(0, w[6].size() - 1), s, int64_t{0}, INT64_MAX);
			r.lent_seconds = s;
		}
		if (!ok)
			return Result<std::vector<LendingRow>>::failure(
			        "lending status row " + quoted(line, 80) +
			        " is not NODE SLICE DEVICE STATE OWNER BORROWER SINCE");
		r.node = std::string(w[0]);
		r.state = std::string(w[3]);
		rows.push_back(std::move(r));
	}
	if (!header)
		return Result<std::vector<LendingRow>>::failure("the lending status is empty");
	return rows;
}

std::string_view lending_view_name(LendingView v) noexcept
{
	switch (v) {
	case LendingView::Shown:
		return "shown";
	case LendingView::NotPermitted:
		return "not-permitted";
	case LendingView::Disabled:
		return "disabled";
	case LendingView::Unavailable:
		return "unavailable";
	}
	return "unavailable";
}

SliceCounts &SliceCounts::operator+=(const SliceCounts &o) noexcept
{
	total += o.total;
	allocated += o.allocated;
	lent += o.lent;
	borrowed += o.borrowed;
	return *this;
}

NodeMap build_node(const NodeInput &node, const std::vector<JobInput> &jobs,
                   const std::vector<LendingRow> *lending, const NodeDeviceIds *ids)
{
	NodeMap m;
	m.name = node.name;
	m.state = node.state;
	m.partitions = node.partitions;
	auto gres = parse_gres_list(node.gres);
	auto used = parse_gres_list(node.gres_used);
	if (!gres || !used) {
		m.problem = !gres ? "Gres: " + gres.error() : "GresUsed: " + used.error();
		return m;
	}

	// Devices, type by type in the order Slurm lists them.
	std::map<std::string, uint64_t> gpus_of_type;
	uint64_t gpus_untyped = 0;
	int slice_types = 0;
	for (const GresEntry &e : *gres) {
		if (e.name == gpu_gres) {
			m.gpus_total += e.count;
			if (e.type.empty())
				gpus_untyped += e.count;
			else
				gpus_of_type[e.type] += e.count;
		} else if (e.name == slice_gres) {
			++slice_types;
		}
	}
	uint64_t node_slices = 0;
	for (const GresEntry &e : *gres)
		node_slices += e.name == slice_gres ? std::min<uint64_t>(e.count, max_node_slices + 1) : 0;
	if (node_slices > max_node_slices) {
		m.problem = "Gres: more than " + std::to_string(max_node_slices) + " slices";
		return m;
	}
	int next_slice = 0;
	int next_device = 0;
	for (const GresEntry &e : *gres) {
		if (e.name != slice_gres || e.count == 0)
			continue;
		const int count = static_cast<int>(e.count);
		uint64_t devices = gpus_of_type.count(e.type) ? gpus_of_type[e.type] : 0;
		if (!devices && slice_types == 1)
			devices = gpus_untyped ? gpus_untyped : m.gpus_total;
		const bool split = devices > 0 && devices <= e.count && e.count % devices == 0;
		const int per_device = split ? static_cast<int>(e.count / devices) : count;
		for (int first = 0; first < count; first += per_device) {
			DeviceInfo d;
			if (split)
				d.index = next_device++;
			d.model = e.type;
			d.first_slice = next_slice + first;
			d.counts.total = per_device;
			d.slices.resize(static_cast<size_t>(per_device));
			for (int i = 0; i < per_device; ++i)
				d.slices[static_cast<size_t>(i)].index = d.first_slice + i;
			m.devices.push_back(std::move(d));
		}
		next_slice += count;
	}
	// gpu unit k is device k only when each device has its index and every
	// gpu unit is one of them.
	const bool gpus_are_devices = !m.devices.empty() && m.devices.size() == m.gpus_total &&
	                              std::all_of(m.devices.begin(), m.devices.end(),
	                                          [](const DeviceInfo &d) { return d.index.has_value(); });
	const auto device_at = [&](int index) -> DeviceInfo * {
		if (!gpus_are_devices || index < 0 || static_cast<size_t>(index) >= m.devices.size())
			return nullptr;
		return &m.devices[static_cast<size_t>(index)];
	};
	if (ids && ids->node == node.name)
		for (const DeviceIdentity &id : ids->devices)
			for (DeviceInfo &d : m.devices)
				if (d.index == id.device) {
					d.uuid = id.uuid;
					d.pci_bus_id = id.pci_bus_id;
				}
	const auto slice_at = [&](int index) -> SliceInfo * {
		for (DeviceInfo &d : m.devices)
			if (index >= d.first_slice && index < d.first_slice + d.counts.total)
				return &d.slices[static_cast<size_t>(index - d.first_slice)];
		return nullptr;
	};

	// In use, as the node shows it (every caller may see this).
	for (const GresEntry &e : *used) {
		if (e.name == gpu_gres) {
			m.gpus_allocated += e.count;
			for (int i : e.indices)
				if (DeviceInfo *d = device_at(i))
					d->held_whole = true;
		}
		for (int i : e.indices)
			if (SliceInfo *s = slice_at(i)) {
				if (e.name == slice_gres)
					s->allocated = true;
				else if (e.name == borrow_gres)
					s->borrowed = true;
			}
	}
	// Whose, as the jobs the caller may see show it.
	for (const JobInput &job : jobs)
		for (const JobNodeGres &jn : job.nodes) {
			if (jn.node != node.name)
				continue;
			auto detail = parse_gres_list(jn.detail);
			if (!detail)
				continue;
			for (const GresEntry &e : *detail) {
				if (e.name == gpu_gres && e.count > 0 &&
				    std::find(m.gpu_jobs.begin(), m.gpu_jobs.end(), job.id) ==
				            m.gpu_jobs.end())
					m.gpu_jobs.push_back(job.id);
				if (e.name == gpu_gres)
					for (int i : e.indices)
						if (DeviceInfo *d = device_at(i)) {
							d->held_whole = true;
							d->whole_job = job.id;
						}
				for (int i : e.indices)
					if (SliceInfo *s = slice_at(i)) {
						if (e.name == slice_gres) {
							s->allocated = true;
							s->owner = job.id;
						} else if (e.name == borrow_gres) {
							s->borrowed = true;
							s->borrower = job.id;
						}
					}
			}
		}
	if (lending)
		for (const LendingRow &r : *lending) {
			if (r.node != node.name)
				continue;
			if (SliceInfo *s = slice_at(r.slice)) {
				s->lending_state = r.state;
				s->lent_seconds = r.lent_seconds;
				if (r.owner && !s->owner)
					s->owner = r.owner;
				if (r.borrower && !s->borrower)
					s->borrower = r.borrower;
			}
		}
	for (DeviceInfo &d : m.devices) {
		for (const SliceInfo &s : d.slices) {
			d.counts.allocated += s.allocated ? 1 : 0;
			d.counts.borrowed += s.borrowed ? 1 : 0;
			const bool lent = s.lending_state.empty() ? s.allocated && s.borrowed
			                                          : s.lending_state == "lent" ||
			                                                    s.lending_state == "reclaiming";
			d.counts.lent += lent ? 1 : 0;
		}
		m.counts += d.counts;
	}
	return m;
}

namespace
{

bool device_has_job(const DeviceInfo &d, uint32_t job)
{
	return d.whole_job == job || std::any_of(d.slices.begin(), d.slices.end(), [&](const SliceInfo &s) {
		       return s.owner == job || s.borrower == job;
	       });
}

} // namespace

SliceMap build_map(const std::vector<NodeInput> &nodes, const std::vector<JobInput> &jobs,
                   const std::vector<LendingRow> *lending, const Filters &filters,
                   const std::vector<NodeDeviceIds> *ids)
{
	SliceMap map;
	map.filters = filters;
	for (const NodeInput &n : nodes) {
		if (!filters.nodes.empty() &&
		    std::find(filters.nodes.begin(), filters.nodes.end(), n.name) == filters.nodes.end())
			continue;
		if (!filters.partition.empty() && std::find(n.partitions.begin(), n.partitions.end(),
		                                            filters.partition) == n.partitions.end())
			continue;
		const NodeDeviceIds *node_ids = nullptr;
		if (ids)
			for (const NodeDeviceIds &x : *ids)
				if (x.node == n.name)
					node_ids = &x;
		NodeMap m = build_node(n, jobs, lending, node_ids);
		if (filters.job) {
			const uint32_t job = *filters.job;
			const bool whole =
			        std::find(m.gpu_jobs.begin(), m.gpu_jobs.end(), job) != m.gpu_jobs.end();
			std::erase_if(m.devices,
			              [&](const DeviceInfo &d) { return !device_has_job(d, job); });
			if (m.devices.empty() && !whole)
				continue;
			m.counts = {};
			for (const DeviceInfo &d : m.devices)
				m.counts += d.counts;
		}
		map.counts += m.counts;
		map.devices += static_cast<int>(m.devices.size());
		map.nodes.push_back(std::move(m));
	}
	return map;
}

namespace
{

std::string json_string(std::string_view s)
{
	static constexpr char hex[] = "0123456789abcdef";
	std::string out = "\"";
	for (const char ch : s) {
		const auto c = static_cast<unsigned char>(ch);
		if (c == '"' || c == '\\') {
			out += '\\';
			out += ch;
		} else if (c < 0x20 || c == 0x7f) {
			out += "\\u00";
			out += hex[c >> 4];
			out += hex[c & 0xf];
		} else {
			out += ch;
		}
	}
	return out + "\"";
}

template <class T>
std::string json_optional(const std::optional<T> &v)
{
	return v ? std::to_string(*v) : "null";
}

std::string json_text_or_null(const std::string &s)
{
	return s.empty() ? "null" : json_string(s);
}

std::string json_counts(const SliceCounts &c)
{
	return "{\"total\": " + std::to_string(c.total) + ", \"allocated\": " + std::to_string(c.allocated) +
	       ", \"free\": " + std::to_string(c.free()) + ", \"lent\": " + std::to_string(c.lent) +
	       ", \"borrowed\": " + std::to_string(c.borrowed) + "}";
}

std::string json_jobs(const std::vector<uint32_t> &jobs)
{
	std::string out = "[";
	for (size_t i = 0; i < jobs.size(); ++i)
		out += (i ? ", " : "") + std::to_string(jobs[i]);
	return out + "]";
}

std::string json_strings(const std::vector<std::string> &v)
{
	std::string out = "[";
	for (size_t i = 0; i < v.size(); ++i)
		out += (i ? ", " : "") + json_string(v[i]);
	return out + "]";
}

std::string slice_state(const SliceInfo &s)
{
	if (!s.lending_state.empty())
		return s.lending_state;
	if (s.allocated)
		return s.borrowed ? "lent" : "allocated";
	return s.borrowed ? "borrowed" : "free";
}

} // namespace

std::string map_json(const SliceMap &map)
{
	std::string out = "{\"schema\": " + std::to_string(slice_map_schema) + ",\n";
	out += " \"lending\": {\"view\": " + json_string(lending_view_name(map.lending)) +
	       ", \"note\": " + json_text_or_null(map.lending_note) + "},\n";
	out += " \"identities\": {\"note\": " + json_text_or_null(map.identities_note) + "},\n";
	out += " \"filters\": {\"nodes\": " + json_strings(map.filters.nodes) +
	       ", \"partition\": " + json_text_or_null(map.filters.partition) +
	       ", \"job\": " + json_optional(map.filters.job) + "},\n";
	out += " \"summary\": {\"nodes\": " + std::to_string(map.nodes.size()) +
	       ", \"devices\": " + std::to_string(map.devices) + ", \"slices\": " + json_counts(map.counts) +
	       "},\n";
	out += " \"nodes\": [";
	for (size_t n = 0; n < map.nodes.size(); ++n) {
		const NodeMap &node = map.nodes[n];
		out += n ? ",\n  " : "\n  ";
		out += "{\"name\": " + json_string(node.name) + ", \"state\": " + json_string(node.state) +
		       ", \"partitions\": " + json_strings(node.partitions) +
		       ",\n   \"gpus\": {\"total\": " + std::to_string(node.gpus_total) +
		       ", \"allocated\": " + std::to_string(node.gpus_allocated) +
		       ", \"jobs\": " + json_jobs(node.gpu_jobs) + "}" +
		       ",\n   \"slices\": " + json_counts(node.counts) +
		       ", \"problem\": " + json_text_or_null(node.problem) + ",\n   \"devices\": [";
		for (size_t d = 0; d < node.devices.size(); ++d) {
			const DeviceInfo &dev = node.devices[d];
			out += d ? ",\n    " : "\n    ";
			out += "{\"index\": " + json_optional(dev.index) +
			       ", \"model\": " + json_text_or_null(dev.model) +
			       ", \"uuid\": " + json_text_or_null(dev.uuid) +
			       ", \"pci_bus_id\": " + json_text_or_null(dev.pci_bus_id) +
			       ", \"held_whole\": " + (dev.held_whole ? "true" : "false") +
			       ", \"whole_job\": " + json_optional(dev.whole_job) +
			       ", \"first_slice\": " + std::to_string(dev.first_slice) +
			       ", \"slices\": " + json_counts(dev.counts) + ",\n     \"slice_list\": [";
			for (size_t s = 0; s < dev.slices.size(); ++s) {
				const SliceInfo &sl = dev.slices[s];
				out += s ? ",\n      " : "\n      ";
				out += "{\"index\": " + std::to_string(sl.index) +
				       ", \"state\": " + json_string(slice_state(sl)) +
				       ", \"owner\": " + json_optional(sl.owner) +
				       ", \"borrower\": " + json_optional(sl.borrower) +
				       ", \"lending_state\": " + json_text_or_null(sl.lending_state) +
				       ", \"lent_seconds\": " + json_optional(sl.lent_seconds) + "}";
			}
			out += "]}";
		}
		out += "]}";
	}
	out += "]}\n";
	return out;
}

namespace
{

std::string job_list(const DeviceInfo &d, bool borrowers)
{
	if (!borrowers && d.held_whole) // its slices cannot be held meanwhile
		return "whole:" + (d.whole_job ? std::to_string(*d.whole_job) : std::string("?"));
	std::set<uint32_t> ids;
	bool hidden = false;
	for (const SliceInfo &s : d.slices) {
		const auto &id = borrowers ? s.borrower : s.owner;
		const bool held = borrowers ? s.borrowed : s.allocated;
		if (id)
			ids.insert(*id);
		else if (held)
			hidden = true;
	}
	std::string out;
	for (uint32_t id : ids)
		out += (out.empty() ? "" : ",") + std::to_string(id);
	if (hidden)
		out += out.empty() ? "?" : ",?";
	return out.empty() ? "-" : out;
}

std::string gpu_job_list(const NodeMap &n)
{
	std::string out;
	for (uint32_t id : n.gpu_jobs)
		out += (out.empty() ? "" : ",") + std::to_string(id);
	return out.empty() ? "-" : out;
}

void pad(std::string &out, const std::string &cell, size_t width)
{
	out += cell;
	out.append(cell.size() < width ? width - cell.size() : 1, ' ');
}

} // namespace

std::string map_text(const SliceMap &map)
{
	std::vector<std::vector<std::string>> rows;
	rows.push_back({"NODE", "DEVICE", "MODEL", "SLICES", "ALLOC", "FREE", "LENT", "BORROWED", "OWNERS",
	                "BORROWERS"});
	for (const NodeMap &n : map.nodes) {
		if (!n.problem.empty())
			rows.push_back({n.name, "?", "-", "-", "-", "-", "-", "-", "-", n.problem});
		if (n.devices.empty() && n.problem.empty())
			rows.push_back({n.name, "-", "-", "0", "0", "0", "0", "0", gpu_job_list(n), "-"});
		for (const DeviceInfo &d : n.devices)
			rows.push_back({n.name, d.index ? std::to_string(*d.index) : "?",
			                d.model.empty() ? "-" : d.model, std::to_string(d.counts.total),
			                std::to_string(d.counts.allocated), std::to_string(d.counts.free()),
			                std::to_string(d.counts.lent), std::to_string(d.counts.borrowed),
			                job_list(d, false), job_list(d, true)});
	}
	// Names and types come from slurmctld: shown as text, never raw bytes.
	for (auto &r : rows)
		for (std::string &cell : r)
			cell = shown(cell, {.keep_high_bytes = true});
	std::vector<size_t> width(rows[0].size(), 0);
	for (const auto &r : rows)
		for (size_t i = 0; i < r.size(); ++i)
			width[i] = std::max(width[i], r[i].size() + 2);
	std::string out;
	for (const auto &r : rows) {
		for (size_t i = 0; i + 1 < r.size(); ++i)
			pad(out, r[i], width[i]);
		out += r.back() + "\n";
	}
	const SliceCounts &c = map.counts;
	out += "cluster: " + std::to_string(map.nodes.size()) + " nodes, " + std::to_string(map.devices) +
	       " devices, " + std::to_string(c.total) + " slices: " + std::to_string(c.allocated) +
	       " allocated, " + std::to_string(c.free()) + " free, " + std::to_string(c.lent) + " lent, " +
	       std::to_string(c.borrowed) + " borrowed\n";
	// gpu units held whole: their devices' slices cannot be allocated, but
	// which device a gpu unit is shows only on the node.
	for (const NodeMap &n : map.nodes)
		if (n.gpus_allocated)
			out += shown(n.name) + ": " + std::to_string(n.gpus_allocated) + " of " +
			       std::to_string(n.gpus_total) + " GPUs held whole (jobs " + gpu_job_list(n) +
			       "); their slices cannot be allocated meanwhile\n";
	if (map.lending != LendingView::Shown)
		out += "lending state: not shown (" + shown(map.lending_note, {.keep_high_bytes = true}) +
		       ")\n";
	return out;
}

} // namespace flexslurm
