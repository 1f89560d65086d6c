// SPDX-License-Identifier: GPL-2.0-or-later
// The slice map of the flexslurm command (core/model/slice_map.hpp): Slurm's
// GRES strings as sinfo and scontrol show them, the lending controller's
// status rows (read back from the writer itself), the device split, the
// filters, and the JSON and text forms.
#include "suites.hpp"

#include "core/model/loan_book.hpp"
#include "core/model/slice_map.hpp"
#include "core/util/text.hpp"

#include <memory>
#include <string>
#include <vector>

using namespace flexslurm;

namespace
{

Filters only_nodes(std::vector<std::string> nodes)
{
	Filters f;
	f.nodes = std::move(nodes);
	return f;
}

Filters only_partition(std::string partition)
{
	Filters f;
	f.partition = std::move(partition);
	return f;
}

Filters only_job(uint32_t job)
{
	Filters f;
	f.job = job;
	return f;
}

NodeInput node(const std::string &name, const std::string &gres, const std::string &used,
               std::vector<std::string> parts = {"debug"})
{
	return NodeInput{name, "MIXED", std::move(parts), gres, used};
}

} // namespace

START_TEST(gres_lists_as_slurm_writes_them)
{
	auto l = parse_gres_list("gpu:t4:2(S:0-1),vslice:t4:8(S:0),vborrow:t4:8");
	ck_assert(l);
	ck_assert_uint_eq(l->size(), 3);
	ck_assert_str((*l)[1].name, "vslice");
	ck_assert_str((*l)[1].type, "t4");
	ck_assert_uint_eq((*l)[1].count, 8);
	ck_assert(!(*l)[1].has_indices);

	auto used = parse_gres_list("gpu:t4:0(IDX:N/A),vslice:t4:3(IDX:0-1,5),vborrow:t4:1(IDX:5)");
	ck_assert(used);
	ck_assert((*used)[0].has_indices && (*used)[0].indices.empty());
	ck_assert((*used)[1].indices == (std::vector<int>{0, 1, 5}));
	ck_assert((*used)[2].indices == std::vector<int>{5});

	auto untyped = parse_gres_list("gpu:2,vslice:8(S:0,2)");
	ck_assert(untyped && (*untyped)[0].type.empty() && (*untyped)[0].count == 2);
	ck_assert_uint_eq((*untyped)[1].count, 8);
	auto named_only = parse_gres_list("gpu:tesla");
	ck_assert(named_only && (*named_only)[0].type == "tesla" && (*named_only)[0].count == 1);
	auto cnt = parse_gres_list("vslice:t4:2(CNT:2)");
	ck_assert(cnt && !(*cnt)[0].has_indices);
	ck_assert(parse_gres_list("(null)") && parse_gres_list("(null)")->empty());
	ck_assert(parse_gres_list("") && parse_gres_list("")->empty());

	ck_assert(!parse_gres_list("vslice:t4:x"));
	ck_assert(!parse_gres_list("vslice:t4:2(IDX:2-1)"));
	ck_assert(!parse_gres_list("vslice:t4:2(IDX:0-2"));
	ck_assert(!parse_gres_list("a:b:c:d"));
	auto why = parse_gres_list("gpu:1,vslice:t4:2(IDX:-1)");
	ck_assert(!why && why.error().find("vslice:t4:2(IDX:-1)") != std::string::npos);
	ck_assert(!parse_index_list("0-99999999"));
}
END_TEST

START_TEST(lending_rows_from_the_writer)
{
	BookSnapshot snap;
	snap.now = Instant(Seconds(1000));
	auto rows = std::make_shared<BookSnapshot::NodeRows>();
	rows->node = "cl1";
	BookSnapshot::SliceRow lent{.unit = 5, .device = 1, .m = {}};
	lent.m.state = SliceState::Lent;
	lent.m.owner = 41;
	lent.m.borrower = 42;
	lent.m.lent_at = Instant(Seconds(988));
	BookSnapshot::SliceRow busy{.unit = 6, .device = 1, .m = {}};
	busy.m.state = SliceState::OwnedBusy;
	busy.m.owner = 41;
	BookSnapshot::SliceRow free_row{.unit = 7, .device = 1, .m = {}};
	rows->rows = {lent, busy, free_row};
	snap.nodes.push_back(rows);
	snap.history.push_back("1700000000 JobId=9 reclaimed");

	auto parsed = parse_lending_status(snap.status_text());
	ck_assert_msg(parsed, "%s", parsed.error().c_str());
	ck_assert_uint_eq(parsed->size(), 2);
	const LendingRow &r = (*parsed)[0];
	ck_assert_str(r.node, "cl1");
	ck_assert_int_eq(r.slice, 5);
	ck_assert_int_eq(r.device, 1);
	ck_assert_str(r.state, "lent");
	ck_assert_uint_eq(r.owner, 41);
	ck_assert_uint_eq(r.borrower, 42);
	ck_assert(r.lent_seconds == 12);
	ck_assert_str((*parsed)[1].state, "owned-busy");
	ck_assert((*parsed)[1].borrower == 0 && !(*parsed)[1].lent_seconds);

	ck_assert(!parse_lending_status(""));
	ck_assert(!parse_lending_status("error: only root and SlurmUser may use flexslurm-lending\n"));
	ck_assert(
	        !parse_lending_status("NODE SLICE DEVICE STATE OWNER BORROWER SINCE\ncl1 x 0 lent - - -\n"));
}
END_TEST

