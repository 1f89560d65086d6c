// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/report.hpp"

#include "core/util/text.hpp"

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

// The wire's numbers are canonical decimals: digits only, no leading zero,
// no '+', no "-0".
std::optional<uint64_t> parse_unsigned(std::string_view token) noexcept
{
	uint64_t v = 0;
	if (!parse_number(token, v, uint64_t{0}, std::numeric_limits<uint64_t>::max(), Digits::Canonical))
		return std::nullopt;
	return v;
}

std::optional<int64_t> parse_signed(std::string_view token) noexcept
{
	int64_t v = 0;
	if (!parse_number(token, v, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
	                  Digits::Canonical))
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

// The rest of a record line: " <key> <value>" for each pair, then the newline.
inline void append_fields(std::string &out)
{
	out += '\n';
}
template <class Value, class... Rest>
void append_fields(std::string &out, std::string_view key, const Value &value, const Rest &...rest)
{
	out += ' ';
	out += key;
	out += ' ';
	append_number(out, value);
	append_fields(out, rest...);
}

// One record line: "<record> <value> <key> <value> ...\n".
template <class Value, class... Rest>
void append_record(std::string &out, std::string_view record, const Value &value, const Rest &...rest)
{
	out += record;
	out += ' ';
	append_number(out, value);
	append_fields(out, rest...);
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

// The first line: "<magic> <version>", a version from `oldest` to `newest`.
bool read_version(LineReader &in, std::string_view magic, int oldest, int newest, int &version)
{
	if (!in.next())
		return false;
	const auto &f = in.fields();
	if (f.size() != 2 || f[0] != magic)
		return in.fail("not a " + std::string(magic) + " message (expected \"" + std::string(magic) +
		               " " + std::to_string(newest) + "\")");
	if (!parse_number(f[1], version, oldest, newest, Digits::Canonical)) {
		const std::string speaks = oldest == newest
		                                   ? std::to_string(newest)
		                                   : std::to_string(oldest) + " to " + std::to_string(newest);
		return in.fail("version " + quoted(f[1]) + " is not supported (this side speaks " + speaks +
		               ")");
	}
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

// A "<key> <number>" line; `parse` reads the number, `what` says what it must be.
template <class Number, class Parse>
bool read_number(LineReader &in, std::string_view key, Number &out, Parse &&parse, const std::string &what)
{
	if (!in.next())
		return false;
	if (!in.shaped({key}))
		return in.expected(std::string(key) + " <number>");
	const auto v = parse(in.value(0));
	if (!v)
		return in.fail(std::string(key) + " " + quoted(in.value(0)) + " is not " + what);
	out = *v;
	return true;
}

bool read_unsigned(LineReader &in, std::string_view key, uint64_t &out)
{
	return read_number(in, key, out, parse_unsigned,
	                   "a number (0.." + std::to_string(std::numeric_limits<uint64_t>::max()) + ")");
}

bool read_signed(LineReader &in, std::string_view key, int64_t &out)
{
	return read_number(in, key, out, parse_signed, "a signed 64-bit number");
}

// After the "end" line there must be nothing.
bool read_end(LineReader &in)
{
	if (in.at_end())
		return true;
	in.next(); // only to count the line
	return in.fail("text after \"end\"");
}

// The first field's value as a Slurm job id.
bool read_job_id(LineReader &in, uint32_t &job)
{
	const auto id = parse_unsigned(in.value(0));
	if (!id || *id == 0 || *id > std::numeric_limits<uint32_t>::max())
		return in.fail("job id " + quoted(in.value(0)) + " is not a Slurm job id (1..4294967295)");
	job = static_cast<uint32_t>(*id);
	return true;
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
	uint32_t job = 0;
	if (!read_job_id(in, job))
		return false;
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

// "ident <device> uuid <uuid|-> pci <bus id|->" (version 2)
bool read_identity(LineReader &in, Report &r, std::bitset<max_report_devices> &seen)
{
	if (!in.shaped({"ident", "uuid", "pci"}))
		return in.expected("ident <device> uuid <uuid|-> pci <bus id|->");
	const auto index = parse_unsigned(in.value(0));
	if (!index || *index >= max_report_devices)
		return in.fail("ident device " + quoted(in.value(0)) + " is not 0.." +
		               std::to_string(max_report_devices - 1));
	if (seen.test(*index))
		return in.fail("ident of device " + std::to_string(*index) + " appears twice");
	seen.set(*index);
	const std::string_view uuid = in.value(1), pci = in.value(2);
	if (uuid != "-" && !valid_device_uuid(uuid))
		return in.fail("uuid " + quoted(uuid, 48) +
		               " is not GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx or -");
	if (pci != "-" && !valid_pci_bus_id(pci))
		return in.fail("pci " + quoted(pci) + " is not a PCI bus id (dddd:bb:dd.f) or -");
	r.identities.push_back({static_cast<int>(*index), uuid == "-" ? "" : std::string(uuid),
	                        pci == "-" ? "" : std::string(pci)});
	return true;
}

// "slice <unit> owner <job|0> borrower <job|0>"
bool read_slice(LineReader &in, Orders &o, std::set<int> &units_seen)
{
	if (!in.shaped({"slice", "owner", "borrower"}))
		return in.expected("slice <unit> owner <job> borrower <job>\" or \"end");
	if (o.slices.size() == max_slice_holders)
		return in.fail("more than " + std::to_string(max_slice_holders) + " slice lines");
	const auto unit = parse_unsigned(in.value(0));
	if (!unit || *unit > static_cast<uint64_t>(max_slice_unit))
		return in.fail("slice " + quoted(in.value(0)) + " is not a slice index (0.." +
		               std::to_string(max_slice_unit) + ")");
	if (!units_seen.insert(static_cast<int>(*unit)).second)
		return in.fail("slice " + std::to_string(*unit) + " appears twice");
	uint32_t jobs[2] = {0, 0};
	for (size_t i = 0; i < 2; ++i) {
		const auto id = parse_unsigned(in.value(i + 1));
		if (!id || *id > std::numeric_limits<uint32_t>::max())
			return in.fail("job id " + quoted(in.value(i + 1)) +
			               " is not a Slurm job id or 0 (0..4294967295)");
		jobs[i] = static_cast<uint32_t>(*id);
	}
	o.slices.push_back(SliceHolders{static_cast<int>(*unit), jobs[0], jobs[1]});
	return true;
}

bool read_stop(LineReader &in, Orders &o, std::set<uint32_t> &jobs_seen)
{
	if (!in.shaped({"stop", "in"}))
		return in.expected("stop <job> in <seconds>\" or \"end");
	if (o.stops.size() == max_stop_orders)
		return in.fail("more than " + std::to_string(max_stop_orders) + " stop orders");
	uint32_t job = 0;
	if (!read_job_id(in, job))
		return false;
	if (!jobs_seen.insert(job).second)
		return in.fail("job " + std::to_string(job) + " has two stop orders");
	const auto delay = parse_unsigned(in.value(1));
	if (!delay || *delay > static_cast<uint64_t>(max_stop_delay_seconds))
		return in.fail("delay " + quoted(in.value(1)) +
		               " is not a number of seconds (0..2147483647)");
	o.stops.push_back(StopOrder{job, static_cast<int64_t>(*delay)});
	return true;
}

// Both messages: at most max_message_bytes, the header lines, records up to
// an "end" line, nothing after it. `header(in, message)` reads the header,
// `record(in, message)` each line before "end".
template <class Message, class Header, class Record>
Result<Message> parse_message(std::string_view text, std::string_view what, Header &&header, Record &&record)
{
	if (text.size() > max_message_bytes)
		return Result<Message>::failure(std::string(what) + " of " + std::to_string(text.size()) +
		                                " bytes is over the " + std::to_string(max_message_bytes) +
		                                "-byte limit");
	LineReader in(text);
	Message m;
	if (!header(in, m))
		return Result<Message>::failure(in.error());
	for (;;) {
		if (!in.next())
			return Result<Message>::failure(in.error());
		if (in.fields().size() == 1 && in.fields()[0] == "end")
			break;
		if (!record(in, m))
			return Result<Message>::failure(in.error());
	}
	if (!read_end(in))
		return Result<Message>::failure(in.error());
	return m;
}

// "<magic> <version>\nnode <node>\n", the start of both messages.
void append_header(std::string &out, std::string_view magic, int version, const std::string &node)
{
	out += magic;
	out += ' ';
	append_number(out, version);
	out += "\nnode ";
	out += node;
	out += '\n';
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
	append_header(out, report_magic, r.identities.empty() ? report_version : report_version_identities,
	              r.node);
	append_record(out, "epoch", r.epoch);
	append_record(out, "seq", r.seq);
	append_record(out, "sent_at", r.sent_at);
	for (const DeviceReport &d : r.devices) {
		append_record(out, "device", d.device, "busy", d.busy_percent, "used", d.memory_used_mib,
		              "lendable", d.lendable_memory_mib, "per_job", d.per_job ? 1 : 0);
		for (const JobReport &j : d.jobs)
			append_record(out, "job", j.job, "busy", j.busy_percent, "memory", j.memory_mib);
	}
	for (const DeviceIdentity &d : r.identities) {
		out += "ident " + std::to_string(d.device) + " uuid " + (d.uuid.empty() ? "-" : d.uuid) +
		       " pci " + (d.pci_bus_id.empty() ? "-" : d.pci_bus_id) + "\n";
	}
	out += "end\n";
	return out;
}

Result<Report> parse_report(std::string_view text)
{
	std::bitset<max_report_devices> devices_seen, identities_seen;
	std::set<uint32_t> jobs_seen; // on the current device
	int version = 0;
	return parse_message<Report>(
	        text, "report",
	        [&](LineReader &in, Report &r) {
		        return read_version(in, report_magic, report_version, report_version_identities,
		                            version) &&
		               read_node(in, r.node) && read_unsigned(in, "epoch", r.epoch) &&
		               read_unsigned(in, "seq", r.seq) && read_signed(in, "sent_at", r.sent_at);
	        },
	        [&](LineReader &in, Report &r) {
		        const std::string_view record = in.fields()[0];
		        if (record == "device") {
			        jobs_seen.clear();
			        return read_device(in, r, devices_seen);
		        }
		        if (record == "job")
			        return read_job(in, r, jobs_seen);
		        if (record == "ident" && version >= report_version_identities)
			        return read_identity(in, r, identities_seen);
		        return in.fail("unknown record " + quoted(record) + " (expected device, job" +
		                       (version >= report_version_identities ? ", ident" : "") + " or end)");
	        });
}

std::string encode_orders(const Orders &o)
{
	std::string out;
	out.reserve(64 + o.stops.size() * 32);
	append_header(out, orders_magic, orders_version, o.node);
	append_record(out, "seq", o.seq);
	for (const StopOrder &st : o.stops)
		append_record(out, "stop", st.job, "in", st.in_seconds);
	for (const SliceHolders &h : o.slices)
		append_record(out, "slice", h.unit, "owner", h.owner, "borrower", h.borrower);
	out += "end\n";
	return out;
}

Result<Orders> parse_orders(std::string_view text)
{
	std::set<uint32_t> jobs_seen;
	std::set<int> units_seen;
	return parse_message<Orders>(
	        text, "orders",
	        [](LineReader &in, Orders &o) {
		        int version = 0;
		        return read_version(in, orders_magic, orders_version, orders_version, version) &&
		               read_node(in, o.node) && read_unsigned(in, "seq", o.seq);
	        },
	        [&](LineReader &in, Orders &o) {
		        // The stops first, then the slices.
		        if ((in.fields().empty() || in.fields()[0] != "slice") && o.slices.empty())
			        return read_stop(in, o, jobs_seen);
		        return read_slice(in, o, units_seen);
	        });
}

} // namespace flexslurm
