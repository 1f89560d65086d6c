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
	        {replaced(good, "report 1", "report 3"),
	         "line 1: version \"3\" is not supported (this side speaks 1 to 2)"},
	        {replaced(good, "report 1", "report 01"),
	         "line 1: version \"01\" is not supported (this side speaks 1 to 2)"},
	        {replaced(good, "flexslurm-report", "flexslurm-orders"),
	         "line 1: not a flexslurm-report message (expected \"flexslurm-report 2\")"},
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

START_TEST(identities_cross_as_version_2)
{
	// No identity: a version 1 report, as before (older controllers read it).
	ck_assert(encode_report(sample_report()).rfind("flexslurm-report 1\n", 0) == 0);
	Report r = sample_report();
	r.identities = {{0, "GPU-5eed0c00-1000-400c-8000-f1e55000c000", "0000:3b:00.0"},
	                {255, "", "0000:af:1f.7"},
	                {3, "GPU-00000000-0000-0000-0000-000000000000", ""}};
	const std::string text = encode_report(r);
	ck_assert(text.rfind("flexslurm-report 2\n", 0) == 0);
	ck_assert(text.find("\nident 255 uuid - pci 0000:af:1f.7\n") != std::string::npos);
	auto back = parse_report(text);
	ck_assert_msg(back, "%s", back.error().c_str());
	ck_assert(back->identities == r.identities);
	ck_assert_uint_eq(back->devices.size(), 2);

	const std::string v2 = "flexslurm-report 2\nnode n1\nepoch 1\nseq 1\nsent_at 100\n";
	const std::vector<std::pair<std::string, std::string>> bad = {
	        // Version 1 knows no ident lines.
	        {report_with("ident 0 uuid - pci -\n"),
	         "line 6: unknown record \"ident\" (expected device, job or end)"},
	        {v2 + "ident 0 uuid - pci -\nident 0 uuid - pci -\nend\n",
	         "line 7: ident of device 0 appears twice"},
	        {v2 + "ident 256 uuid - pci -\nend\n", "line 6: ident device \"256\" is not 0..255"},
	        {v2 + "ident 01 uuid - pci -\nend\n", "line 6: ident device \"01\" is not 0..255"},
	        {v2 + "ident 0 uuid GPU-5EED0C00-1000-400C-8000-F1E55000C000 pci -\nend\n",
	         "line 6: uuid \"GPU-5EED0C00-1000-400C-8000-F1E55000C000\" is not GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx or -"},
	        {v2 + "ident 0 uuid GPU-5eed0c00-1000-400c-8000-f1e55000c0000 pci -\nend\n",
	         "line 6: uuid \"GPU-5eed0c00-1000-400c-8000-f1e55000c0000\" is not GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx or -"},
	        {v2 + "ident 0 uuid 5eed0c00-1000-400c-8000-f1e55000c000 pci -\nend\n",
	         "line 6: uuid \"5eed0c00-1000-400c-8000-f1e55000c000\" is not GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx or -"},
	        {v2 + "ident 0 uuid MIG-5eed0c00-1000-400c-8000-f1e55000c000 pci -\nend\n",
	         "line 6: uuid \"MIG-5eed0c00-1000-400c-8000-f1e55000c000\" is not GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx or -"},
	        {v2 + "ident 0 uuid - pci 00000000:3b:00.0\nend\n",
	         "line 6: pci \"00000000:3b:00.0\" is not a PCI bus id (dddd:bb:dd.f) or -"},
	        {v2 + "ident 0 uuid - pci 0000:3b:20.0\nend\n",
	         "line 6: pci \"0000:3b:20.0\" is not a PCI bus id (dddd:bb:dd.f) or -"},
	        {v2 + "ident 0 uuid - pci 0000:3b:00.8\nend\n",
	         "line 6: pci \"0000:3b:00.8\" is not a PCI bus id (dddd:bb:dd.f) or -"},
	        {v2 + "ident 0 uuid - pci 0000:3B:00.0\nend\n",
	         "line 6: pci \"0000:3B:00.0\" is not a PCI bus id (dddd:bb:dd.f) or -"},
	        {v2 + "ident 0 uuid -\nend\n",
	         "line 6: expected \"ident <device> uuid <uuid|-> pci <bus id|->\", got a line starting with \"ident\""},
	        {v2 + "ident 0 pci - uuid -\nend\n",
	         "line 6: expected \"ident <device> uuid <uuid|-> pci <bus id|->\", got a line starting with \"ident\""},
	        {v2 + "gpu 0\nend\n", "line 6: unknown record \"gpu\" (expected device, job, ident or end)"},
	};
	for (const auto &[t, why] : bad) {
		auto p = parse_report(t);
		ck_assert_msg(!p, "accepted: %s", t.c_str());
		ck_assert_str(p.error(), why);
	}
	// What an agent may send: invalid values become unknown, never sent.
	const DeviceIdentity s =
	        sendable_identity(2, "GPU-5eed0c00-1000-400c-8000-f1e55000c000 x", "0000:3b:00.0");
	ck_assert(s.uuid.empty() && s.pci_bus_id == "0000:3b:00.0" && s.device == 2);
	ck_assert(sendable_identity(0, "", "3b:00.0").pci_bus_id.empty());
}
END_TEST

