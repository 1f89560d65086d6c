// Idle reclaim's wire: the report and order texts (round trips, and every
// kind of malformed input refused with its line), the intake's checks in
// their order with a fake Munge, its log throttling, and the TCP framing
// over 127.0.0.1 with hostile clients (oversized, partial, silent).
#include "suites.hpp"

#include "core/io/channel.hpp"
#include "core/util/log.hpp"
#include "core/model/report.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace flexslurm;
using namespace std::chrono_literals;

namespace
{

Instant at(long s)
{
	return Instant(Seconds(s));
}

bool contains(const std::string &text, const std::string &part)
{
	return text.find(part) != std::string::npos;
}

// --- The texts ----------------------------------------------------------------

Report sample_report()
{
	Report r;
	r.node = "gpu-node_01.a";
	r.epoch = 1700000000;
	r.seq = 42;
	r.sent_at = 1700000123;
	DeviceReport d0;
	d0.device = 0;
	d0.busy_percent = 12.5;
	d0.memory_used_mib = 40960;
	d0.lendable_memory_mib = 20480;
	d0.per_job = true;
	d0.jobs = {{101, 0.1, 512}, {4294967295u, 100, 0}};
	DeviceReport d3;
	d3.device = 255;
	d3.busy_percent = 0;
	d3.memory_used_mib = 18446744073709551615ull;
	d3.lendable_memory_mib = 0;
	r.devices = {d0, d3};
	return r;
}

const char *sample_text = "flexslurm-report 1\n"
                          "node gpu-node_01.a\n"
                          "epoch 1700000000\n"
                          "seq 42\n"
                          "sent_at 1700000123\n"
                          "device 0 busy 12.5 used 40960 lendable 20480 per_job 1\n"
                          "job 101 busy 0.1 memory 512\n"
                          "job 4294967295 busy 100 memory 0\n"
                          "device 255 busy 0 used 18446744073709551615 lendable 0 per_job 0\n"
                          "end\n";

std::string replaced(std::string text, const std::string &from, const std::string &to)
{
	const size_t at_pos = text.find(from);
	ck_assert_msg(at_pos != std::string::npos, "no \"%s\" in the sample", from.c_str());
	return text.replace(at_pos, from.size(), to);
}

// The header of a report plus `body`.
std::string report_with(const std::string &body)
{
	return "flexslurm-report 1\nnode n1\nepoch 1\nseq 1\nsent_at 100\n" + body + "end\n";
}

} // namespace

START_TEST(report_round_trip)
{
	const Report r = sample_report();
	ck_assert_str(encode_report(r), sample_text);
	auto back = parse_report(encode_report(r));
	ck_assert_msg(back, "%s", back.error().c_str());
	ck_assert_str(back->node, r.node);
	ck_assert_uint_eq(back->epoch, r.epoch);
	ck_assert_uint_eq(back->seq, r.seq);
	ck_assert_int_eq(back->sent_at, r.sent_at);
	ck_assert_uint_eq(back->devices.size(), 2);
	for (size_t i = 0; i < 2; ++i) {
		const DeviceReport &a = r.devices[i], &b = back->devices[i];
		ck_assert_int_eq(a.device, b.device);
		ck_assert(a.busy_percent == b.busy_percent);
		ck_assert_uint_eq(a.memory_used_mib, b.memory_used_mib);
		ck_assert_uint_eq(a.lendable_memory_mib, b.lendable_memory_mib);
		ck_assert(a.per_job == b.per_job);
		ck_assert_uint_eq(a.jobs.size(), b.jobs.size());
		for (size_t j = 0; j < a.jobs.size(); ++j) {
			ck_assert_uint_eq(a.jobs[j].job, b.jobs[j].job);
			ck_assert(a.jobs[j].busy_percent == b.jobs[j].busy_percent);
			ck_assert_uint_eq(a.jobs[j].memory_mib, b.jobs[j].memory_mib);
		}
	}
	// Shortest exact text for any double; -0 is written as 0.
	Report odd;
	odd.node = "n";
	odd.sent_at = -5;
	DeviceReport d;
	d.busy_percent = 100.0 / 3;
	odd.devices.push_back(d);
	d.device = 1;
	d.busy_percent = -0.0;
	odd.devices.push_back(d);
	auto odd_back = parse_report(encode_report(odd));
	ck_assert_msg(odd_back, "%s", odd_back.error().c_str());
	ck_assert(odd_back->devices[0].busy_percent == 100.0 / 3);
	ck_assert(odd_back->devices[1].busy_percent == 0 && !std::signbit(odd_back->devices[1].busy_percent));
	ck_assert_int_eq(odd_back->sent_at, -5);
	// No devices at all is a valid report (a node whose backend sees nothing).
	Report empty;
	empty.node = "n";
	ck_assert(parse_report(encode_report(empty)));
	// The biggest report the limits allow still parses.
	Report big;
	big.node = std::string(64, 'x');
	for (int i = 0; i < 256; ++i) {
		DeviceReport dev;
		dev.device = i;
		big.devices.push_back(dev);
	}
	big.devices[7].per_job = true;
	for (uint32_t j = 1; j <= 1024; ++j)
		big.devices[7].jobs.push_back({j, 1, 1});
	auto big_back = parse_report(encode_report(big));
	ck_assert_msg(big_back, "%s", big_back.error().c_str());
	ck_assert_uint_eq(big_back->devices.size(), 256);
	ck_assert_uint_eq(big_back->devices[7].jobs.size(), 1024);
}
END_TEST

