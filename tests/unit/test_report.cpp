// SPDX-License-Identifier: GPL-2.0-or-later
// Idle reclaim's wire texts: the report and order codecs
// (round trips, and every kind of malformed input refused with its line).
#include "wire_scene.hpp"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace flexslurm;
using namespace wire_scene;

namespace
{

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
	         "line 2: node name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" is not 1..64 characters of [A-Za-z0-9._-]"},
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
	         "line 6: expected \"device <index> busy <percent> used <MiB> lendable <MiB> per_job <0|1>\", got a line starting with \"device\""},
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
	         "line 4: expected \"stop <job> in <seconds>\" or \"end\", got a line starting with \"kill\""},
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

Suite *report_suite()
{
	Suite *s = suite_create("report");
	TCase *format = tcase_create("format");
	tcase_add_test(format, report_round_trip);
	tcase_add_test(format, malformed_reports_are_refused);
	tcase_add_test(format, orders_round_trip_and_refusals);
	tcase_add_loop_test(format, damaged_reports_never_crash, 0, 3);
	suite_add_tcase(s, format);
	return s;
}
