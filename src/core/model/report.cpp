#include "core/model/report.hpp"

#include "core/util/log.hpp"

#include <algorithm>
#include <array>
#include <bitset>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>

namespace flexslurm
{

namespace
{

constexpr std::string_view report_magic = "flexslurm-report";
constexpr std::string_view orders_magic = "flexslurm-orders";
constexpr size_t max_line_chars = 256;
constexpr size_t max_fields = 16;

// Untrusted text in an error message: quoted, escaped, shortened, so that a
// hostile report cannot forge log lines or fill the log.
std::string quoted(std::string_view text)
{
	constexpr size_t max_shown = 32;
	std::string out = "\"";
	for (size_t i = 0; i < text.size() && i < max_shown; ++i) {
		const auto c = static_cast<unsigned char>(text[i]);
		if (c == '"' || c == '\\') {
			out += '\\';
			out += static_cast<char>(c);
		} else if (c < 0x20 || c > 0x7e) {
			static constexpr char hex[] = "0123456789abcdef";
			out += "\\x";
			out += hex[c >> 4];
			out += hex[c & 0xf];
		} else {
			out += static_cast<char>(c);
		}
	}
	if (text.size() > max_shown)
		out += "...";
	return out + "\"";
}

// Canonical unsigned decimal: digits only, no leading zero, no sign.
std::optional<uint64_t> parse_unsigned(std::string_view token) noexcept
{
	if (token.empty() || (token.size() > 1 && token[0] == '0') || token[0] < '0' || token[0] > '9')
		return std::nullopt;
	uint64_t v = 0;
	const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
	if (ec != std::errc() || end != token.data() + token.size())
		return std::nullopt;
	return v;
}

std::optional<int64_t> parse_signed(std::string_view token) noexcept
{
	const bool negative = !token.empty() && token[0] == '-';
	const std::string_view digits = negative ? token.substr(1) : token;
	if (digits.empty() || (digits.size() > 1 && digits[0] == '0') || digits[0] < '0' || digits[0] > '9' ||
	    (negative && digits == "0"))
		return std::nullopt;
	int64_t v = 0;
	const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
	if (ec != std::errc() || end != token.data() + token.size())
		return std::nullopt;
	return v;
}

// A finite number from 0 to 100, written without a sign.
std::optional<double> parse_percent(std::string_view token) noexcept
{
	if (token.empty() || token[0] < '0' || token[0] > '9')
		return std::nullopt; // also refuses "-", "+", "nan", "inf"
	double v = 0;
	const auto [end, ec] =
	        std::from_chars(token.data(), token.data() + token.size(), v, std::chars_format::general);
	if (ec != std::errc() || end != token.data() + token.size() || !std::isfinite(v) || v < 0 || v > 100)
		return std::nullopt;
	return v;
}

void append_number(std::string &out, double v)
{
	if (v == 0) {
		out += '0'; // also for -0, which the parser would refuse
		return;
	}
	std::array<char, 64> buf{};
	const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
	if (ec == std::errc())
		out.append(buf.data(), end);
	else
		out += "nan"; // cannot happen with 64 chars; refused by the parser anyway
}

template <class Int>
void append_number(std::string &out, Int v)
{
	out += std::to_string(v);
}

// Reads a text one line at a time, each line split at single spaces into
// fields of printable ASCII. Refuses whatever the encoders never write.
class LineReader
{
public:
	explicit LineReader(std::string_view text) : rest_(text) {}

	bool at_end() const noexcept { return rest_.empty(); }
	int line() const noexcept { return line_; }
	const std::vector<std::string_view> &fields() const noexcept { return fields_; }
	const std::string &error() const noexcept { return error_; }

	// Reads the next line into fields(); false (and error() says why) when there
	// is none or it is malformed.
	bool next()
	{
		++line_;
		fields_.clear();
		if (rest_.empty())
			return fail("missing \"end\" (truncated?)");
		const size_t newline = rest_.find('\n');
		if (newline == std::string_view::npos)
			return fail("no newline at the end (truncated?)");
		const std::string_view text = rest_.substr(0, newline);
		rest_.remove_prefix(newline + 1);
		if (text.size() > max_line_chars)
			return fail("longer than " + std::to_string(max_line_chars) + " characters");
		if (text.empty())
			return fail("empty line");
		size_t start = 0;
		for (size_t i = 0; i <= text.size(); ++i) {
			if (i < text.size() && text[i] != ' ') {
				const auto c = static_cast<unsigned char>(text[i]);
				if (c < 0x21 || c > 0x7e)
					return fail("character " + quoted(text.substr(i, 1)) +
					            " is not allowed");
				continue;
			}
			if (i == start)
				return fail("empty field (a space at the start or end, or two in a row)");
			if (fields_.size() == max_fields)
				return fail("more than " + std::to_string(max_fields) + " fields");
			fields_.push_back(text.substr(start, i - start));
			start = i + 1;
		}
		return true;
	}