START_TEST(malformed_reports_are_refused)
{
	const std::string good = sample_text;
	std::string many_devices, many_jobs = "device 0 busy 1 used 1 lendable 1 per_job 1\n";
	for (int i = 0; i <= 256; ++i)
		many_devices += "device " + std::to_string(i % 256) + " busy 1 used 1 lendable 1 per_job 0\n";
	for (int i = 1; i <= 1025; ++i)
		many_jobs += "job " + std::to_string(i) + " busy 1 memory 1\n";
	const std::string dev = "device 0 busy 1 used 1 lendable 1 per_job 1\n";
	const std::vector<std::pair<std::string, std::string>> bad = {
	        {"", "line 1: missing \"end\" (truncated?)"},
	        {replaced(good, "report 1", "report 2"),
	         "line 1: version \"2\" is not supported (this side speaks 1)"},
	        {replaced(good, "flexslurm-report", "flexslurm-orders"),
	         "line 1: not a flexslurm-report message (expected \"flexslurm-report 1\")"},
	        {replaced(good, "node gpu-node_01.a\n", ""),
	         "line 2: expected \"node <name>\", got a line starting with \"epoch\""},
	        {replaced(good, "node gpu-node_01.a", "node"),
	         "line 2: expected \"node <name>\", got a line starting with \"node\""},
	        {replaced(good, "gpu-node_01.a", "gpu/node"),
	         "line 2: node name \"gpu/node\" is not 1..64 characters of [A-Za-z0-9._-]"},
	        {replaced(good, "gpu-node_01.a", std::string(65, 'a')),
	         "line 2: node name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" is not 1..64 characters of "
	         "[A-Za-z0-9._-]"},
	        {replaced(good, "gpu-node_01.a", "g\xc3\xa9"), "line 2: character \"\\xc3\" is not allowed"},
	        {replaced(good, "epoch 1700000000", "epoch -1"),
	         "line 3: epoch \"-1\" is not a number (0..18446744073709551615)"},
	        {replaced(good, "seq 42", "seq 18446744073709551616"),
	         "line 4: seq \"18446744073709551616\" is not a number (0..18446744073709551615)"},
	        {replaced(good, "seq 42", "seq 042"),
	         "line 4: seq \"042\" is not a number (0..18446744073709551615)"},
	        {replaced(good, "sent_at 1700000123", "sent_at 1.5"),
	         "line 5: sent_at \"1.5\" is not a signed 64-bit number"},
	        {replaced(good, "busy 12.5", "busy -1"), "line 6: busy \"-1\" is not a percentage (0..100)"},
	        {replaced(good, "busy 12.5", "busy -0"), "line 6: busy \"-0\" is not a percentage (0..100)"},
	        {replaced(good, "busy 12.5", "busy nan"),
	         "line 6: busy \"nan\" is not a percentage (0..100)"},
	        {replaced(good, "busy 12.5", "busy inf"),
	         "line 6: busy \"inf\" is not a percentage (0..100)"},
	        {replaced(good, "busy 12.5", "busy 100.01"),
	         "line 6: busy \"100.01\" is not a percentage (0..100)"},
	        {replaced(good, "busy 12.5", "busy 1e999"),
	         "line 6: busy \"1e999\" is not a percentage (0..100)"},
	        {replaced(good, "busy 0.1", "busy 0x1"), "line 7: busy \"0x1\" is not a percentage (0..100)"},
	        {replaced(good, "device 255", "device 256"), "line 9: device index \"256\" is not 0..255"},
	        {replaced(good, "device 255", "device 0"), "line 9: device 0 appears twice"},
	        {replaced(good, "used 40960", "used -1"), "line 6: used \"-1\" is not a number of MiB"},
	        {replaced(good, "per_job 1", "per_job yes"), "line 6: per_job \"yes\" is not 0 or 1"},
	        {replaced(good, "per_job 1", "per_job 0"),
	         "line 7: job line for device 0, which does not report per job (per_job 0)"},
	        {replaced(good, "job 4294967295", "job 101"), "line 8: job 101 appears twice on device 0"},
	        {replaced(good, "job 101", "job 0"),
	         "line 7: job id \"0\" is not a Slurm job id (1..4294967295)"},
	        {replaced(good, "job 101", "job 4294967296"),
	         "line 7: job id \"4294967296\" is not a Slurm job id (1..4294967295)"},
	        {replaced(good, "lendable 20480 ", "lendable 20480 extra 1 "),
	         "line 6: expected \"device <index> busy <percent> used <MiB> lendable <MiB> per_job "
	         "<0|1>\", got "
	         "a line starting with \"device\""},
	        {replaced(good, "busy 12.5", "busy  12.5"),
	         "line 6: empty field (a space at the start or end, or two in a row)"},
	        {replaced(good, "busy 12.5", "busy\t12.5"), "line 6: character \"\\x09\" is not allowed"},
	        {replaced(good, "seq 42\n", "seq 42\r\n"), "line 4: character \"\\x0d\" is not allowed"},
	        {replaced(good, "seq 42\n", "seq 42\n\n"), "line 5: empty line"},
	        {replaced(good, "seq 42\n", "seq 42 \n"),
	         "line 4: empty field (a space at the start or end, or two in a row)"},
	        {replaced(good, "job 101", "gpu 101"),
	         "line 7: unknown record \"gpu\" (expected device, job or end)"},
	        {good + "x", "line 11: text after \"end\""},
	        {good + "end\n", "line 11: text after \"end\""},
	        {good.substr(0, good.size() - 1), "line 10: no newline at the end (truncated?)"},
	        {good.substr(0, good.size() - 4), "line 10: missing \"end\" (truncated?)"},
	        {good.substr(0, 60), "line 4: no newline at the end (truncated?)"},
	        {report_with("job 1 busy 1 memory 1\n"), "line 6: job line before any device line"},
	        {report_with(many_devices), "line 262: more than 256 devices"},
	        {report_with(many_jobs), "line 1031: more than 1024 jobs on device 0"},
	        {report_with(dev + "job 1 busy 1 memory 1 " + std::string(240, 'x') + "\n"),
	         "line 7: longer than 256 characters"},
	        {report_with("device 0 busy 1 used 1 lendable 1 per_job 1 a b c d e f g h\n"),
	         "line 6: more than 16 fields"},
	        {std::string(max_message_bytes + 1, 'x'),
	         "report of 65537 bytes is over the 65536-byte limit"},
	};
	for (const auto &[text, why] : bad) {
		auto r = parse_report(text);
		ck_assert_msg(!r, "accepted: %s", text.c_str());
		ck_assert_str(r.error(), why);
	}
	std::string nul = good;
	nul[20] = '\0';
	ck_assert(!parse_report(nul));
}
END_TEST

START_TEST(orders_round_trip_and_refusals)
{
	Orders o;
	o.node = "n1";
	o.seq = 42;
	o.stops = {{101, 0}, {7, 2147483647}};
	const std::string text = encode_orders(o);
	ck_assert_str(text,
	              "flexslurm-orders 1\nnode n1\nseq 42\nstop 101 in 0\nstop 7 in 2147483647\nend\n");
	auto back = parse_orders(text);
	ck_assert_msg(back, "%s", back.error().c_str());
	ck_assert_str(back->node, "n1");
	ck_assert_uint_eq(back->seq, 42);
	ck_assert_uint_eq(back->stops.size(), 2);
	ck_assert_uint_eq(back->stops[1].job, 7);
	ck_assert_int_eq(back->stops[1].in_seconds, 2147483647);
	Orders none;
	none.node = "n1";
	ck_assert(parse_orders(encode_orders(none)));

	std::string too_many = "flexslurm-orders 1\nnode n1\nseq 1\n";
	for (int i = 1; i <= 4097; ++i)
		too_many += "stop " + std::to_string(i) + " in 0\n";
	too_many += "end\n";
	const std::vector<std::pair<std::string, std::string>> bad = {
	        {replaced(text, "orders 1", "orders 9"),
	         "line 1: version \"9\" is not supported (this side speaks 1)"},
	        {replaced(text, "flexslurm-orders", "flexslurm-report"),
	         "line 1: not a flexslurm-orders message (expected \"flexslurm-orders 1\")"},
	        {replaced(text, "node n1\n", ""),
	         "line 2: expected \"node <name>\", got a line starting with \"seq\""},
	        {replaced(text, "stop 101 in 0", "stop 101 in -1"),
	         "line 4: delay \"-1\" is not a number of seconds (0..2147483647)"},
	        {replaced(text, "in 2147483647", "in 2147483648"),
	         "line 5: delay \"2147483648\" is not a number of seconds (0..2147483647)"},
	        {replaced(text, "stop 101", "stop 0"),
	         "line 4: job id \"0\" is not a Slurm job id (1..4294967295)"},
	        {replaced(text, "stop 7", "stop 101"), "line 5: job 101 has two stop orders"},
	        {replaced(text, "stop 101 in 0", "kill 101 in 0"),
	         "line 4: expected \"stop <job> in <seconds>\" or \"end\", got a line starting with "
	         "\"kill\""},
	        {text + "stop 1 in 1\n", "line 7: text after \"end\""},
	        {text.substr(0, text.size() - 4), "line 6: missing \"end\" (truncated?)"},
	        {too_many, "line 4100: more than 4096 stop orders"},
	};
	for (const auto &[t, why] : bad) {
		auto r = parse_orders(t);
		ck_assert_msg(!r, "accepted: %s", t.c_str());
		ck_assert_str(r.error(), why);
	}
}
END_TEST