START_TEST(devices_split_by_gpu_records)
{
	// Two T4 and one A100: four slices each, the layout's order.
	const NodeInput n =
	        node("cl1", "gpu:t4:2(S:0),gpu:a100:1(S:0),vslice:t4:8(S:0),vslice:a100:4(S:0)",
	             "gpu:t4:0(IDX:N/A),gpu:a100:0(IDX:N/A),vslice:t4:2(IDX:4-5),vslice:a100:0(IDX:N/A)");
	const NodeMap m = build_node(n, {}, nullptr);
	ck_assert_str(m.problem, "");
	ck_assert_uint_eq(m.devices.size(), 3);
	ck_assert(m.devices[0].index == 0 && m.devices[1].index == 1 && m.devices[2].index == 2);
	ck_assert_str(m.devices[2].model, "a100");
	ck_assert_int_eq(m.devices[1].first_slice, 4);
	ck_assert_int_eq(m.devices[2].first_slice, 8);
	ck_assert_int_eq(m.devices[1].counts.allocated, 2);
	ck_assert_int_eq(m.devices[0].counts.allocated, 0);
	// Allocated, but by a job the caller cannot see: no owner.
	ck_assert(m.devices[1].slices[0].allocated && !m.devices[1].slices[0].owner);
	ck_assert_int_eq(m.counts.total, 12);
	ck_assert_int_eq(m.counts.free(), 10);
	ck_assert_uint_eq(m.gpus_total, 3);

	// Untyped gpu records with one slice type; and counts that do not divide.
	const NodeMap u = build_node(node("n", "gpu:2,vslice:tesla_t4:8", "vslice:0(IDX:N/A)"), {}, nullptr);
	ck_assert_uint_eq(u.devices.size(), 2);
	ck_assert(u.devices[1].index == 1 && u.devices[1].counts.total == 4);
	const NodeMap odd = build_node(node("n", "gpu:t4:3,vslice:t4:8", ""), {}, nullptr);
	ck_assert_uint_eq(odd.devices.size(), 1);
	ck_assert(!odd.devices[0].index && odd.devices[0].counts.total == 8);
	const NodeMap none = build_node(node("n", "vslice:t4:4", ""), {}, nullptr);
	ck_assert(none.devices.size() == 1 && !none.devices[0].index);

	const NodeMap bad = build_node(node("n", "vslice:t4:4(IDX:", ""), {}, nullptr);
	ck_assert(bad.devices.empty() && bad.problem.find("Gres:") == 0);
}
END_TEST

START_TEST(owners_borrowers_and_lending_state)
{
	const NodeInput n = node("cl1", "gpu:t4:2(S:0),vslice:t4:8(S:0),vborrow:t4:8(S:0)",
	                         "gpu:t4:1(IDX:1),vslice:t4:2(IDX:0-1),vborrow:t4:1(IDX:1)");
	const std::vector<JobInput> jobs = {
	        {10, {{"cl1", "vslice:t4:2(IDX:0-1)"}}},
	        {11, {{"cl1", "vborrow:t4:1(IDX:1)"}}},
	        {12, {{"cl1", "gpu:t4:1(IDX:1)"}}},
	        {13, {{"cl2", "vslice:t4:1(IDX:3)"}}},
	};
	NodeMap m = build_node(n, jobs, nullptr);
	const SliceInfo &s1 = m.devices[0].slices[1];
	ck_assert(s1.owner == 10u && s1.borrower == 11u);
	ck_assert(!m.devices[0].slices[3].allocated);
	ck_assert_int_eq(m.devices[0].counts.lent, 1);
	ck_assert_int_eq(m.devices[0].counts.borrowed, 1);
	ck_assert(m.gpu_jobs == std::vector<uint32_t>{12});
	ck_assert_uint_eq(m.gpus_allocated, 1);

	// The controller's word decides lent: slice 0 reclaiming (its borrower
	// already gone from Slurm's view), slice 1 idle (not lent).
	const std::vector<LendingRow> rows = {{"cl1", 0, 0, "reclaiming", 10, 0, 30},
	                                      {"cl1", 1, 0, "idle", 10, 0, std::nullopt},
	                                      {"cl2", 0, 0, "lent", 5, 6, 1}};
	m = build_node(n, jobs, &rows);
	ck_assert_str(m.devices[0].slices[0].lending_state, "reclaiming");
	ck_assert(m.devices[0].slices[0].lent_seconds == 30);
	ck_assert_int_eq(m.devices[0].counts.lent, 1);
	ck_assert_int_eq(m.devices[1].counts.lent, 0);
}
END_TEST