START_TEST(device_table_round_trip_and_refusals)
{
	const std::vector<NodeDeviceIds> nodes = {
	        {"cl1", {{0, "GPU-5eed0c00-1000-400c-8000-f1e55000c000", "0000:3b:00.0"}, {1, "", ""}}},
	        {"cl2", {{3, "", "0000:af:00.0"}}}};
	const std::string text = encode_device_table(nodes, 44 * 1024);
	ck_assert_str(text,
	              "DEVICES\ncl1 0 GPU-5eed0c00-1000-400c-8000-f1e55000c000 0000:3b:00.0\ncl1 1 - -\n"
	              "cl2 3 - 0000:af:00.0\nend\n");
	auto back = parse_device_table(text);
	ck_assert_msg(back, "%s", back.error().c_str());
	ck_assert(!back->truncated);
	ck_assert_uint_eq(back->nodes.size(), 2);
	ck_assert(back->nodes[0].devices == nodes[0].devices && back->nodes[1].devices == nodes[1].devices);
	ck_assert(parse_device_table("DEVICES\nend\n") &&
	          parse_device_table("DEVICES\nend\n")->nodes.empty());

	// Cut to the bound, with a last line that says so.
	std::vector<NodeDeviceIds> many(1, NodeDeviceIds{"n", {}});
	for (int i = 0; i < 256; ++i)
		many[0].devices.push_back({i, "GPU-5eed0c00-1000-400c-8000-f1e55000c000", "0000:3b:00.0"});
	const std::string cut = encode_device_table(many, 4096);
	ck_assert_uint_le(cut.size(), 4096);
	auto cut_back = parse_device_table(cut);
	ck_assert_msg(cut_back, "%s", cut_back.error().c_str());
	ck_assert(cut_back->truncated);
	ck_assert(cut.find("truncated " + std::to_string(cut_back->nodes[0].devices.size()) + " of 256\n") !=
	          std::string::npos);

	const std::vector<std::pair<std::string, std::string>> bad = {
	        {"", "device table: no newline at the end (truncated?)"},
	        {"error: only root and SlurmUser may use flexslurm-lending\n",
	         "device table: does not start with DEVICES"},
	        {"DEVICES\ncl1 0 - -\n", "device table: no \"end\" line (truncated?)"},
	        {"DEVICES\nend\ncl1 0 - -\n", "device table line 3: text after the last line"},
	        {"DEVICES\ncl1 0 -\nend\n",
	         "device table line 2: \"cl1 0 -\" is not \"<node> <device> <uuid|-> <pci|->\""},
	        {"DEVICES\ncl/1 0 - -\nend\n",
	         "device table line 2: node name \"cl/1\" is not 1..64 characters of [A-Za-z0-9._-]"},
	        {"DEVICES\ncl1 256 - -\nend\n", "device table line 2: device \"256\" is not 0..255"},
	        {"DEVICES\ncl1 -1 - -\nend\n", "device table line 2: device \"-1\" is not 0..255"},
	        {"DEVICES\ncl1 0 GPU-x - -\nend\n",
	         "device table line 2: \"cl1 0 GPU-x - -\" is not \"<node> <device> <uuid|-> <pci|->\""},
	        {"DEVICES\ncl1 0 GPU-5eed0c00-1000-400c-8000-f1e55000c00\x01 -\nend\n",
	         "device table line 2: UUID \"GPU-5eed0c00-1000-400c-8000-f1e55000c00\\x01\" is not GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"},
	        {"DEVICES\ncl1 0 - 0000:3b:00\nend\n",
	         "device table line 2: PCI bus id \"0000:3b:00\" is not dddd:bb:dd.f"},
	        {"DEVICES\ncl1 1 - -\ncl1 0 - -\nend\n",
	         "device table line 3: device 0 of cl1 is not after device 1"},
	        {"DEVICES\ncl1 0 - -\ncl2 0 - -\ncl1 1 - -\nend\n",
	         "device table line 4: node cl1 appears twice"},
	        {"DEVICES\ntruncated 5 of 2\n", "device table line 2: not \"truncated <shown> of <all>\""},
	        {"DEVICES\r\nend\n", "device table: does not start with DEVICES"},
	        {"DEVICES\n" + std::string(max_message_bytes, 'x') + "\n",
	         "device table of 65545 bytes is over the 65536-byte limit"},
	};
	for (const auto &[t, why] : bad) {
		auto p = parse_device_table(t);
		ck_assert_msg(!p, "accepted: %s", t.c_str());
		ck_assert_str(p.error(), why);
	}
}
END_TEST

Suite *report_suite()
{
	Suite *s = suite_create("report");
	TCase *format = tcase_create("format");
	tcase_add_test(format, report_round_trip);
	tcase_add_test(format, malformed_reports_are_refused);
	tcase_add_test(format, orders_round_trip_and_refusals);
	tcase_add_test(format, identities_cross_as_version_2);
	tcase_add_test(format, device_table_round_trip_and_refusals);
	tcase_add_loop_test(format, damaged_reports_never_crash, 0, 3);
	suite_add_tcase(s, format);
	return s;
}