// Random damage to a valid text: never a crash, and whatever still parses
// re-encodes to a text that parses to the same thing.
START_TEST(damaged_reports_never_crash)
{
	std::mt19937 random(20240611u + static_cast<unsigned>(_i));
	const std::string good = sample_text;
	static constexpr char characters[] = "0123456789 .-\nabcdejnopsuvx_\t\r\x00\xff";
	const std::string alphabet(characters, sizeof characters - 1); // with the NUL
	int parsed = 0;
	for (int round = 0; round < 20000; ++round) {
		std::string text = good;
		const int edits = 1 + static_cast<int>(random() % 4);
		for (int e = 0; e < edits && !text.empty(); ++e) {
			const size_t at_pos = random() % text.size();
			switch (random() % 4) {
			case 0:
				text[at_pos] = alphabet[random() % alphabet.size()];
				break;
			case 1:
				text.erase(at_pos, 1 + random() % 8);
				break;
			case 2:
				text.insert(at_pos, 1, alphabet[random() % alphabet.size()]);
				break;
			default:
				text.insert(at_pos, text.substr(random() % text.size(), random() % 40));
				break;
			}
		}
		auto r = parse_report(text);
		if (!r) {
			ck_assert_msg(r.error().rfind("line ", 0) == 0, "%s", r.error().c_str());
			continue;
		}
		++parsed;
		const std::string once = encode_report(*r);
		auto again = parse_report(once);
		ck_assert_msg(again, "%s -> %s", once.c_str(), again.error().c_str());
		ck_assert_str(encode_report(*again), once);
	}
	ck_assert_int_gt(parsed, 0); // some damage is harmless (a digit for a digit)
}
END_TEST

START_TEST(drop_reason_names)
{
	const std::vector<std::pair<DropReason, std::string>> names = {
	        {DropReason::BadCredential, "bad-credential"},
	        {DropReason::Replayed, "replayed"},
	        {DropReason::WrongUid, "wrong-uid"},
	        {DropReason::Malformed, "malformed"},
	        {DropReason::Oversized, "oversized"},
	        {DropReason::UnknownNode, "unknown-node"},
	        {DropReason::WrongAddress, "wrong-address"},
	        {DropReason::Stale, "stale"},
	        {DropReason::Flood, "flood"},
	};
	ck_assert_uint_eq(names.size(), drop_reason_count);
	for (const auto &[r, name] : names)
		ck_assert_str(std::string(drop_reason_name(r)), name);
	ck_assert(valid_node_name("a") && valid_node_name(std::string(64, 'Z')) &&
	          valid_node_name("n-1.x_2"));
	ck_assert(!valid_node_name("") && !valid_node_name(std::string(65, 'a')) && !valid_node_name("a b") &&
	          !valid_node_name("a,b") && !valid_node_name("a[1-2]"));
}
END_TEST

// --- The intake ------------------------------------------------------------------

namespace
{

std::mutex log_lines_mutex;
std::vector<std::string> log_lines; // error lines only

void record_log(LogLevel level, const char *message)
{
	if (level != LogLevel::Error)
		return;
	std::lock_guard<std::mutex> lock(log_lines_mutex);
	log_lines.emplace_back(message);
}

std::vector<std::string> take_log()
{
	std::lock_guard<std::mutex> lock(log_lines_mutex);
	return std::exchange(log_lines, {});
}

// A stand-in for munged: credentials are keys into a table of what they "seal".
struct FakeMunge {
	std::map<std::string, Sealed> sealed;
	int next = 0;

	std::string seal(const std::string &payload, uid_t uid = 0, bool replayed = false)
	{
		const std::string cred = "cred-" + std::to_string(next++);
		sealed[cred] = Sealed{payload, uid, 0, replayed};
		return cred;
	}
	std::string seal(const Report &r, uid_t uid = 0, bool replayed = false)
	{
		return seal(encode_report(r), uid, replayed);
	}
	Opener opener()
	{
		return [this](std::string_view cred) -> Result<Sealed> {
			if (cred == "throw")
				throw std::runtime_error("opener exploded");
			const auto found = sealed.find(std::string(cred));
			if (found == sealed.end())
				return Result<Sealed>::failure("Invalid credential format");
			return found->second;
		};
	}
};

IntakeRules rules()
{
	IntakeRules r;
	r.allowed_uids = {0, 64030};
	r.node_known = [](const std::string &node) { return node == "n1" || node == "n2" || node == "n3"; };
	r.node_matches_peer = [](const std::string &node, const std::string &peer) {
		return (node == "n1" && peer == "10.0.0.1") || (node == "n2" && peer == "10.0.0.2") ||
		       (node == "n3" && peer == "10.0.0.3");
	};
	r.min_interval = 5s;
	r.max_age = 60s;
	return r;
}

Report report(const std::string &node, uint64_t epoch, uint64_t seq, long sent_at)
{
	Report r;
	r.node = node;
	r.epoch = epoch;
	r.seq = seq;
	r.sent_at = sent_at;
	DeviceReport d;
	d.busy_percent = 3;
	r.devices.push_back(d);
	return r;
}

} // namespace