START_TEST(filters_and_summary)
{
	const std::vector<NodeInput> nodes = {
	        node("cl1", "gpu:t4:2,vslice:t4:8", "vslice:t4:1(IDX:6)", {"debug", "gpu"}),
	        node("cl2", "gpu:t4:1,vslice:t4:4", "vslice:t4:0(IDX:N/A)", {"debug"}),
	        node("cpu1", "(null)", "", {"cpu"}),
	};
	const std::vector<JobInput> jobs = {{20, {{"cl1", "vslice:t4:1(IDX:6)"}}}};
	SliceMap all = build_map(nodes, jobs, nullptr, {});
	ck_assert_uint_eq(all.nodes.size(), 3);
	ck_assert_int_eq(all.devices, 3);
	ck_assert_int_eq(all.counts.total, 12);
	ck_assert_int_eq(all.counts.allocated, 1);

	ck_assert_uint_eq(build_map(nodes, jobs, nullptr, only_nodes({"cl2", "nope"})).nodes.size(), 1);
	SliceMap gpu = build_map(nodes, jobs, nullptr, only_partition("gpu"));
	ck_assert(gpu.nodes.size() == 1 && gpu.nodes[0].name == "cl1");
	SliceMap job = build_map(nodes, jobs, nullptr, only_job(20));
	ck_assert_uint_eq(job.nodes.size(), 1);
	ck_assert_uint_eq(job.nodes[0].devices.size(), 1);
	ck_assert(job.nodes[0].devices[0].index == 1);
	ck_assert_int_eq(job.counts.total, 4);
	ck_assert(build_map(nodes, jobs, nullptr, only_job(21)).nodes.empty());
}
END_TEST

START_TEST(json_and_text)
{
	const std::vector<NodeInput> nodes = {
	        node("cl1", "gpu:t4:1,vslice:t4:4,vborrow:t4:4", "vslice:t4:1(IDX:2),vborrow:t4:1(IDX:2)"),
	        node("cl\"2", "(null)", "")};
	const std::vector<JobInput> jobs = {{7, {{"cl1", "vslice:t4:1(IDX:2)"}}}};
	SliceMap map = build_map(nodes, jobs, nullptr, {});
	map.lending = LendingView::NotPermitted;
	map.lending_note = "only root and SlurmUser see the lending controller's state";
	const std::string j = map_json(map);
	ck_assert(j.rfind("{\"schema\": 2,", 0) == 0);
	ck_assert(j.find(" \"identities\": {\"note\": null},\n") != std::string::npos);
	ck_assert(j.find("\"view\": \"not-permitted\"") != std::string::npos);
	ck_assert(
	        j.find("\"summary\": {\"nodes\": 2, \"devices\": 1, \"slices\": {\"total\": 4, \"allocated\": 1, "
	               "\"free\": 3, \"lent\": 1, \"borrowed\": 1}}") != std::string::npos);
	ck_assert(
	        j.find("{\"index\": 0, \"model\": \"t4\", \"uuid\": null, \"pci_bus_id\": null, \"held_whole\": false, "
	               "\"whole_job\": null, \"first_slice\": 0") != std::string::npos);
	ck_assert(
	        j.find("{\"index\": 2, \"state\": \"lent\", \"owner\": 7, \"borrower\": null, \"lending_state\": null, "
	               "\"lent_seconds\": null}") != std::string::npos);
	ck_assert(j.find("\"name\": \"cl\\\"2\"") != std::string::npos);
	ck_assert(j.back() == '\n');

	const std::string t = map_text(map);
	ck_assert(t.rfind("NODE", 0) == 0);
	const size_t row = t.find("\ncl1 ");
	ck_assert(row != std::string::npos);
	const auto cells = words(std::string_view(t).substr(row + 1, t.find('\n', row + 1) - row - 1));
	ck_assert(cells ==
	          (std::vector<std::string_view>{"cl1", "0", "t4", "4", "1", "3", "1", "1", "7", "?"}));
	ck_assert(
	        t.find("cluster: 2 nodes, 1 devices, 4 slices: 1 allocated, 3 free, 1 lent, 1 borrowed\n") !=
	        std::string::npos);
	ck_assert(t.find("lending state: not shown (only root") != std::string::npos);
	ck_assert(t.find("GPUs held whole") == std::string::npos);

	// A type with control bytes (fuzz corpus slice_map/control_type) is escaped in the table.
	const std::string controls = std::string("vslice:a\x01") + '\0' + "b:4";
	const std::string c = map_text(build_map({node("n", controls, "")}, {}, nullptr, {}));
	ck_assert(c.find("a\\x01\\x00b") != std::string::npos);
	for (char ch : c)
		ck_assert(static_cast<unsigned char>(ch) >= 0x20 || ch == '\n');

	const std::vector<NodeInput> whole = {node("cl1", "gpu:t4:2,vslice:t4:8", "gpu:t4:1(IDX:1)")};
	const std::string w = map_text(build_map(whole, {{9, {{"cl1", "gpu:t4:1(IDX:1)"}}}}, nullptr, {}));
	ck_assert(
	        w.find("\ncl1: 1 of 2 GPUs held whole (jobs 9); their slices cannot be allocated meanwhile\n") !=
	        std::string::npos);
}
END_TEST