	// True if the line is `keys[0] value keys[1] value ...`.
	bool shaped(std::initializer_list<std::string_view> keys) const noexcept
	{
		if (fields_.size() != 2 * keys.size())
			return false;
		size_t i = 0;
		for (std::string_view key : keys) {
			if (fields_[i] != key)
				return false;
			i += 2;
		}
		return true;
	}
	std::string_view value(size_t n) const noexcept { return fields_[2 * n + 1]; }

	bool fail(const std::string &what)
	{
		error_ = "line " + std::to_string(line_) + ": " + what;
		return false;
	}
	bool expected(std::string_view shape)
	{
		const std::string_view got = fields_.empty() ? std::string_view() : fields_[0];
		return fail("expected \"" + std::string(shape) + "\", got a line starting with " +
		            quoted(got));
	}

private:
	std::string_view rest_;
	int line_ = 0;
	std::vector<std::string_view> fields_;
	std::string error_;
};

// The first line: "<magic> <version>".
bool read_version(LineReader &in, std::string_view magic)
{
	if (!in.next())
		return false;
	const auto &f = in.fields();
	if (f.size() != 2 || f[0] != magic)
		return in.fail("not a " + std::string(magic) + " message (expected \"" + std::string(magic) +
		               " " + std::to_string(report_version) + "\")");
	if (f[1] != std::to_string(report_version))
		return in.fail("version " + quoted(f[1]) + " is not supported (this side speaks " +
		               std::to_string(report_version) + ")");
	return true;
}

bool read_node(LineReader &in, std::string &node)
{
	if (!in.next())
		return false;
	if (!in.shaped({"node"}))
		return in.expected("node <name>");
	if (!valid_node_name(in.value(0)))
		return in.fail("node name " + quoted(in.value(0)) + " is not 1.." +
		               std::to_string(max_node_name_chars) + " characters of [A-Za-z0-9._-]");
	node = std::string(in.value(0));
	return true;
}

bool read_unsigned(LineReader &in, std::string_view key, uint64_t &out)
{
	if (!in.next())
		return false;
	if (!in.shaped({key}))
		return in.expected(std::string(key) + " <number>");
	const auto v = parse_unsigned(in.value(0));
	if (!v)
		return in.fail(std::string(key) + " " + quoted(in.value(0)) + " is not a number (0.." +
		               std::to_string(std::numeric_limits<uint64_t>::max()) + ")");
	out = *v;
	return true;
}

bool read_signed(LineReader &in, std::string_view key, int64_t &out)
{
	if (!in.next())
		return false;
	if (!in.shaped({key}))
		return in.expected(std::string(key) + " <number>");
	const auto v = parse_signed(in.value(0));
	if (!v)
		return in.fail(std::string(key) + " " + quoted(in.value(0)) +
		               " is not a signed 64-bit number");
	out = *v;
	return true;
}

// After the "end" line there must be nothing.
bool read_end(LineReader &in)
{
	if (in.at_end())
		return true;
	in.next(); // only to count the line
	return in.fail("text after \"end\"");
}

bool read_device(LineReader &in, Report &r, std::bitset<max_report_devices> &seen)
{
	if (!in.shaped({"device", "busy", "used", "lendable", "per_job"}))
		return in.expected("device <index> busy <percent> used <MiB> lendable <MiB> per_job <0|1>");
	if (r.devices.size() == max_report_devices)
		return in.fail("more than " + std::to_string(max_report_devices) + " devices");
	DeviceReport d;
	const auto index = parse_unsigned(in.value(0));
	if (!index || *index >= max_report_devices)
		return in.fail("device index " + quoted(in.value(0)) + " is not 0.." +
		               std::to_string(max_report_devices - 1));
	if (seen.test(*index))
		return in.fail("device " + std::to_string(*index) + " appears twice");
	seen.set(*index);
	d.device = static_cast<int>(*index);
	const auto busy = parse_percent(in.value(1));
	if (!busy)
		return in.fail("busy " + quoted(in.value(1)) + " is not a percentage (0..100)");
	d.busy_percent = *busy;
	const auto used = parse_unsigned(in.value(2));
	if (!used)
		return in.fail("used " + quoted(in.value(2)) + " is not a number of MiB");
	d.memory_used_mib = *used;
	const auto lendable = parse_unsigned(in.value(3));
	if (!lendable)
		return in.fail("lendable " + quoted(in.value(3)) + " is not a number of MiB");
	d.lendable_memory_mib = *lendable;
	if (in.value(4) != "0" && in.value(4) != "1")
		return in.fail("per_job " + quoted(in.value(4)) + " is not 0 or 1");
	d.per_job = in.value(4) == "1";
	r.devices.push_back(std::move(d));
	return true;
}

bool read_job(LineReader &in, Report &r, std::set<uint32_t> &jobs_seen)
{
	if (!in.shaped({"job", "busy", "memory"}))
		return in.expected("job <id> busy <percent> memory <MiB>");
	if (r.devices.empty())
		return in.fail("job line before any device line");
	DeviceReport &d = r.devices.back();
	if (!d.per_job)
		return in.fail("job line for device " + std::to_string(d.device) +
		               ", which does not report per job (per_job 0)");
	if (d.jobs.size() == max_jobs_per_device)
		return in.fail("more than " + std::to_string(max_jobs_per_device) + " jobs on device " +
		               std::to_string(d.device));
	const auto id = parse_unsigned(in.value(0));
	if (!id || *id == 0 || *id > std::numeric_limits<uint32_t>::max())
		return in.fail("job id " + quoted(in.value(0)) + " is not a Slurm job id (1..4294967295)");
	const auto job = static_cast<uint32_t>(*id);
	if (!jobs_seen.insert(job).second)
		return in.fail("job " + std::to_string(job) + " appears twice on device " +
		               std::to_string(d.device));
	const auto busy = parse_percent(in.value(1));
	if (!busy)
		return in.fail("busy " + quoted(in.value(1)) + " is not a percentage (0..100)");
	const auto memory = parse_unsigned(in.value(2));
	if (!memory)
		return in.fail("memory " + quoted(in.value(2)) + " is not a number of MiB");
	d.jobs.push_back(JobReport{job, *busy, *memory});
	return true;
}

std::string too_long(std::string_view what, size_t size)
{
	return std::string(what) + " of " + std::to_string(size) + " bytes is over the " +
	       std::to_string(max_message_bytes) + "-byte limit";
}

} // namespace

bool valid_node_name(std::string_view name) noexcept
{
	if (name.empty() || name.size() > max_node_name_chars)
		return false;
	return std::all_of(name.begin(), name.end(), [](char c) {
		return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		       c == '.' || c == '_' || c == '-';
	});
}

std::string encode_report(const Report &r)
{
	std::string out;
	out.reserve(128 + r.devices.size() * 80);
	out += report_magic;
	out += ' ';
	append_number(out, report_version);
	out += "\nnode ";
	out += r.node;
	out += "\nepoch ";
	append_number(out, r.epoch);
	out += "\nseq ";
	append_number(out, r.seq);
	out += "\nsent_at ";
	append_number(out, r.sent_at);
	out += '\n';
	for (const DeviceReport &d : r.devices) {
		out += "device ";
		append_number(out, d.device);
		out += " busy ";
		append_number(out, d.busy_percent);
		out += " used ";
		append_number(out, d.memory_used_mib);
		out += " lendable ";
		append_number(out, d.lendable_memory_mib);
		out += d.per_job ? " per_job 1\n" : " per_job 0\n";
		for (const JobReport &j : d.jobs) {
			out += "job ";
			append_number(out, j.job);
			out += " busy ";
			append_number(out, j.busy_percent);
			out += " memory ";
			append_number(out, j.memory_mib);
			out += '\n';
		}
	}
	out += "end\n";
	return out;
}

Result<Report> parse_report(std::string_view text)
{
	if (text.size() > max_message_bytes)
		return Result<Report>::failure(too_long("report", text.size()));
	LineReader in(text);
	Report r;
	if (!read_version(in, report_magic) || !read_node(in, r.node) ||
	    !read_unsigned(in, "epoch", r.epoch) || !read_unsigned(in, "seq", r.seq) ||
	    !read_signed(in, "sent_at", r.sent_at))
		return Result<Report>::failure(in.error());

	std::bitset<max_report_devices> devices_seen;
	std::set<uint32_t> jobs_seen; // on the current device
	for (;;) {
		if (!in.next())
			return Result<Report>::failure(in.error());
		const std::string_view record = in.fields()[0];
		bool ok = false;
		if (record == "end" && in.fields().size() == 1)
			break;
		if (record == "device") {
			jobs_seen.clear();
			ok = read_device(in, r, devices_seen);
		} else if (record == "job") {
			ok = read_job(in, r, jobs_seen);
		} else {
			ok = in.fail("unknown record " + quoted(record) + " (expected device, job or end)");
		}
		if (!ok)
			return Result<Report>::failure(in.error());
	}
	if (!read_end(in))
		return Result<Report>::failure(in.error());
	return r;
}

std::string encode_orders(const Orders &o)
{
	std::string out;
	out.reserve(64 + o.stops.size() * 32);
	out += orders_magic;
	out += ' ';
	append_number(out, report_version);
	out += "\nnode ";
	out += o.node;
	out += "\nseq ";
	append_number(out, o.seq);
	out += '\n';
	for (const StopOrder &s : o.stops) {
		out += "stop ";
		append_number(out, s.job);
		out += " in ";
		append_number(out, s.in_seconds);
		out += '\n';
	}
	out += "end\n";
	return out;
}

Result<Orders> parse_orders(std::string_view text)
{
	if (text.size() > max_message_bytes)
		return Result<Orders>::failure(too_long("orders", text.size()));
	LineReader in(text);
	Orders o;
	if (!read_version(in, orders_magic) || !read_node(in, o.node) || !read_unsigned(in, "seq", o.seq))
		return Result<Orders>::failure(in.error());
	std::set<uint32_t> jobs_seen;
	for (;;) {
		if (!in.next())
			return Result<Orders>::failure(in.error());
		if (in.fields().size() == 1 && in.fields()[0] == "end")
			break;
		if (!in.shaped({"stop", "in"})) {
			in.expected("stop <job> in <seconds>\" or \"end");
			return Result<Orders>::failure(in.error());
		}
		if (o.stops.size() == max_stop_orders) {
			in.fail("more than " + std::to_string(max_stop_orders) + " stop orders");
			return Result<Orders>::failure(in.error());
		}
		const auto id = parse_unsigned(in.value(0));
		if (!id || *id == 0 || *id > std::numeric_limits<uint32_t>::max()) {
			in.fail("job id " + quoted(in.value(0)) + " is not a Slurm job id (1..4294967295)");
			return Result<Orders>::failure(in.error());
		}
		const auto job = static_cast<uint32_t>(*id);
		if (!jobs_seen.insert(job).second) {
			in.fail("job " + std::to_string(job) + " has two stop orders");
			return Result<Orders>::failure(in.error());
		}
		const auto delay = parse_unsigned(in.value(1));
		if (!delay || *delay > static_cast<uint64_t>(max_stop_delay_seconds)) {
			in.fail("delay " + quoted(in.value(1)) +
			        " is not a number of seconds (0..2147483647)");
			return Result<Orders>::failure(in.error());
		}
		o.stops.push_back(StopOrder{job, static_cast<int64_t>(*delay)});
	}
	if (!read_end(in))
		return Result<Orders>::failure(in.error());
	return o;
}

std::string_view drop_reason_name(DropReason r) noexcept
{
	switch (r) {
	case DropReason::BadCredential:
		return "bad-credential";
	case DropReason::Replayed:
		return "replayed";
	case DropReason::WrongUid:
		return "wrong-uid";
	case DropReason::Malformed:
		return "malformed";
	case DropReason::Oversized:
		return "oversized";
	case DropReason::UnknownNode:
		return "unknown-node";
	case DropReason::WrongAddress:
		return "wrong-address";
	case DropReason::Stale:
		return "stale";
	case DropReason::Flood:
		return "flood";
	}
	return "unknown";
}

ReportIntake::ReportIntake(IntakeRules rules, Opener opener)
    : rules_(std::move(rules)), opener_(std::move(opener))
{
}

uint64_t ReportIntake::dropped(DropReason r) const noexcept
{
	const auto i = static_cast<size_t>(r);
	return i < drop_reason_count ? dropped_[i].load(std::memory_order_relaxed) : 0;
}

uint64_t ReportIntake::accepted() const noexcept
{
	return accepted_.load(std::memory_order_relaxed);
}

std::optional<Report> ReportIntake::take(std::string_view frame, const std::string &peer, Instant now)
{
	// The opener and the rules' callbacks are the caller's code: whatever they
	// throw must not leave the listener thread.
	try {
		return take_checked(frame, peer, now);
	} catch (const std::exception &e) {
		log_error("reclaim: report from " + peer + " not handled: " + e.what());
	} catch (...) {
		log_error("reclaim: report from " + peer + " not handled: unknown exception");
	}
	return std::nullopt;
}

std::optional<Report> ReportIntake::take_checked(std::string_view frame, const std::string &peer, Instant now)
{
	if (frame.size() > max_message_bytes)
		return drop(DropReason::Oversized, peer, "?", too_long("frame", frame.size()), now);

	Result<Sealed> sealed = opener_ ? opener_(frame) : Result<Sealed>::failure("no credential opener");
	if (!sealed)
		return drop(DropReason::BadCredential, peer, "?", sealed.error(), now);
	const auto &uids = rules_.allowed_uids;
	if (std::find(uids.begin(), uids.end(), sealed->uid) == uids.end())
		return drop(DropReason::WrongUid, peer, "?",
		            "credential of uid " + std::to_string(sealed->uid) + ", which may not report",
		            now);

	Result<Report> report = parse_report(sealed->payload);
	if (!report)
		return drop(DropReason::Malformed, peer, "?", report.error(), now);
	const std::string &node = report->node;
	if (!rules_.node_known || !rules_.node_known(node))
		return drop(DropReason::UnknownNode, peer, node, "not a node of this cluster", now);
	if (!rules_.node_matches_peer || !rules_.node_matches_peer(node, peer))
		return drop(DropReason::WrongAddress, peer, node, "the node does not have address " + peer,
		            now);

	// Saturating bounds: neither a far-off sent_at nor a huge max_age may overflow.
	using Limits = std::numeric_limits<int64_t>;
	const int64_t now_s = now.time_since_epoch().count();
	const int64_t age = std::max<int64_t>(rules_.max_age.count(), 0);
	const int64_t oldest = now_s < Limits::min() + age ? Limits::min() : now_s - age;
	const int64_t newest = now_s > Limits::max() - age ? Limits::max() : now_s + age;
	if (report->sent_at < oldest || report->sent_at > newest)
		return drop(DropReason::Stale, peer, node,
		            "sent at " + std::to_string(report->sent_at) + ", now is " +
		                    std::to_string(now_s) + " (max_age " + std::to_string(age) + " s)",
		            now);

	std::optional<DropReason> refused;
	std::string why;
	{
		std::lock_guard<std::mutex> lock(nodes_mutex_);
		const auto known = nodes_.find(node);
		if (sealed->replayed) {
			refused = DropReason::Replayed;
			why = "munge says the credential was replayed";
		} else if (known != nodes_.end() &&
		           std::pair(report->epoch, report->seq) <=
		                   std::pair(known->second.epoch, known->second.seq)) {
			refused = DropReason::Replayed;
			why = "epoch " + std::to_string(report->epoch) + " seq " +
			      std::to_string(report->seq) + " is not newer than the last accepted (epoch " +
			      std::to_string(known->second.epoch) + " seq " +
			      std::to_string(known->second.seq) + ")";
		} else if (known != nodes_.end() && now >= known->second.window_start &&
		           now - known->second.window_start < rules_.min_interval &&
		           known->second.in_window >= flood_burst) {
			// Whole seconds and network jitter put two honest reports in
			// one window now and then; a flood puts many. A clock stepped
			// back (now < window_start) is not the node's fault.
			refused = DropReason::Flood;
			why = std::to_string(known->second.in_window + 1) + " reports within " +
			      std::to_string(rules_.min_interval.count()) + " s (at most " +
			      std::to_string(flood_burst) + ")";
		} else {
			if (known == nodes_.end() && nodes_.size() >= std::max<size_t>(rules_.max_nodes, 1)) {
				// More nodes than the bound: forget the one heard from least recently.
				// Its replay protection falls back to munge's cache and max_age.
				const auto oldest_node = std::min_element(
				        nodes_.begin(), nodes_.end(), [](const auto &a, const auto &b) {
					        return a.second.last_accepted < b.second.last_accepted;
				        });
				nodes_.erase(oldest_node);
			}
			NodeState &state = nodes_[node];
			state.epoch = report->epoch;
			state.seq = report->seq;
			state.last_accepted = now;
			if (now < state.window_start || now - state.window_start >= rules_.min_interval) {
				state.window_start = now;
				state.in_window = 0;
			}
			++state.in_window;
		}
	}
	if (refused)
		return drop(*refused, peer, node, why, now);
	accepted_.fetch_add(1, std::memory_order_relaxed);
	return std::move(*report);
}

ReportIntake::PeerLog &ReportIntake::peer_log(const std::string &peer, Instant now)
{
	if (const auto found = peers_.find(peer); found != peers_.end())
		return found->second;
	if (peers_.size() >= max_log_peers) {
		std::erase_if(peers_, [&](const auto &entry) {
			return now - entry.second.last_drop > 2 * log_window;
		});
		if (peers_.size() >= max_log_peers)
			return overflow_peers_; // many addresses at once: one budget for all new ones
	}
	PeerLog &fresh = peers_[peer];
	fresh.window_start = now;
	return fresh;
}

std::nullopt_t ReportIntake::drop(DropReason why, const std::string &peer, std::string_view node,
                                  const std::string &detail, Instant now)
{
	dropped_[static_cast<size_t>(why)].fetch_add(1, std::memory_order_relaxed);
	const auto line = [&]() {
		return "reclaim: dropped report from " + peer + " (" + std::string(node) +
		       "): " + std::string(drop_reason_name(why)) + ": " + detail;
	};
	std::lock_guard<std::mutex> lock(log_mutex_);
	PeerLog &st = peer_log(peer, now);
	st.last_drop = now;
	if (!st.throttled) {
		if (now - st.window_start >= log_window) {
			st.window_start = now;
			st.lines_in_window = 0;
		}
		if (st.lines_in_window < log_burst) {
			++st.lines_in_window;
			st.last_line = now;
			log_error(line());
			return std::nullopt;
		}
		st.throttled = true;
		st.suppressed = 1;
		return std::nullopt;
	}
	if (now - st.last_line < log_window) {
		++st.suppressed;
		return std::nullopt;
	}
	std::string text = line();
	if (st.suppressed > 0)
		text += " (" + std::to_string(st.suppressed) +
		        " more drops from this peer not logged since " +
		        std::to_string((now - st.last_line).count()) + " s)";
	log_error(text);
	// A peer that calmed down below the burst rate is logged line by line again.
	if (st.suppressed < static_cast<uint64_t>(log_burst)) {
		st.throttled = false;
		st.window_start = now;
		st.lines_in_window = 1;
	}
	st.suppressed = 0;
	st.last_line = now;
	return std::nullopt;
}

namespace
{
constexpr std::string_view admin_magic = "flexslurm-admin 1\n";
} // namespace

std::string encode_admin(const AdminRequest &r)
{
	std::string out(admin_magic);
	if (r.kind == AdminRequest::Kind::Status)
		out += "status\n";
	else
		out += "reclaim " + std::to_string(r.job) + "\n";
	return out + "end\n";
}

std::optional<Result<AdminRequest>> parse_admin(std::string_view text)
{
	if (text.substr(0, admin_magic.size()) != admin_magic)
		return std::nullopt;
	text.remove_prefix(admin_magic.size());
	AdminRequest r;
	if (text == "status\nend\n")
		return Result<AdminRequest>(r);
	constexpr std::string_view reclaim = "reclaim ";
	const size_t eol = text.find('\n');
	if (text.substr(0, reclaim.size()) == reclaim && eol != std::string_view::npos &&
	    text.substr(eol + 1) == "end\n") {
		const std::string_view number = text.substr(reclaim.size(), eol - reclaim.size());
		uint64_t job = 0;
		bool ok = !number.empty() && number.size() <= 10;
		for (char ch : number) {
			ok = ok && ch >= '0' && ch <= '9';
			job = job * 10 + static_cast<uint64_t>(ch - '0');
		}
		if (ok && job > 0 && job <= UINT32_MAX) {
			r.kind = AdminRequest::Kind::Reclaim;
			r.job = static_cast<uint32_t>(job);
			return Result<AdminRequest>(r);
		}
	}
	return Result<AdminRequest>::failure(
	        "malformed admin request (expected \"status\" or \"reclaim <job id>\")");
}

} // namespace flexslurm