START_TEST(intake_checks_in_order)
{
	set_log_sink(record_log);
	take_log();
	FakeMunge munge;
	ReportIntake intake(rules(), munge.opener());
	const std::string p1 = "10.0.0.1";
	const std::string p9 = "10.0.0.9"; // the checks before the address one do not look at the peer
	const long t = 1000;

	auto ok = intake.take(munge.seal(report("n1", 1, 1, t)), p1, at(t));
	ck_assert(ok && ok->node == "n1" && ok->seq == 1 && ok->devices.size() == 1);
	ck_assert_uint_eq(intake.accepted(), 1);
	ck_assert_uint_eq(take_log().size(), 0);

	struct Case {
		std::string frame, peer;
		DropReason reason;
		std::string line;
	};
	const std::vector<Case> cases = {
	        {std::string(max_message_bytes + 1, 'c'), p9, DropReason::Oversized,
	         "reclaim: dropped report from 10.0.0.9 (?): oversized: frame of 65537 bytes is over the "
	         "65536-byte limit"},
	        {"garbage", p9, DropReason::BadCredential,
	         "reclaim: dropped report from 10.0.0.9 (?): bad-credential: Invalid credential format"},
	        // A wrong uid is refused before its payload is even parsed.
	        {munge.seal("hello", 1000), p9, DropReason::WrongUid,
	         "reclaim: dropped report from 10.0.0.9 (?): wrong-uid: credential of uid 1000, which may "
	         "not "
	         "report"},
	        {munge.seal("hello\n", 64030), p9, DropReason::Malformed,
	         "reclaim: dropped report from 10.0.0.9 (?): malformed: line 1: not a flexslurm-report "
	         "message "
	         "(expected \"flexslurm-report 1\")"},
	        // Unknown beats a wrong address and staleness.
	        {munge.seal(report("n9", 1, 9, 0)), p9, DropReason::UnknownNode,
	         "reclaim: dropped report from 10.0.0.9 (n9): unknown-node: not a node of this cluster"},
	        {munge.seal(report("n2", 1, 9, 0)), p1, DropReason::WrongAddress,
	         "reclaim: dropped report from 10.0.0.1 (n2): wrong-address: the node does not have address "
	         "10.0.0.1"},
	        {munge.seal(report("n1", 1, 9, t - 61)), p1, DropReason::Stale,
	         "reclaim: dropped report from 10.0.0.1 (n1): stale: sent at 939, now is 1000 (max_age 60 "
	         "s)"},
	        {munge.seal(report("n1", 1, 9, t + 61)), p1, DropReason::Stale,
	         "reclaim: dropped report from 10.0.0.1 (n1): stale: sent at 1061, now is 1000 (max_age 60 "
	         "s)"},
	        {munge.seal(report("n1", 1, 9, INT64_MIN)), p1, DropReason::Stale,
	         "reclaim: dropped report from 10.0.0.1 (n1): stale: sent at -9223372036854775808, now is "
	         "1000 "
	         "(max_age 60 s)"},
	        // Munge's replay cache, even for a newer seq; then (epoch, seq) not newer.
	        {munge.seal(report("n1", 1, 9, t), 0, true), p1, DropReason::Replayed,
	         "reclaim: dropped report from 10.0.0.1 (n1): replayed: munge says the credential was "
	         "replayed"},
	        {munge.seal(report("n1", 1, 1, t)), p1, DropReason::Replayed,
	         "reclaim: dropped report from 10.0.0.1 (n1): replayed: epoch 1 seq 1 is not newer than the "
	         "last "
	         "accepted (epoch 1 seq 1)"},
	        {munge.seal(report("n1", 0, 99, t)), p1, DropReason::Replayed,
	         "reclaim: dropped report from 10.0.0.1 (n1): replayed: epoch 0 seq 99 is not newer than the "
	         "last "
	         "accepted (epoch 1 seq 1)"},
	        {munge.seal(report("n1", 1, 4, t + 4)), p1, DropReason::Flood,
	         "reclaim: dropped report from 10.0.0.1 (n1): flood: 4 reports within 5 s (at most 3)"},
	};
	uint64_t expected[drop_reason_count] = {};
	for (const Case &c : cases) {
		if (c.reason == DropReason::Flood) { // two more within the window first: 3 are fine
			ck_assert(intake.take(munge.seal(report("n1", 1, 2, t + 1)), p1, at(t + 1)));
			ck_assert(intake.take(munge.seal(report("n1", 1, 3, t + 2)), p1, at(t + 2)));
		}
		const auto got = intake.take(c.frame, c.peer, at(c.reason == DropReason::Flood ? t + 4 : t));
		ck_assert_msg(!got, "accepted: %s", c.line.c_str());
		++expected[static_cast<size_t>(c.reason)];
		const auto lines = take_log();
		ck_assert_uint_eq(lines.size(), 1);
		ck_assert_str(lines[0], c.line);
	}
	for (size_t i = 0; i < drop_reason_count; ++i)
		ck_assert_uint_eq(intake.dropped(static_cast<DropReason>(i)), expected[i]);
	ck_assert_uint_eq(intake.accepted(), 3);

	// Edges that pass: sent exactly max_age ago, or max_age ahead; min_interval after.
	ck_assert(intake.take(munge.seal(report("n1", 1, 5, t + 5 - 60)), p1, at(t + 5)));
	ck_assert(intake.take(munge.seal(report("n1", 1, 6, t + 10 + 60)), p1, at(t + 10)));
	// seq 6 again.
	ck_assert(!intake.take(munge.seal(report("n1", 1, 6, t + 20)), p1, at(t + 20)));
	ck_assert_uint_eq(intake.dropped(DropReason::Replayed), 4);
	// Other nodes have their own sequence and clock.
	ck_assert(intake.take(munge.seal(report("n2", 7, 1, t + 20)), "10.0.0.2", at(t + 20)));
	ck_assert(!intake.take("throw", p1, at(t + 30))); // the opener's exception stays inside
	ck_assert(contains(take_log().back(), "opener exploded"));
	ck_assert_uint_eq(intake.accepted(), 6);

	// Without callbacks nobody is known; without uids nobody may report.
	ReportIntake bare(IntakeRules{}, munge.opener());
	ck_assert(!bare.take(munge.seal(report("n1", 1, 1, t)), p1, at(t)));
	ck_assert_uint_eq(bare.dropped(DropReason::WrongUid), 1);
	IntakeRules uids_only;
	uids_only.allowed_uids = {0};
	ReportIntake no_nodes(uids_only, munge.opener());
	ck_assert(!no_nodes.take(munge.seal(report("n1", 1, 1, t)), p1, at(t)));
	ck_assert_uint_eq(no_nodes.dropped(DropReason::UnknownNode), 1);
	take_log();
}
END_TEST

START_TEST(intake_replay_and_restart)
{
	set_log_sink(record_log);
	FakeMunge munge;
	ReportIntake intake(rules(), munge.opener());
	const std::string p1 = "10.0.0.1";
	long t = 5000;
	auto send = [&](uint64_t epoch, uint64_t seq) {
		t += 10;
		return intake.take(munge.seal(report("n1", epoch, seq, t)), p1, at(t)).has_value();
	};
	ck_assert(send(100, 1));
	ck_assert(send(100, 2));
	ck_assert(send(100, 5)); // gaps are fine (lost reports)
	ck_assert(!send(100, 5));
	ck_assert(!send(100, 4));
	ck_assert(!send(99, 1000)); // an older agent's report
	ck_assert(send(101, 1));    // the agent restarted: a higher epoch starts seq over
	ck_assert(!send(100, 6));   // and the old epoch is over
	ck_assert(!send(101, 1));
	ck_assert(send(101, 2));
	ck_assert_uint_eq(intake.dropped(DropReason::Replayed), 5);
	ck_assert_uint_eq(intake.accepted(), 5);

	// Flood: at most flood_burst reports from a node within min_interval.
	ck_assert(intake.take(munge.seal(report("n2", 1, 1, t)), "10.0.0.2", at(t)));
	ck_assert(intake.take(munge.seal(report("n2", 1, 2, t)), "10.0.0.2", at(t)));
	ck_assert(intake.take(munge.seal(report("n2", 1, 3, t + 1)), "10.0.0.2", at(t + 1)));
	ck_assert(!intake.take(munge.seal(report("n2", 1, 4, t + 4)), "10.0.0.2", at(t + 4)));
	ck_assert(!intake.take(munge.seal(report("n2", 1, 5, t + 4)), "10.0.0.2", at(t + 4)));
	ck_assert(intake.take(munge.seal(report("n2", 1, 6, t + 5)), "10.0.0.2", at(t + 5)));
	// A clock stepped back is not a flood.
	ck_assert(intake.take(munge.seal(report("n2", 1, 7, t - 30)), "10.0.0.2", at(t - 30)));
	ck_assert_uint_eq(intake.dropped(DropReason::Flood), 2);

	// The per-node table is bounded: the least recently heard node is forgotten.
	IntakeRules small = rules();
	small.max_nodes = 2;
	ReportIntake bounded(small, munge.opener());
	const std::string n1_first = munge.seal(report("n1", 1, 1, t));
	ck_assert(bounded.take(n1_first, p1, at(t)));
	ck_assert(bounded.take(munge.seal(report("n2", 1, 1, t)), "10.0.0.2", at(t + 1)));
	ck_assert(bounded.take(munge.seal(report("n3", 1, 1, t)), "10.0.0.3", at(t + 2)));
	ck_assert(bounded.take(n1_first, p1, at(t + 3))); // n1 forgotten: only munge's cache would catch it
	ck_assert(!bounded.take(munge.seal(report("n3", 1, 1, t)), "10.0.0.3", at(t + 10)));
	take_log();
}
END_TEST

