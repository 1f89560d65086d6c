// SPDX-License-Identifier: GPL-2.0-or-later
// The ledger's snapshot and its two texts: the state file (written by
// state_text, read back by LoanBook::restore) and the status.
#include "core/model/loan_book.hpp"

#include "core/model/loan_book_text.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <charconv>

namespace flexslurm
{

using book_text::job_text;
using book_text::unix_of;

namespace
{

bool parse_time(std::string_view s, std::optional<Instant> &out)
{
	if (s == "-") {
		out.reset();
		return true;
	}
	// A state file is input from disk: a time past 2100 (or a huge value
	// that would overflow when a grace is added to it) is refused.
	constexpr int64_t latest_time = 4102444800; // 2100-01-01
	int64_t v = 0;
	if (!parse_number(s, v, int64_t{0}, latest_time))
		return false;
	out = Instant(Seconds(v));
	return true;
}

// The "key=value" fields of a state line, read in their fixed order: each
// read checks the key and the value; the first failure sticks (ok()).
class FieldReader
{
public:
	FieldReader(const std::vector<std::string_view> &words, size_t first) : words_(words), next_(first) {}

	bool ok() const noexcept { return ok_; }

	std::string_view raw(std::string_view key)
	{
		if (!ok_ || next_ >= words_.size())
			return fail();
		const std::string_view w = words_[next_++];
		if (w.size() <= key.size() || w.substr(0, key.size()) != key || w[key.size()] != '=')
			return fail();
		return w.substr(key.size() + 1);
	}
	template <class T>
	void number(std::string_view key, T &out, T lowest, T highest)
	{
		const std::string_view v = raw(key);
		if (ok_ && (!parse_number(v, out) || out < lowest || out > highest))
			fail();
	}
	template <class T>
	void number(std::string_view key, T &out)
	{
		number(key, out, std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
	}
	void flag(std::string_view key, bool &out) // any number, true unless 0
	{
		int v = 0;
		number(key, v);
		out = v != 0;
	}
	void time(std::string_view key, std::optional<Instant> &out)
	{
		const std::string_view v = raw(key);
		if (ok_ && !parse_time(v, out))
			fail();
	}
	void required_time(std::string_view key, Instant &out)
	{
		std::optional<Instant> t;
		time(key, t);
		if (ok_ && !t)
			fail();
		out = t.value_or(Instant{});
	}
	template <class E>
	void name(std::string_view key, std::optional<E> &out,
	          std::optional<E> (*of)(std::string_view) noexcept, bool dash_allowed)
	{
		const std::string_view v = raw(key);
		if (!ok_)
			return;
		out = dash_allowed && v == "-" ? std::nullopt : of(v);
		if (!out && !(dash_allowed && v == "-"))
			fail();
	}

private:
	std::string_view fail()
	{
		ok_ = false;
		return {};
	}

	const std::vector<std::string_view> &words_;
	size_t next_;
	bool ok_ = true;
};

// The state file's times are on the wall clock, the book's on its own.
std::optional<Instant> shifted(std::optional<Instant> t, Seconds by)
{
	return t ? std::optional<Instant>(*t + by) : std::nullopt;
}

} // namespace

BookSnapshot LoanBook::snapshot(Instant now) const
{
	return snapshot(now, true);
}

BookSnapshot LoanBook::fresh_snapshot(Instant now) const
{
	return snapshot(now, false);
}

BookSnapshot LoanBook::snapshot(Instant now, bool reuse) const
{
	BookSnapshot out;
	out.now = now;
	out.wall_offset = wall_offset_;
	const SliceLending::Memento initial;
	out.nodes.reserve(nodes_.size());
	for (const auto &[name, n] : nodes_) {
		std::shared_ptr<const BookSnapshot::NodeRows> rows = n.rows;
		if (!reuse || n.changed || !rows) {
			auto fresh = std::make_shared<BookSnapshot::NodeRows>();
			fresh->node = name;
			for (size_t u = 0; u < n.slices.size(); ++u)
				if (SliceLending::Memento m = n.slices[u].lending.memento(); !(m == initial))
					fresh->rows.push_back({static_cast<int>(u), n.slices[u].device, m});
			rows = std::move(fresh);
			if (reuse) {
				n.rows = rows;
				n.changed = false;
			}
		}
		if (!rows->rows.empty())
			out.nodes.push_back(std::move(rows));
	}
	out.reclaims.reserve(reclaims_.size());
	for (const auto &[b, r] : reclaims_)
		out.reclaims.push_back(r);
	out.totals.assign(totals_.begin(), totals_.end());
	out.history.assign(history_.begin(), history_.end());
	return out;
}

bool BookSnapshot::same_content(const BookSnapshot &o, bool with_totals) const
{
	const auto same_nodes = [&] {
		return std::equal(nodes.begin(), nodes.end(), o.nodes.begin(), o.nodes.end(),
		                  [](const auto &a, const auto &b) {
			                  return a == b || (a->node == b->node && a->rows == b->rows);
		                  });
	};
	return wall_offset == o.wall_offset && reclaims == o.reclaims && history == o.history &&
	       (!with_totals || totals == o.totals) && same_nodes();
}

std::string BookSnapshot::state_text() const
{
	const auto wall = [this](std::optional<Instant> t) {
		return book_text::time_text(shifted(t, wall_offset));
	};
	size_t rows = 0;
	for (const auto &n : nodes)
		rows += n->rows.size();
	std::string out;
	out.reserve(64 + rows * 160 + totals.size() * 32 + history.size() * 100);
	out.append(book_text::state_header)
	        .append("\nsaved ")
	        .append(std::to_string(unix_of(now + wall_offset)))
	        .append("\n");
	for (const auto &node : nodes)
		for (const SliceRow &row : node->rows) {
			const SliceLending::Memento &m = row.m;
			out.append("slice ").append(node->node).append(" ").append(std::to_string(row.unit));
			out.append(" ")
			        .append(std::to_string(row.device))
			        .append(" state=")
			        .append(state_name(m.state));
			out.append(" owner=").append(std::to_string(m.owner));
			out.append(" borrower=").append(std::to_string(m.borrower));
			out.append(" lends=").append(m.owner_lends ? "1" : "0");
			out.append(" gone=").append(m.owner_gone ? "1" : "0");
			out.append(" overdue=").append(m.overdue_reported ? "1" : "0");
			out.append(" streak=").append(std::to_string(m.busy_streak));
			out.append(" end=").append(wall(m.owner_end));
			out.append(" idle=").append(wall(m.idle_since));
			// 0: never lent (the initial value, on no clock)
			out.append(" lent=").append(std::to_string(
			        m.lent_at == Instant{} ? 0 : unix_of(m.lent_at + wall_offset)));
			out.append(" cool=").append(wall(m.cooldown_until));
			out.append(" reason=").append(m.reason ? reason_name(*m.reason) : "-");
			out.append(" deadline=").append(wall(m.deadline)).append("\n");
		}
	for (const ReclaimInFlight &r : reclaims) {
		out.append("reclaim ").append(std::to_string(r.borrower));
		out.append(" reason=").append(reason_name(r.reason));
		out.append(" t0=").append(std::to_string(unix_of(r.t0 + wall_offset)));
		out.append(" deadline=").append(std::to_string(unix_of(r.deadline + wall_offset)));
		out.append(" signalled=").append(r.signalled ? "1" : "0");
		out.append(" requeued=").append(wall(r.requeued_at)).append(" nodes=");
		bool first = true;
		for (const std::string &n : r.nodes)
			out.append(std::exchange(first, false) ? "" : ",").append(n);
		out.append(" run=").append(r.run ? std::to_string(*r.run) : "-");
		out.append(" again=").append(std::to_string(r.requeued_again)).append("\n");
	}
	for (const auto &[job, t] : totals)
		out.append("total ")
		        .append(std::to_string(job))
		        .append(" ")
		        .append(std::to_string(t.lent_slice_seconds))
		        .append(" ")
		        .append(std::to_string(t.borrowed_slice_seconds))
		        .append("\n");
	for (const std::string &h : history)
		out.append("history ").append(h).append("\n");
	out.append("end\n");
	return out;
}

std::string BookSnapshot::status_text() const
{
	std::string out = "NODE SLICE DEVICE STATE OWNER BORROWER SINCE\n";
	for (const auto &node : nodes)
		for (const SliceRow &row : node->rows) {
			const SliceLending::Memento &m = row.m;
			if (m.state == SliceState::Free)
				continue;
			out.append(node->node).append(" ").append(std::to_string(row.unit)).append(" ");
			out.append(std::to_string(row.device))
			        .append(" ")
			        .append(state_name(m.state))
			        .append(" ");
			out.append(book_text::lender_text(m.owner, m.borrower))
			        .append(" ")
			        .append(job_text(m.borrower))
			        .append(" ");
			out.append(m.borrower ? std::to_string((now - m.lent_at).count()) + "s"
			                      : std::string("-"));
			out.append("\n");
		}
	out.append("RECLAIMS IN FLIGHT\n");
	for (const ReclaimInFlight &r : reclaims)
		out.append(job_text(r.borrower))
		        .append(" ")
		        .append(reason_name(r.reason))
		        .append(" started ")
		        .append(std::to_string((now - r.t0).count()))
		        .append("s ago, deadline in ")
		        .append(std::to_string((r.deadline - now).count()))
		        .append("s")
		        .append(r.requeued_at ? ", requeued" : "")
		        .append("\n");
	if (!tick_summary.empty())
		out.append(tick_summary).append("\n");
	out.append("HISTORY\n");
	for (const std::string &h : history)
		out.append(h).append("\n");
	return out;
}

std::string LoanBook::serialize(Instant now) const
{
	return snapshot(now).state_text();
}

std::string LoanBook::status(Instant now) const
{
	return snapshot(now).status_text();
}

bool LoanBook::restore(std::string_view text, std::string &why)
{
	size_t pos = 0;
	return restore(
	        [&](std::string_view &line) {
		        if (pos >= text.size())
			        return false;
		        size_t eol = text.find('\n', pos);
		        if (eol == std::string_view::npos)
			        eol = text.size();
		        line = text.substr(pos, eol - pos);
		        pos = eol + 1;
		        return true;
	        },
	        why);
}

bool LoanBook::restore(const LineSource &next, std::string &why)
{
	Nodes nodes;
	std::map<uint32_t, Reclaim> reclaims;
	std::map<uint32_t, JobTotals> totals;
	std::deque<std::string> history;
	std::optional<Instant> saved;
	bool ended = false;
	int line_no = 0;
	auto fail = [&](const std::string &what) {
		why = "line " + std::to_string(line_no) + ": " + what;
		return false;
	};
	// Times in the file are wall clock: back onto the book's clock.
	const Seconds back = -wall_offset_;
	std::string_view line;
	while (next(line)) {
		++line_no;
		if (ended)
			return fail("text after the end marker");
		if (line_no == 1) {
			if (line != book_text::state_header)
				return fail("not a flexslurm lending state (or another version)");
			continue;
		}
		const auto w = words(line, " ");
		if (w.empty())
			return fail("empty line");
		if (w[0] == "end" && w.size() == 1) {
			ended = true;
		} else if (w[0] == "saved" && w.size() == 2) {
			if (!parse_time(w[1], saved) || !saved)
				return fail("bad time");
		} else if (w[0] == "slice" && w.size() == 17) {
			int unit = 0, device = 0;
			if (!valid_node_name(w[1]))
				return fail("bad node name");
			if (!parse_number(w[2], unit) || unit < 0 || unit > 4096 ||
			    !parse_number(w[3], device) || device < 0 ||
			    device >= static_cast<int>(max_report_devices))
				return fail("bad slice or device number");
			SliceLending::Memento m;
			FieldReader f(w, 4);
			std::optional<SliceState> state;
			f.name("state", state, state_from_name, false);
			f.number("owner", m.owner);
			f.number("borrower", m.borrower);
			f.flag("lends", m.owner_lends);
			f.flag("gone", m.owner_gone);
			f.flag("overdue", m.overdue_reported);
			f.number("streak", m.busy_streak, 0, 1000000);
			f.time("end", m.owner_end);
			f.time("idle", m.idle_since);
			f.required_time("lent", m.lent_at);
			f.time("cool", m.cooldown_until);
			f.name("reason", m.reason, reason_from_name, true);
			f.time("deadline", m.deadline);
			if (!f.ok())
				return fail("malformed slice");
			m.state = *state;
			m.lent_at = m.lent_at == Instant{} ? Instant{} : m.lent_at + back;
			m.owner_end = shifted(m.owner_end, back);
			m.idle_since = shifted(m.idle_since, back);
			m.cooldown_until = shifted(m.cooldown_until, back);
			m.deadline = shifted(m.deadline, back);
			Node &n = nodes[std::string(w[1])];
			while (n.slices.size() <= static_cast<size_t>(unit)) // units not listed: as new
				n.slices.emplace_back(policy_);
			Slice &s = n.slices[static_cast<size_t>(unit)];
			s.device = device;
			s.lending.restore(m);
			if (m.borrower)
				n.borrowed_units.insert(unit);
		} else if (w[0] == "reclaim" && (w.size() == 8 || w.size() == 10)) {
			// 8 fields: written before the run was kept (its run unknown).
			Reclaim r;
			FieldReader f(w, 2);
			std::optional<ReclaimReason> reason;
			const bool borrower_ok = parse_number(w[1], r.borrower) && r.borrower;
			f.name("reason", reason, reason_from_name, false);
			f.required_time("t0", r.t0);
			f.required_time("deadline", r.deadline);
			f.flag("signalled", r.signalled);
			f.time("requeued", r.requeued_at);
			std::string_view list = f.raw("nodes");
			if (w.size() == 10) {
				const std::string_view run = f.raw("run");
				uint32_t n = 0;
				if (f.ok() && run != "-" && !parse_number(run, n))
					return fail("malformed reclaim");
				if (run != "-")
					r.run = n;
				f.number("again", r.requeued_again, 0, book_text::requeue_again_limit);
			}
			if (!borrower_ok || !f.ok() || r.deadline < r.t0)
				return fail("malformed reclaim");
			r.reason = *reason;
			r.t0 += back;
			r.deadline += back;
			r.requeued_at = shifted(r.requeued_at, back);
			while (!list.empty()) {
				const size_t comma = list.find(',');
				// Orders for these nodes go back to them: names a report may carry.
				if (!valid_node_name(list.substr(0, comma)))
					return fail("malformed reclaim (bad node name)");
				r.nodes.insert(std::string(list.substr(0, comma)));
				list = comma == std::string_view::npos ? std::string_view()
				                                       : list.substr(comma + 1);
			}
			reclaims[r.borrower] = r;
		} else if (w[0] == "total" && w.size() == 4) {
			uint32_t job = 0;
			JobTotals t;
			if (!parse_number(w[1], job) || !parse_number(w[2], t.lent_slice_seconds) ||
			    !parse_number(w[3], t.borrowed_slice_seconds))
				return fail("malformed total");
			totals[job] = t;
		} else if (w[0] == "history") {
			history.emplace_back(line.substr(std::min(line.size(), size_t{8})));
			if (history.size() > book_text::history_limit)
				history.pop_front();
		} else {
			return fail("unknown line \"" + std::string(line.substr(0, 40)) + "\"");
		}
	}
	if (!ended)
		return fail("truncated (no end marker)");
	nodes_ = std::move(nodes);
	sync_order_.clear();
	reclaims_ = std::move(reclaims);
	totals_ = std::move(totals);
	history_ = std::move(history);
	// Reports did not reach a stopped controller: every agent gets a full
	// timeout from the first sync to be heard again, and nothing new is
	// lent before its first report.
	for (auto &[name, n] : nodes_) {
		n.last_report.reset();
		n.lendable_memory_devices.clear();
	}
	last_tick_ = shifted(saved, back);
	++revision_;
	return true;
}

} // namespace flexslurm
