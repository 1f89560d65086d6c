// SPDX-License-Identifier: GPL-2.0-or-later
// Prometheus metrics: the exposition text (names, labels, escaping,
// histogram buckets), the node agent's and the controller's files, the DCGM
// job mapping, and the slice holders the controller's answer carries.
#include "agent_rig.hpp"
#include "suites.hpp"

#include "core/model/metrics.hpp"
#include "core/model/report.hpp"

#include <limits>

namespace
{

using namespace flexslurm;

START_TEST(values_and_escaping)
{
	ck_assert_str(metric_value(0), "0");
	ck_assert_str(metric_value(42), "42");
	ck_assert_str(metric_value(-3), "-3");
	ck_assert_str(metric_value(0.25), "0.25");
	ck_assert_str(metric_value(1e-3), "0.001");
	ck_assert_str(metric_value(10737418240.0), "10737418240");
	ck_assert_str(metric_value(std::numeric_limits<double>::infinity()), "+Inf");
	ck_assert_str(metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
	ck_assert_str(metric_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
	ck_assert_str(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
	ck_assert_str(escape_help("say \"x\"\\\n"), "say \"x\"\\\\\\n");
}
END_TEST

START_TEST(exposition_text)
{
	Exposition e;
	e.family("flexslurm_test_total", Exposition::Type::Counter, "A \"test\" counter\nsecond line");
	e.sample({}, 7);
	e.sample({{"reason", "x\"y"}, {"Hostname", "n1"}}, 2);
	Histogram h({1, 2.5});
	h.observe(0.5);
	h.observe(1); // le is inclusive
	h.observe(2);
	h.observe(30);
	e.family("flexslurm_test_seconds", Exposition::Type::Histogram, "A histogram");
	e.histogram({}, h);
	e.histogram({{"node", "a"}}, Histogram({1}));
	e.family("flexslurm_test_ratio", Exposition::Type::Gauge, "A gauge");
	ck_assert_str(e.text(), "# HELP flexslurm_test_total A \"test\" counter\\nsecond line\n"
	                        "# TYPE flexslurm_test_total counter\n"
	                        "flexslurm_test_total 7\n"
	                        "flexslurm_test_total{reason=\"x\\\"y\",Hostname=\"n1\"} 2\n"
	                        "# HELP flexslurm_test_seconds A histogram\n"
	                        "# TYPE flexslurm_test_seconds histogram\n"
	                        "flexslurm_test_seconds_bucket{le=\"1\"} 2\n"
	                        "flexslurm_test_seconds_bucket{le=\"2.5\"} 3\n"
	                        "flexslurm_test_seconds_bucket{le=\"+Inf\"} 4\n"
	                        "flexslurm_test_seconds_sum 33.5\n"
	                        "flexslurm_test_seconds_count 4\n"
	                        "flexslurm_test_seconds_bucket{node=\"a\",le=\"1\"} 0\n"
	                        "flexslurm_test_seconds_bucket{node=\"a\",le=\"+Inf\"} 0\n"
	                        "flexslurm_test_seconds_sum{node=\"a\"} 0\n"
	                        "flexslurm_test_seconds_count{node=\"a\"} 0\n"
	                        "# HELP flexslurm_test_ratio A gauge\n"
	                        "# TYPE flexslurm_test_ratio gauge\n");
}
END_TEST

// Device 0 (nvidia0, 4 slices of 25 %, 2.5 GiB each), device 1 (nvidia1,
// 2 slices of 50 %): slice 0 held by job 12 and lent to 30, slice 1 held by
// 12, slice 4 held by 13.
SliceLayout uuid_layout()
{
	auto layout = SliceLayout::deserialize(
	        "flexslurm-layout 1\n"
	        "nvidia\t0\ta100\t/dev/nvidia0\t195:0\t0\t4\t25\t2684354560\t\t1073741824\tGPU-aaaa\t-\n"
	        "nvidia\t1\ta100\t/dev/nvidia1\t195:1\t4\t2\t50\t5368709120\t\t0\n");
	ck_assert_msg(static_cast<bool>(layout), "%s", layout.error().c_str());
	return *layout;
}

const std::vector<SliceJobs> holders = {{12, 30}, {12, 0}, {}, {}, {13, 0}};

START_TEST(node_file)
{
	DeviceUse d0;
	d0.device = 0;
	d0.sampled = true;
	d0.busy_percent = 40;
	d0.per_job = true;
	d0.job_busy_percent = {{12, 15}, {30, 25}};
	d0.last_activity_age_seconds = 0;
	DeviceUse d1;
	d1.device = 1;
	d1.sampled = true;
	d1.busy_percent = 1.5;
	d1.last_activity_age_seconds = 90;
	const std::string l0 = "Hostname=\"n1\",gpu=\"0\",UUID=\"GPU-aaaa\"";
	const std::string l1 = "Hostname=\"n1\",gpu=\"1\",UUID=\"\"";
	ck_assert_str(
	        node_metrics_text("n1", uuid_layout(), {d1, d0}, holders),
	        "# HELP flexslurm_device_info A sliced device: its index in the node's slice layout (device) and DCGM's gpu index and UUID (always 1)\n"
	        "# TYPE flexslurm_device_info gauge\n"
	        "flexslurm_device_info{" +
	                l0 +
	                ",device=\"0\",vendor=\"nvidia\",model=\"a100\"} 1\n"
	                "flexslurm_device_info{" +
	                l1 +
	                ",device=\"1\",vendor=\"nvidia\",model=\"a100\"} 1\n"
	                "# HELP flexslurm_device_slices Slices the device is cut into\n"
	                "# TYPE flexslurm_device_slices gauge\n"
	                "flexslurm_device_slices{" +
	                l0 +
	                "} 4\n"
	                "flexslurm_device_slices{" +
	                l1 +
	                "} 2\n"
	                "# HELP flexslurm_slice_memory_limit_bytes Device memory a slice may hold (0: unknown); jobid: the job holding the slice (empty: free)\n"
	                "# TYPE flexslurm_slice_memory_limit_bytes gauge\n"
	                "flexslurm_slice_memory_limit_bytes{" +
	                l0 +
	                ",slice=\"0\",jobid=\"12\"} 2684354560\n"
	                "flexslurm_slice_memory_limit_bytes{" +
	                l0 +
	                ",slice=\"1\",jobid=\"12\"} 2684354560\n"
	                "flexslurm_slice_memory_limit_bytes{" +
	                l0 +
	                ",slice=\"2\",jobid=\"\"} 2684354560\n"
	                "flexslurm_slice_memory_limit_bytes{" +
	                l0 +
	                ",slice=\"3\",jobid=\"\"} 2684354560\n"
	                "flexslurm_slice_memory_limit_bytes{" +
	                l1 +
	                ",slice=\"4\",jobid=\"13\"} 5368709120\n"
	                "flexslurm_slice_memory_limit_bytes{" +
	                l1 +
	                ",slice=\"5\",jobid=\"\"} 5368709120\n"
	                "# HELP flexslurm_slice_compute_share_ratio A slice's share of the device's compute (0..1); jobid: the job holding the slice (empty: free)\n"
	                "# TYPE flexslurm_slice_compute_share_ratio gauge\n"
	                "flexslurm_slice_compute_share_ratio{" +
	                l0 +
	                ",slice=\"0\",jobid=\"12\"} 0.25\n"
	                "flexslurm_slice_compute_share_ratio{" +
	                l0 +
	                ",slice=\"1\",jobid=\"12\"} 0.25\n"
	                "flexslurm_slice_compute_share_ratio{" +
	                l0 +
	                ",slice=\"2\",jobid=\"\"} 0.25\n"
	                "flexslurm_slice_compute_share_ratio{" +
	                l0 +
	                ",slice=\"3\",jobid=\"\"} 0.25\n"
	                "flexslurm_slice_compute_share_ratio{" +
	                l1 +
	                ",slice=\"4\",jobid=\"13\"} 0.5\n"
	                "flexslurm_slice_compute_share_ratio{" +
	                l1 +
	                ",slice=\"5\",jobid=\"\"} 0.5\n"
	                "# HELP flexslurm_slice_borrower_info A slice lent out: jobid is the borrower (always 1)\n"
	                "# TYPE flexslurm_slice_borrower_info gauge\n"
	                "flexslurm_slice_borrower_info{" +
	                l0 +
	                ",slice=\"0\",jobid=\"30\"} 1\n"
	                "# HELP flexslurm_device_busy_ratio How busy the whole device was at the last sample (0..1)\n"
	                "# TYPE flexslurm_device_busy_ratio gauge\n"
	                "flexslurm_device_busy_ratio{" +
	                l0 +
	                "} 0.4\n"
	                "flexslurm_device_busy_ratio{" +
	                l1 +
	                "} 0.015\n"
	                "# HELP flexslurm_job_busy_ratio A job's share of the device's compute at the last sample (0..1), where the telemetry attributes use to jobs\n"
	                "# TYPE flexslurm_job_busy_ratio gauge\n"
	                "flexslurm_job_busy_ratio{" +
	                l0 +
	                ",jobid=\"12\"} 0.15\n"
	                "flexslurm_job_busy_ratio{" +
	                l0 +
	                ",jobid=\"30\"} 0.25\n"
	                "# HELP flexslurm_device_last_activity_age_seconds Seconds since a sample last found the device busy (at or above lending.idle_below_percent), or since the agent started\n"
	                "# TYPE flexslurm_device_last_activity_age_seconds gauge\n"
	                "flexslurm_device_last_activity_age_seconds{" +
	                l0 +
	                "} 0\n"
	                "flexslurm_device_last_activity_age_seconds{" +
	                l1 + "} 90\n");
}
END_TEST

START_TEST(dcgm_mapping)
{
	const auto map = dcgm_job_map(uuid_layout(), holders);
	ck_assert_uint_eq(map.size(), 2);
	ck_assert(map.at(0) == (std::vector<uint32_t>{12, 30})); // owner once, borrower too
	ck_assert(map.at(1) == (std::vector<uint32_t>{13}));
	ck_assert_str(dcgm_job_file(map.at(0)), "12\n30\n");
	ck_assert(dcgm_job_map(uuid_layout(), {}).empty());
}
END_TEST

START_TEST(controller_file)
{
	std::vector<NodeBooks> nodes(2);
	nodes[0].node = "n1";
	nodes[0].device_of_slice = {0, 0, 0, 0, 1, 1};
	nodes[0].owner(0).job = 12;
	nodes[0].owner(1).job = 12;
	nodes[0].borrower(0).job = 30;
	nodes[0].borrower(3).job = 31; // a borrow unit whose slice is free
	nodes[0].owner(4).job = 13;
	nodes[0].owner(5).job = 13;
	nodes[1].node = "n2";
	nodes[1].known = false; // not registered yet: left out
	nodes[1].device_of_slice = {0};
	ControllerMetrics m;
	m.nodes = &nodes;
	m.counters.loans = 3;
	m.counters.reclaims[static_cast<size_t>(ReclaimReason::LenderBusy)] = 2;
	m.counters.reclaim_seconds.observe(4);
	m.counters.reclaim_seconds.observe(45);
	m.dropped[static_cast<size_t>(DropReason::Stale)] = 5;
	m.accepted = 100;
	m.reclaims_in_flight = 1;
	m.tick_seconds.observe(0.002);
	const std::string text = controller_metrics_text(m);
	const auto has = [&](const std::string &line) {
		ck_assert_msg(text.find("\n" + line + "\n") != std::string::npos, "missing \"%s\" in:\n%s",
		              line.c_str(), text.c_str());
	};
	ck_assert_msg(text.find("n2") == std::string::npos, "%s", text.c_str());
	has("# TYPE flexslurm_slices gauge");
	has("flexslurm_slices{Hostname=\"n1\",device=\"0\"} 4");
	has("flexslurm_slices{Hostname=\"n1\",device=\"1\"} 2");
	has("flexslurm_slices_allocated{Hostname=\"n1\",device=\"0\"} 2");
	has("flexslurm_slices_allocated{Hostname=\"n1\",device=\"1\"} 2");
	has("flexslurm_slices_lent{Hostname=\"n1\",device=\"0\"} 1");
	has("flexslurm_slices_lent{Hostname=\"n1\",device=\"1\"} 0");
	has("flexslurm_slices_borrowed{Hostname=\"n1\",device=\"0\"} 2");
	has("flexslurm_devices_partly_allocated{Hostname=\"n1\"} 1");
	has("flexslurm_fragmentation_ratio{Hostname=\"n1\"} 0.5");
	has("# TYPE flexslurm_loans_total counter");
	has("flexslurm_loans_total 3");
	has("flexslurm_reclaims_total{reason=\"lender-busy\"} 2");
	has("flexslurm_reclaims_total{reason=\"admin\"} 0");
	has("flexslurm_reclaims_total{reason=\"owner-arrived\"} 0");
	has("flexslurm_reclaims_in_flight 1");
	has("# TYPE flexslurm_reclaim_duration_seconds histogram");
	has("flexslurm_reclaim_duration_seconds_bucket{le=\"2\"} 0");
	has("flexslurm_reclaim_duration_seconds_bucket{le=\"5\"} 1");
	has("flexslurm_reclaim_duration_seconds_bucket{le=\"60\"} 2");
	has("flexslurm_reclaim_duration_seconds_bucket{le=\"+Inf\"} 2");
	has("flexslurm_reclaim_duration_seconds_sum 49");
	has("flexslurm_reclaim_duration_seconds_count 2");
	has("flexslurm_reports_accepted_total 100");
	has("flexslurm_reports_dropped_total{reason=\"stale\"} 5");
	has("flexslurm_reports_dropped_total{reason=\"bad-credential\"} 0");
	has("flexslurm_lending_tick_duration_seconds_bucket{le=\"0.001\"} 0");
	has("flexslurm_lending_tick_duration_seconds_bucket{le=\"0.0025\"} 1");
	has("flexslurm_lending_tick_duration_seconds_count 1");
	// Every drop reason and reclaim reason has its series.
	ck_assert_uint_eq(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')), 80);
}
END_TEST

START_TEST(orders_carry_slice_holders)
{
	Orders o{"n1", 7, {{30, 5}}, {{0, 12, 30}, {3, 0, 31}, {4, 13, 0}}};
	const std::string text = encode_orders(o);
	ck_assert_str(text, "flexslurm-orders 1\nnode n1\nseq 7\nstop 30 in 5\n"
	                    "slice 0 owner 12 borrower 30\nslice 3 owner 0 borrower 31\n"
	                    "slice 4 owner 13 borrower 0\nend\n");
	auto back = parse_orders(text);
	ck_assert_msg(static_cast<bool>(back), "%s", back ? "" : back.error().c_str());
	ck_assert(back->slices == o.slices);
	ck_assert_uint_eq(back->stops.size(), 1);

	const auto refused = [](const std::string &body, const char *why) {
		auto r = parse_orders("flexslurm-orders 1\nnode n1\nseq 7\n" + body + "end\n");
		ck_assert_msg(!r, "accepted: %s", body.c_str());
		ck_assert_str(r.error(), why);
	};
	refused("slice 0 owner 1 borrower 0\nslice 0 owner 2 borrower 0\n", "line 5: slice 0 appears twice");
	refused("slice 16384 owner 1 borrower 0\n",
	        "line 4: slice \"16384\" is not a slice index (0..16383)");
	refused("slice 1 owner -1 borrower 0\n",
	        "line 4: job id \"-1\" is not a Slurm job id or 0 (0..4294967295)");
	refused("slice 1 owner 1 borrower 0\nstop 30 in 5\n",
	        "line 5: expected \"slice <unit> owner <job> borrower <job>\" or \"end\", got a line starting with \"stop\"");
}
END_TEST

// The agent writes its file after every report, with the holders of the
// last answer, and the DCGM files of the GPUs with jobs (removing the
// others').
START_TEST(agent_writes_files)
{
	AgentRig rig({"ctl1"}, "", [](AgentSettings &s) {
		s.metrics_dir = "/prom";
		s.dcgm_job_mapping_dir = "/dcgm";
		s.idle_below_percent = 5;
	});
	rig.answer = [](const std::string &, const Report &r) -> Result<std::string> {
		return encode_orders(Orders{r.node, r.seq, {}, {{0, 12, 30}, {4, 13, 0}}});
	};
	rig.telemetry->next = std::vector<DeviceSample>{{0, 50, 0, false, {}}, {1, 1, 0, false, {}}};
	rig.agent->report_once();
	// The first report writes what the answer to it said.
	ck_assert_uint_eq(rig.files.size(), 3);
	ck_assert_str(rig.files.at("/dcgm/0"), "12\n30\n");
	ck_assert_str(rig.files.at("/dcgm/1"), "13\n");
	const std::string &prom = rig.files.at("/prom/flexslurm_node.prom");
	ck_assert_msg(
	        prom.find(
	                "flexslurm_slice_borrower_info{Hostname=\"n1\",gpu=\"0\",UUID=\"\",slice=\"0\",jobid=\"30\"} 1\n") !=
	                std::string::npos,
	        "%s", prom.c_str());
	ck_assert_msg(prom.find("flexslurm_device_busy_ratio{Hostname=\"n1\",gpu=\"0\",UUID=\"\"} 0.5\n") !=
	                      std::string::npos,
	              "%s", prom.c_str());

	// 100 s later device 1 is still idle, device 0 busy; job 13 is gone.
	rig.wall += Seconds(100);
	rig.answer = [](const std::string &, const Report &r) -> Result<std::string> {
		return encode_orders(Orders{r.node, r.seq, {}, {{0, 12, 0}}});
	};
	rig.agent->report_once();
	ck_assert_str(rig.files.at("/dcgm/0"), "12\n");
	ck_assert(rig.files.count("/dcgm/1") == 0);
	ck_assert(std::count(rig.removed.begin(), rig.removed.end(), "/dcgm/1") == 1);
	const std::string &later = rig.files.at("/prom/flexslurm_node.prom");
	ck_assert_msg(
	        later.find(
	                "flexslurm_device_last_activity_age_seconds{Hostname=\"n1\",gpu=\"1\",UUID=\"\"} 100\n") !=
	                std::string::npos,
	        "%s", later.c_str());
	ck_assert_msg(
	        later.find(
	                "flexslurm_device_last_activity_age_seconds{Hostname=\"n1\",gpu=\"0\",UUID=\"\"} 0\n") !=
	                std::string::npos,
	        "%s", later.c_str());
	ck_assert(later.find("flexslurm_slice_borrower_info{") == std::string::npos);
}
END_TEST

// Off (the default): nothing is written.
START_TEST(agent_writes_nothing_when_off)
{
	AgentRig rig;
	rig.answer_with({});
	rig.telemetry->next = std::vector<DeviceSample>{{0, 50, 0, false, {}}};
	rig.agent->report_once();
	ck_assert(rig.files.empty() && rig.removed.empty());
}
END_TEST

} // namespace

Suite *metrics_suite()
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");
	tcase_add_test(tc, values_and_escaping);
	tcase_add_test(tc, exposition_text);
	tcase_add_test(tc, node_file);
	tcase_add_test(tc, dcgm_mapping);
	tcase_add_test(tc, controller_file);
	tcase_add_test(tc, orders_carry_slice_holders);
	tcase_add_test(tc, agent_writes_files);
	tcase_add_test(tc, agent_writes_nothing_when_off);
	suite_add_tcase(s, tc);
	return s;
}