START_TEST(intake_log_is_throttled_per_peer)
{
	set_log_sink(record_log);
	take_log();
	FakeMunge munge;
	ReportIntake intake(rules(), munge.opener());
	for (long s = 0; s < 10; ++s)
		intake.take("bad", "10.9.9.9", at(s));
	ck_assert_uint_eq(take_log().size(), 10);
	for (long s = 10; s < 30; ++s)
		intake.take("bad", "10.9.9.9", at(s));
	ck_assert_uint_eq(take_log().size(), 0); // the 11th and later in that minute
	intake.take("bad", "10.8.8.8", at(30));  // another peer has its own budget
	ck_assert_uint_eq(take_log().size(), 1);
	intake.take("bad", "10.9.9.9", at(68)); // a minute has not passed since the last line (9)
	ck_assert_uint_eq(take_log().size(), 0);
	intake.take("bad", "10.9.9.9", at(69));
	auto lines = take_log();
	ck_assert_uint_eq(lines.size(), 1);
	ck_assert_str(lines[0],
	              "reclaim: dropped report from 10.9.9.9 (?): bad-credential: Invalid credential "
	              "format (21 more drops from this peer not logged since 60 s)");
	// Still as busy: one line a minute.
	for (long s = 70; s < 129; ++s)
		intake.take("bad", "10.9.9.9", at(s));
	ck_assert_uint_eq(take_log().size(), 0);
	for (long s = 129; s < 129 + 5; ++s)
		intake.take("bad", "10.9.9.9", at(s));
	lines = take_log();
	ck_assert_uint_eq(lines.size(), 1);
	ck_assert(contains(lines[0], "(59 more drops from this peer not logged since 60 s)"));
	// Calmer (fewer than 10 since that line): a line each again.
	intake.take("bad", "10.9.9.9", at(200));
	lines = take_log();
	ck_assert_uint_eq(lines.size(), 1);
	ck_assert(contains(lines[0], "(4 more drops"));
	intake.take("bad", "10.9.9.9", at(201));
	intake.take("bad", "10.9.9.9", at(202));
	ck_assert_uint_eq(take_log().size(), 2);
	ck_assert_uint_eq(intake.dropped(DropReason::BadCredential), 10 + 20 + 1 + 2 + 59 + 5 + 3);
}
END_TEST

// --- The TCP framing ----------------------------------------------------------------