START_TEST(identities_and_whole_gpus_per_device)
{
	const std::vector<NodeInput> nodes = {
	        node("cl1", "gpu:t4:2(S:0),vslice:t4:8(S:0)", "gpu:t4:1(IDX:1),vslice:t4:1(IDX:0)"),
	        node("cl2", "gpu:t4:3,vslice:t4:8", "gpu:t4:1(IDX:2)")};
	const std::vector<JobInput> jobs = {{30, {{"cl1", "gpu:t4:1(IDX:1)"}}},
	                                    {31, {{"cl1", "vslice:t4:1(IDX:0)"}}}};
	const std::vector<NodeDeviceIds> ids = {
	        {"cl1",
	         {{1, "GPU-5eed0c01-1001-400c-8001-f1e55000c001", "0000:af:00.0"}, {7, "", "0000:01:00.0"}}},
	        {"cl9", {{0, "GPU-00000000-0000-0000-0000-000000000000", ""}}}};
	SliceMap map = build_map(nodes, jobs, nullptr, {}, &ids);
	const NodeMap &n = map.nodes[0];
	ck_assert(n.devices[0].uuid.empty() && n.devices[0].pci_bus_id.empty());
	ck_assert_str(n.devices[1].uuid, "GPU-5eed0c01-1001-400c-8001-f1e55000c001");
	ck_assert_str(n.devices[1].pci_bus_id, "0000:af:00.0");
	// gpu unit 1 held whole by job 30: device 1; device 0 holds job 31's slice.
	ck_assert(!n.devices[0].held_whole && n.devices[1].held_whole && n.devices[1].whole_job == 30u);
	// Three gpu units, one device group (8 slices do not split over 3): not marked.
	ck_assert(map.nodes[1].devices.size() == 1 && !map.nodes[1].devices[0].held_whole);
	const std::string j = map_json(map);
	ck_assert(
	        j.find("{\"index\": 1, \"model\": \"t4\", \"uuid\": \"GPU-5eed0c01-1001-400c-8001-f1e55000c001\", "
	               "\"pci_bus_id\": \"0000:af:00.0\", \"held_whole\": true, \"whole_job\": 30, ") !=
	        std::string::npos);
	const std::string t = map_text(map);
	std::string owners;
	for (std::string_view line : split(t, '\n')) {
		const auto cells = words(line);
		if (cells.size() == 10 && cells[0] == "cl1" && cells[1] == "1")
			owners = std::string(cells[8]);
	}
	ck_assert_msg(owners == "whole:30", "%s", t.c_str());
	// A user who cannot see job 30: held, by whom not shown.
	SliceMap hidden = build_map(nodes, {}, nullptr, {});
	ck_assert(hidden.nodes[0].devices[1].held_whole && !hidden.nodes[0].devices[1].whole_job);
	ck_assert(map_text(hidden).find("whole:?") != std::string::npos);
	// --job keeps the device a job holds whole.
	SliceMap only = build_map(nodes, jobs, nullptr, only_job(30), &ids);
	ck_assert(only.nodes.size() == 1 && only.nodes[0].devices.size() == 1 &&
	          only.nodes[0].devices[0].index == 1);
}
END_TEST

Suite *slice_map_suite()
{
	Suite *s = suite_create("slice_map");
	TCase *tc = tcase_create("slice_map");
	tcase_add_test(tc, gres_lists_as_slurm_writes_them);
	tcase_add_test(tc, lending_rows_from_the_writer);
	tcase_add_test(tc, devices_split_by_gpu_records);
	tcase_add_test(tc, owners_borrowers_and_lending_state);
	tcase_add_test(tc, filters_and_summary);
	tcase_add_test(tc, json_and_text);
	tcase_add_test(tc, identities_and_whole_gpus_per_device);
	suite_add_tcase(s, tc);
	return s;
}