namespace
{

double seconds_since(std::chrono::steady_clock::time_point start)
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A blocking client socket to 127.0.0.1:port, for clients that misbehave on purpose.
int raw_connect(uint16_t port)
{
	const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_port = htons(port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
	timeval tv{5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

void send_all(int fd, const std::string &data)
{
	ck_assert_int_eq(send(fd, data.data(), data.size(), MSG_NOSIGNAL), static_cast<ssize_t>(data.size()));
}

std::string header(uint32_t length)
{
	const char bytes[4] = {static_cast<char>(length >> 24), static_cast<char>(length >> 16),
	                       static_cast<char>(length >> 8), static_cast<char>(length)};
	return std::string(bytes, 4);
}

// What the listener's test handler does: echo, with the peer; some requests misbehave.
std::atomic<int> handled{0};

std::string echo(std::string_view request, const std::string &peer)
{
	++handled;
	if (request == "silence")
		return "";
	if (request == "throw")
		throw std::runtime_error("handler exploded");
	if (request == "huge")
		return std::string(max_message_bytes + 1, 'h');
	return "re:" + std::string(request) + " from " + peer;
}

std::unique_ptr<Listener> start_echo(const std::string &address = "127.0.0.1")
{
	auto listener = Listener::start(address, 0, echo);
	ck_assert_msg(listener, "%s", listener.error().c_str());
	ck_assert_uint_ne((*listener)->port(), 0);
	return std::move(*listener);
}

} // namespace

START_TEST(listener_round_trips)
{
	handled = 0;
	auto listener = start_echo();
	const uint16_t port = listener->port();
	auto reply = exchange("127.0.0.1", port, "hello", "", 3s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_str(*reply, "re:hello from 127.0.0.1");
	// One connection per request, many requests.
	for (int i = 0; i < 20; ++i)
		ck_assert(exchange("127.0.0.1", port, std::to_string(i), "", 3s));
	// The biggest frame there is, both ways; an empty one too.
	const std::string big(max_message_bytes - 100, 'b');
	reply = exchange("localhost", port, big, "", 3s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_uint_eq(reply->size(), big.size() + 18);
	reply = exchange("127.0.0.1", port, "", "", 3s);
	ck_assert(reply && *reply == "re: from 127.0.0.1");
	// Speaking from a chosen address (a node's NodeAddr): the listener sees it.
	reply = exchange("127.0.0.1", port, "bound", "127.0.0.2", 3s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_str(*reply, "re:bound from 127.0.0.2");
	auto unbound = exchange("127.0.0.1", port, "x", "::1", 3s);
	ck_assert(!unbound);
	ck_assert_str(unbound.error(),
	              "127.0.0.1:" + std::to_string(port) + ": no address of 127.0.0.1 in the family of ::1");
	ck_assert_int_eq(handled.load(), 24);

	// Requests that get no reply: the client is told, the listener goes on.
	auto none = exchange("127.0.0.1", port, "silence", "", 3s);
	ck_assert(!none);
	ck_assert_msg(contains(none.error(), "closed the connection without a reply"), "%s",
	              none.error().c_str());
	set_log_sink(record_log);
	take_log();
	ck_assert(!exchange("127.0.0.1", port, "throw", "", 3s));
	ck_assert(!exchange("127.0.0.1", port, "huge", "", 3s));
	const auto lines = take_log();
	ck_assert_uint_eq(lines.size(), 2);
	ck_assert_str(lines[0], "reclaim listener: request from 127.0.0.1 not handled: handler exploded");
	ck_assert_str(lines[1],
	              "reclaim listener: reply of 65537 bytes to 127.0.0.1 is over the limit, not sent");
	ck_assert(exchange("127.0.0.1", port, "still here", "", 3s));

	// Too big to send: refused before connecting.
	auto too_big = exchange("127.0.0.1", port, std::string(max_message_bytes + 1, 'x'), "", 3s);
	ck_assert(!too_big);
	ck_assert_str(too_big.error(), "request of 65537 bytes is over the 65536-byte limit");
}
END_TEST

START_TEST(listener_on_every_address)
{
	auto listener = start_echo("");
	auto reply = exchange("127.0.0.1", listener->port(), "v4", "", 3s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_str(*reply, "re:v4 from 127.0.0.1"); // not ::ffff:127.0.0.1
	reply = exchange("::1", listener->port(), "v6", "", 3s);
	if (reply)
		ck_assert_str(*reply, "re:v6 from ::1");
	else
		std::printf("report: no IPv6 loopback here (%s), IPv6 not tested\n", reply.error().c_str());
	// A port in use is an error value.
	auto taken = Listener::start("", listener->port(), echo);
	ck_assert(!taken);
	ck_assert_msg(contains(taken.error(), "Address already in use"), "%s", taken.error().c_str());
	// An address this host does not have (TEST-NET-1).
	ck_assert(!Listener::start("192.0.2.1", 0, echo));
}
END_TEST

START_TEST(listener_refuses_hostile_clients)
{
	set_log_sink(record_log);
	take_log();
	handled = 0;
	auto listener = start_echo();
	const uint16_t port = listener->port();

	// Oversized: refused from the header alone, connection closed.
	int fd = raw_connect(port);
	send_all(fd, header(max_message_bytes + 1) + "abc");
	char byte = 0;
	ck_assert_int_le(recv(fd, &byte, 1, 0), 0);
	close(fd);
	ck_assert(exchange("127.0.0.1", port, "next", "", 3s));

	// A partial frame is never handed to the handler.
	fd = raw_connect(port);
	send_all(fd, header(100) + std::string(50, 'p'));
	shutdown(fd, SHUT_WR);
	ck_assert_int_le(recv(fd, &byte, 1, 0), 0);
	close(fd);
	// Half a header either.
	fd = raw_connect(port);
	send_all(fd, std::string(2, '\0'));
	close(fd);
	ck_assert(exchange("127.0.0.1", port, "next", "", 3s));
	ck_assert_int_eq(handled.load(), 2);

	// A silent client holds the listener for its deadline at most.
	const int silent = raw_connect(port);
	const auto start = std::chrono::steady_clock::now();
	auto reply = exchange("127.0.0.1", port, "after silence", "", 5s);
	const double waited = seconds_since(start);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_msg(waited < Listener::read_deadline.count() + 1.0, "waited %.2f s", waited);
	ck_assert_int_le(recv(silent, &byte, 1, 0), 0); // and it was hung up on
	close(silent);
	// A slow client (a byte at a time) is cut off at the same deadline.
	fd = raw_connect(port);
	send_all(fd, header(10));
	const auto slow_start = std::chrono::steady_clock::now();
	while (seconds_since(slow_start) < Listener::read_deadline.count() + 0.5) {
		if (send(fd, "s", 1, MSG_NOSIGNAL) != 1)
			break;
		usleep(300000);
	}
	ck_assert_int_le(recv(fd, &byte, 1, 0), 0);
	close(fd);
	ck_assert_int_eq(handled.load(), 3);

	const auto lines = take_log();
	ck_assert_uint_eq(lines.size(), 1); // the oversized frame; timeouts are verbose
	ck_assert_str(lines[0],
	              "reclaim listener: refused a frame of 65537 bytes from 127.0.0.1 (limit 65536)");
}
END_TEST

START_TEST(listener_stops_promptly)
{
	auto listener = start_echo();
	const uint16_t port = listener->port();
	// Mid-request: the thread waits for a silent client when told to stop.
	const int silent = raw_connect(port);
	usleep(100000);
	auto start = std::chrono::steady_clock::now();
	listener.reset();
	ck_assert_msg(seconds_since(start) < 0.5, "took %.2f s", seconds_since(start));
	char byte = 0;
	ck_assert_int_le(recv(silent, &byte, 1, 0), 0);
	close(silent);
	// The port is closed: the client fails at once.
	start = std::chrono::steady_clock::now();
	auto refused = exchange("127.0.0.1", port, "anyone?", "", 3s);
	ck_assert(!refused);
	ck_assert_msg(contains(refused.error(), "Connection refused"), "%s", refused.error().c_str());
	ck_assert(seconds_since(start) < 0.5);
	// Idle: just as prompt.
	listener = start_echo();
	start = std::chrono::steady_clock::now();
	listener.reset();
	ck_assert(seconds_since(start) < 0.5);
}
END_TEST

START_TEST(exchange_times_out)
{
	// A server that never accepts: the kernel completes the connection, nobody answers.
	const int server = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(server, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
	ck_assert_int_eq(listen(server, 4), 0);
	socklen_t length = sizeof addr;
	getsockname(server, reinterpret_cast<sockaddr *>(&addr), &length);
	const auto start = std::chrono::steady_clock::now();
	auto reply = exchange("127.0.0.1", ntohs(addr.sin_port), "hello?", "", 1s);
	const double waited = seconds_since(start);
	ck_assert(!reply);
	ck_assert_msg(contains(reply.error(), "reading the reply: timed out (1 s)"), "%s",
	              reply.error().c_str());
	ck_assert_msg(waited >= 0.9 && waited < 1.5, "waited %.2f s", waited);
	close(server);
	ck_assert(!exchange("", 1, "x", "", 1s));
}
END_TEST

// The pieces together as slurmctld uses them: a framed credential in, orders out.
START_TEST(listener_feeds_the_intake)
{
	set_log_sink(record_log);
	FakeMunge munge;
	IntakeRules r = rules();
	r.node_matches_peer = [](const std::string &node, const std::string &peer) {
		return node == "n1" && peer == "127.0.0.1";
	};
	ReportIntake intake(r, munge.opener());
	const long now = 1700000000;
	auto listener =
	        Listener::start("127.0.0.1", 0, [&](std::string_view request, const std::string &peer) {
		        const auto accepted = intake.take(request, peer, at(now));
		        if (!accepted)
			        return std::string();
		        Orders o;
		        o.node = accepted->node;
		        o.seq = accepted->seq;
		        o.stops.push_back({77, 30});
		        return encode_orders(o);
	        });
	ck_assert(listener);
	auto reply = exchange("127.0.0.1", (*listener)->port(), munge.seal(report("n1", 1, 9, now)), "", 3s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	auto orders = parse_orders(*reply);
	ck_assert(orders && orders->seq == 9 && orders->stops.size() == 1 && orders->stops[0].job == 77);
	ck_assert(!exchange("127.0.0.1", (*listener)->port(), munge.seal(report("n2", 1, 9, now)), "", 3s));
	ck_assert_uint_eq(intake.dropped(DropReason::WrongAddress), 1);
	ck_assert_uint_eq(intake.accepted(), 1);
	take_log();
}
END_TEST

// --- The report port under load and abuse ----------------------------------------

namespace
{

// A blocking client socket to 127.0.0.1:port speaking from `source` (any
// address of 127.0.0.0/8 is this host's).
int raw_connect_from(uint16_t port, const std::string &source)
{
	const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	sockaddr_in local{};
	local.sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, source.c_str(), &local.sin_addr), 1);
	ck_assert_int_eq(bind(fd, reinterpret_cast<sockaddr *>(&local), sizeof local), 0);
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_port = htons(port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0);
	timeval tv{5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

// Seconds until the listener hangs up on `fd` (recv sees the end), or -1 if it
// has not within `wait` seconds.
double seconds_until_closed(int fd, double wait)
{
	const auto start = std::chrono::steady_clock::now();
	pollfd p{fd, POLLIN, 0};
	if (poll(&p, 1, static_cast<int>(wait * 1000)) <= 0)
		return -1;
	char buf[64];
	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
	return seconds_since(start);
}

// Whether the listener still holds `fd` open (nothing to read, no end).
bool still_open(int fd)
{
	char byte = 0;
	const ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// The address of simulated node i: 127.1.x.y, one per node, so that the
// per-address limit is no limit to them (as on a cluster).
std::string node_address(int i)
{
	return "127.1." + std::to_string(i / 200) + "." + std::to_string(i % 200 + 1);
}

} // namespace

// Idle connections and slow-loris clients (a header, then a byte now and
// then) cost a real client nothing: the port serves them side by side.
START_TEST(port_serves_past_idle_and_slow_clients)
{
	handled = 0;
	auto listener = start_echo();
	const uint16_t port = listener->port();
	std::vector<int> idle = {raw_connect(port), raw_connect(port), raw_connect_from(port, "127.0.0.3")};
	std::vector<int> slow = {raw_connect_from(port, "127.0.0.4"), raw_connect_from(port, "127.0.0.5")};
	for (int fd : slow)
		send_all(fd, header(100) + "s");
	usleep(50000); // accepted before the real client comes
	const auto start = std::chrono::steady_clock::now();
	int answered = 0;
	double slowest = 0;
	while (seconds_since(start) < 3.0) {
		const auto asked = std::chrono::steady_clock::now();
		auto reply = exchange("127.0.0.1", port, "real", "", 1s);
		ck_assert_msg(reply, "after %.2f s: %s", seconds_since(start), reply.error().c_str());
		ck_assert_str(*reply, "re:real from 127.0.0.1");
		slowest = std::max(slowest, seconds_since(asked));
		++answered;
		for (int fd : slow)
			(void)send(fd, "s", 1, MSG_NOSIGNAL);
		usleep(100000);
	}
	std::printf("report: %d answers in 3 s past %zu idle and %zu slow clients, slowest %.3f s\n",
	            answered, idle.size(), slow.size(), slowest);
	std::fflush(stdout);
	ck_assert_int_ge(answered, 10);
	ck_assert_int_eq(handled.load(), answered); // no partial frame was handed on
	for (int fd : idle)
		close(fd);
	for (int fd : slow)
		close(fd);
}
END_TEST

// 1,000 agents report at the same moment, each from its node's address with
// a valid sealed report, past two idle connections and a slow one: every
// report is taken and answered within the agents' own timeout.
START_TEST(port_answers_a_thousand_agents_at_once)
{
	set_log_sink(record_log);
	take_log();
	constexpr int agents = 1000;
	FakeMunge munge;
	IntakeRules r = rules();
	std::map<std::string, std::string> address_of;
	for (int i = 0; i < agents; ++i)
		address_of["n" + std::to_string(i)] = node_address(i);
	r.node_known = [&](const std::string &node) { return address_of.count(node) != 0; };
	r.node_matches_peer = [&](const std::string &node, const std::string &peer) {
		return address_of.at(node) == peer;
	};
	ReportIntake intake(r, munge.opener());
	const long now = 1700000000;
	std::vector<std::string> credentials;
	for (int i = 0; i < agents; ++i)
		credentials.push_back(munge.seal(report("n" + std::to_string(i), 1, 7, now)));
	auto listener =
	        Listener::start("127.0.0.1", 0, [&](std::string_view request, const std::string &peer) {
		        const auto accepted = intake.take(request, peer, at(now));
		        if (!accepted)
			        return std::string();
		        return encode_orders(Orders{accepted->node, accepted->seq, {{77, 30}}});
	        });
	ck_assert_msg(listener, "%s", listener.error().c_str());
	const uint16_t port = (*listener)->port();
	const int idle1 = raw_connect_from(port, "127.0.0.3");
	const int idle2 = raw_connect_from(port, "127.0.0.4");
	const int slow = raw_connect_from(port, "127.0.0.5");
	send_all(slow, header(200) + "x");
	usleep(50000);

	std::atomic<int> ready{0};
	std::atomic<bool> go{false};
	std::vector<std::string> failures(agents);
	std::vector<double> took(agents);
	std::vector<std::thread> threads;
	threads.reserve(agents);
	for (int i = 0; i < agents; ++i)
		threads.emplace_back([&, i] {
			++ready;
			while (!go)
				std::this_thread::yield();
			const auto start = std::chrono::steady_clock::now();
			auto reply = exchange("127.0.0.1", port, credentials[static_cast<size_t>(i)],
			                      node_address(i), 3s); // the agents' timeout
			took[static_cast<size_t>(i)] = seconds_since(start);
			if (!reply) {
				failures[static_cast<size_t>(i)] = reply.error();
				return;
			}
			auto orders = parse_orders(*reply);
			if (!orders || orders->node != "n" + std::to_string(i) || orders->seq != 7 ||
			    orders->stops.size() != 1)
				failures[static_cast<size_t>(i)] = "wrong answer: " + *reply;
		});
	while (ready < agents)
		std::this_thread::yield();
	const auto start = std::chrono::steady_clock::now();
	go = true;
	for (std::thread &t : threads)
		t.join();
	const double all = seconds_since(start);
	int lost = 0;
	std::string first;
	for (const std::string &f : failures)
		if (!f.empty() && lost++ == 0)
			first = f;
	std::sort(took.begin(), took.end());
	std::printf(
	        "report: %d agents at once: %d lost, all done in %.2f s, median %.3f s, slowest %.3f s%s%s\n",
	        agents, lost, all, took[agents / 2], took.back(), lost ? "; first: " : "", first.c_str());
	std::fflush(stdout);
	ck_assert_int_eq(lost, 0);
	ck_assert_uint_eq(intake.accepted(), agents);
	for (const std::string &line : take_log()) // a limit closed a connection: say which
		std::printf("report: logged: %s\n", line.c_str());
	close(idle1);
	close(idle2);
	close(slow);
}
END_TEST

// A silent client is hung up on once the header deadline passes; one that
// sent a header but not the rest, once the request deadline passes.
START_TEST(port_deadlines_close_silent_clients)
{
	auto listener = start_echo();
	const uint16_t port = listener->port();
	const int silent = raw_connect(port);
	const int headed = raw_connect_from(port, "127.0.0.3");
	send_all(headed, header(50) + "partial");
	const double silent_for = seconds_until_closed(silent, 5);
	const double headed_for = seconds_until_closed(headed, 5);
	std::printf("report: silent client closed after %.2f s, half a request after %.2f s more\n",
	            silent_for, headed_for);
	std::fflush(stdout);
	ck_assert_msg(silent_for >= 0.4 && silent_for < 1.2, "silent for %.2f s", silent_for);
	ck_assert_msg(silent_for + headed_for >= 1.9 && silent_for + headed_for < 3.0, "%.2f s",
	              silent_for + headed_for);
	close(silent);
	close(headed);
}
END_TEST

// More than 8 connections from one address: its longest idle one is closed
// at once; other addresses are not touched, and a real request from that
// address still gets through.
START_TEST(port_limits_connections_per_address)
{
	set_log_sink(record_log);
	take_log();
	handled = 0;
	auto listener = start_echo();
	const uint16_t port = listener->port();
	const int other = raw_connect_from(port, "127.0.0.8");
	std::vector<int> crowd;
	for (int i = 0; i < 8; ++i)
		crowd.push_back(raw_connect_from(port, "127.0.0.7"));
	usleep(100000);
	for (int fd : crowd)
		ck_assert(still_open(fd));
	crowd.push_back(raw_connect_from(port, "127.0.0.7"));
	const double closed_after = seconds_until_closed(crowd[0], 0.3);
	ck_assert_msg(closed_after >= 0, "the oldest idle connection from 127.0.0.7 is still open");
	for (size_t i = 1; i < crowd.size(); ++i)
		ck_assert_msg(still_open(crowd[i]), "connection %zu closed", i);
	ck_assert(still_open(other));
	auto reply = exchange("127.0.0.1", port, "busy address", "127.0.0.7", 1s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_str(*reply, "re:busy address from 127.0.0.7");
	ck_assert(still_open(other));
	const auto lines = take_log();
	ck_assert_uint_eq(lines.size(), 2); // the 9th idle connection, the real client
	const std::string per_address =
	        "reclaim listener: 8 connections open from 127.0.0.7 (the limit per address): closed its one idle longest";
	ck_assert_str(lines[0], per_address);
	close(other);
	for (int fd : crowd)
		close(fd);
}
END_TEST

// At the limit in total, a newcomer waits (in the kernel's backlog) until the
// connection idle longest has been idle for evict_after, which is then closed
// for it: a burst of real clients is never cut off, idle ones are.
START_TEST(port_limits_connections_in_total)
{
	set_log_sink(record_log);
	take_log();
	ListenerLimits limits;
	limits.max_connections = 4;
	limits.max_per_address = 2;
	limits.evict_after = 300ms;
	limits.header_deadline = 3s; // only the limit closes anything here
	limits.request_deadline = 3s;
	auto started = Listener::start("127.0.0.1", 0, echo, limits);
	ck_assert_msg(started, "%s", started.error().c_str());
	const uint16_t port = (*started)->port();
	std::vector<int> idle;
	for (int i = 1; i <= 4; ++i)
		idle.push_back(raw_connect_from(port, "127.0.2." + std::to_string(i)));
	const auto start = std::chrono::steady_clock::now();
	auto reply = exchange("127.0.0.1", port, "fifth", "", 2s);
	const double waited = seconds_since(start);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_str(*reply, "re:fifth from 127.0.0.1");
	ck_assert_msg(waited >= 0.2 && waited < 1.0, "waited %.2f s", waited);
	ck_assert_msg(seconds_until_closed(idle[0], 0.1) >= 0, "the oldest idle one is still open");
	for (size_t i = 1; i < idle.size(); ++i)
		ck_assert_msg(still_open(idle[i]), "connection %zu closed", i);
	// The slot is free again once the reply is out: the next requests are
	// served at once, and close nothing.
	const auto quick = std::chrono::steady_clock::now();
	for (int i = 0; i < 10; ++i)
		ck_assert(exchange("127.0.0.1", port, "free", "", 2s));
	ck_assert_msg(seconds_since(quick) < 0.5, "%.2f s", seconds_since(quick));
	for (size_t i = 1; i < idle.size(); ++i)
		ck_assert_msg(still_open(idle[i]), "connection %zu closed", i);
	const auto lines = take_log();
	ck_assert_uint_eq(lines.size(), 1);
	const std::string in_total =
	        "reclaim listener: 4 connections open (the limit): closed the one idle longest, from 127.0.2.1";
	ck_assert_str(lines[0], in_total);

	// Both limits at once: the newcomer's own address gives up its slot, and
	// nobody else's connection is closed.
	idle.push_back(raw_connect_from(port, "127.0.2.4")); // 127.0.2.4's 2nd, the 4th in total
	usleep(350000);                                      // all of them evictable
	reply = exchange("127.0.0.1", port, "crowded", "127.0.2.4", 2s);
	ck_assert_msg(reply, "%s", reply.error().c_str());
	ck_assert_msg(seconds_until_closed(idle[3], 0.1) >= 0, "127.0.2.4's older one is still open");
	ck_assert(still_open(idle[1]) && still_open(idle[2]) && still_open(idle[4]));
	ck_assert_uint_eq(take_log().size(), 1);
	for (int fd : idle)
		close(fd);
}
END_TEST

// --- Munge --------------------------------------------------------------------------

START_TEST(munge_wrapper)
{
	// Failures are values, with or without a munged.
	MungeEndpoint nowhere{"/nonexistent/munge.socket.2"};
	auto sealed = munge_seal(nowhere, "x");
	ck_assert(!sealed);
	ck_assert_msg(contains(sealed.error(), "munge_encode: "), "%s", sealed.error().c_str());
	ck_assert(!munge_open(nowhere, "MUNGE:garbage:"));
	ck_assert_str(munge_open(nowhere, "").error(), "empty credential");
	ck_assert_str(munge_open(nowhere, std::string("MUNGE:\0x", 8)).error(),
	              "credential contains a NUL byte");
	ck_assert(!munge_seal(nowhere, std::string(max_message_bytes + 1, 'x')));

	// With a reachable munged (the default socket, or FLEXSLURM_TEST_MUNGE_SOCKET).
	MungeEndpoint ep;
	if (const char *socket = std::getenv("FLEXSLURM_TEST_MUNGE_SOCKET"))
		ep.socket = socket;
	const std::string payload = encode_report(report("n1", 1, 1, 100));
	sealed = munge_seal(ep, payload);
	if (!sealed) {
		std::printf("report: no munged reachable (%s); munge_seal/munge_open round trip not tested\n",
		            sealed.error().c_str());
		return;
	}
	auto opened = munge_open(ep, *sealed);
	ck_assert_msg(opened, "%s", opened.error().c_str());
	ck_assert_str(opened->payload, payload);
	ck_assert_uint_eq(opened->uid, getuid());
	ck_assert_uint_eq(opened->gid, getgid());
	ck_assert(!opened->replayed);
	auto again = munge_open(ep, *sealed);
	ck_assert_msg(again, "%s", again.error().c_str());
	ck_assert(again->replayed);
	ck_assert_str(again->payload, payload);
	ck_assert_uint_eq(again->uid, getuid());
	std::string tampered = *sealed;
	tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
	ck_assert(!munge_open(ep, tampered));
	ck_assert(!munge_open(ep, "MUNGE:garbage:"));
	// A payload whose credential would not fit in a frame.
	auto too_big = munge_seal(ep, std::string(max_message_bytes - 1000, 'p'));
	ck_assert(!too_big);
	ck_assert_msg(contains(too_big.error(), "frame limit"), "%s", too_big.error().c_str());

	// The intake with the real thing: munge's replay cache speaks first.
	set_log_sink(record_log);
	IntakeRules r = rules();
	r.allowed_uids = {getuid()};
	ReportIntake intake(r, [ep](std::string_view cred) { return munge_open(ep, cred); });
	const long now =
	        std::chrono::duration_cast<Seconds>(std::chrono::system_clock::now().time_since_epoch())
	                .count();
	auto cred = munge_seal(ep, encode_report(report("n1", 1, 1, now)));
	ck_assert(cred && intake.take(*cred, "10.0.0.1", at(now)));
	ck_assert(!intake.take(*cred, "10.0.0.1", at(now + 10)));
	ck_assert_uint_eq(intake.dropped(DropReason::Replayed), 1);
	ck_assert(contains(take_log().back(), "replayed: munge says the credential was replayed"));
}
END_TEST

START_TEST(admin_requests)
{
	AdminRequest reclaim;
	reclaim.kind = AdminRequest::Kind::Reclaim;
	reclaim.job = 4242;
	auto back = parse_admin(encode_admin(reclaim));
	ck_assert(back && *back && (*back)->kind == AdminRequest::Kind::Reclaim && (*back)->job == 4242);
	auto status = parse_admin(encode_admin(AdminRequest{}));
	ck_assert(status && *status && (*status)->kind == AdminRequest::Kind::Status);
	// A node report is not an admin request at all.
	ck_assert(!parse_admin("flexslurm-report 1\nnode n1\n"));
	for (const char *bad :
	     {"flexslurm-admin 1\nreclaim 0\nend\n", "flexslurm-admin 1\nreclaim 4294967296\nend\n",
	      "flexslurm-admin 1\nreclaim 12x\nend\n", "flexslurm-admin 1\nreclaim 12\n",
	      "flexslurm-admin 1\nstatus\nend\nmore\n", "flexslurm-admin 1\ncancel 5\nend\n"}) {
		auto r = parse_admin(bad);
		ck_assert_msg(r && !*r, "accepted: %s", bad);
	}
}
END_TEST

START_TEST(munge_socket_from_authinfo)
{
	ck_assert_str(munge_socket_of("socket=/run/m/munge.socket,cred_expire=10"), "/run/m/munge.socket");
	ck_assert_str(munge_socket_of("cred_expire=10,socket=/x"), "/x");
	ck_assert_str(munge_socket_of("cred_expire=10"), "");
	ck_assert_str(munge_socket_of(""), "");
}
END_TEST

Suite *report_suite()
{
	Suite *s = suite_create("report");
	TCase *format = tcase_create("format");
	tcase_add_test(format, report_round_trip);
	tcase_add_test(format, malformed_reports_are_refused);
	tcase_add_test(format, orders_round_trip_and_refusals);
	tcase_add_loop_test(format, damaged_reports_never_crash, 0, 3);
	tcase_add_test(format, drop_reason_names);
	tcase_add_test(format, admin_requests);
	tcase_add_test(format, munge_socket_from_authinfo);
	suite_add_tcase(s, format);
	TCase *intake = tcase_create("intake");
	tcase_add_test(intake, intake_checks_in_order);
	tcase_add_test(intake, intake_replay_and_restart);
	tcase_add_test(intake, intake_log_is_throttled_per_peer);
	suite_add_tcase(s, intake);
	TCase *channel = tcase_create("channel");
	tcase_set_timeout(channel, 30); // real sockets and deadlines of a few seconds
	tcase_add_test(channel, listener_round_trips);
	tcase_add_test(channel, listener_on_every_address);
	tcase_add_test(channel, listener_refuses_hostile_clients);
	tcase_add_test(channel, listener_stops_promptly);
	tcase_add_test(channel, exchange_times_out);
	tcase_add_test(channel, listener_feeds_the_intake);
	tcase_add_test(channel, munge_wrapper);
	suite_add_tcase(s, channel);
	TCase *port = tcase_create("port");
	tcase_set_timeout(port, 60); // 1,000 client threads on a small machine
	tcase_add_test(port, port_serves_past_idle_and_slow_clients);
	tcase_add_test(port, port_answers_a_thousand_agents_at_once);
	tcase_add_test(port, port_deadlines_close_silent_clients);
	tcase_add_test(port, port_limits_connections_per_address);
	tcase_add_test(port, port_limits_connections_in_total);
	suite_add_tcase(s, port);
	return s;
}
