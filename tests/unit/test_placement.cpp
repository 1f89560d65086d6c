// SPDX-License-Identifier: GPL-2.0-or-later
// Placement and exclusivity on one node, as select/flex asks before every
// cons_tres job_test.
#include "suites.hpp"

#include "core/model/placement.hpp"

#include <algorithm>
#include <string>

using namespace flexslurm;

namespace
{

// `n` devices of `slices` each, typed t4, gpu unit = device index.
std::vector<DeviceView> node(int n, int slices)
{
	std::vector<DeviceView> d(static_cast<size_t>(n));
	for (int i = 0; i < n; ++i) {
		d[static_cast<size_t>(i)].type = "t4";
		d[static_cast<size_t>(i)].first_slice = i * slices;
		d[static_cast<size_t>(i)].slices = slices;
		d[static_cast<size_t>(i)].gpu_unit = i;
	}
	return d;
}

void use(std::vector<DeviceView> &devices, size_t dev, int count)
{
	DeviceView &d = devices[dev];
	for (int s = d.first_slice; count > 0 && s < d.first_slice + d.slices; ++s) {
		if (std::find(d.used_slices.begin(), d.used_slices.end(), s) == d.used_slices.end()) {
			d.used_slices.push_back(s);
			--count;
		}
	}
}

std::string chosen(const std::vector<DeviceView> &d, int slices, Placement p, const char *type = "",
                   Split split = Split::WhenLarger)
{
	auto c = choose_devices(d, slices, type, p, split);
	if (!c)
		return "none";
	std::string out;
	for (size_t i : *c)
		out += (out.empty() ? "" : ",") + std::to_string(i);
	return out;
}

// Places `slices` as select/flex would and records the use.
std::string place(std::vector<DeviceView> &d, int slices, Placement p)
{
	auto c = choose_devices(d, slices, "", p);
	ck_assert(c.has_value());
	int left = slices;
	for (size_t i : *c) {
		const int take = std::min(left, d[i].free_slices());
		use(d, i, take);
		left -= take;
	}
	return std::to_string((*c)[0]);
}

} // namespace

START_TEST(four_two_slice_jobs_best_fit_one_device)
{
	auto d = node(2, 8);
	std::string where;
	for (int j = 0; j < 4; ++j)
		where += place(d, 2, Placement::BestFit);
	ck_assert_str(where, "0000");
	ck_assert_int_eq(d[1].free_slices(), 8);
}
END_TEST

START_TEST(four_two_slice_jobs_spread_both_devices)
{
	auto d = node(2, 8);
	std::string where;
	for (int j = 0; j < 4; ++j)
		where += place(d, 2, Placement::Spread);
	ck_assert_str(where, "0101");
}
END_TEST

START_TEST(best_fit_leaves_least_free)
{
	auto d = node(3, 8);
	use(d, 0, 6); // 2 free
	use(d, 1, 3); // 5 free
	ck_assert_str(chosen(d, 2, Placement::BestFit), "0");
	ck_assert_str(chosen(d, 3, Placement::BestFit), "1");
	ck_assert_str(chosen(d, 6, Placement::BestFit), "2");
	ck_assert_str(chosen(d, 2, Placement::Spread), "2");
	// first-fit would straddle 0 and 1; best-fit keeps the job on one device
	ck_assert_str(chosen(d, 4, Placement::BestFit), "1");
}
END_TEST

START_TEST(more_than_one_device_whole_devices_first)
{
	auto d = node(4, 4);
	use(d, 0, 1); // 3 free
	use(d, 1, 3); // 1 free
	// 9 = two whole free devices (2, 3) + 1 best-fit (device 1)
	ck_assert_str(chosen(d, 9, Placement::BestFit), "1,2,3");
	ck_assert_str(chosen(d, 9, Placement::Spread), "0,2,3");
	ck_assert_str(chosen(d, 12, Placement::BestFit), "0,1,2,3");
	ck_assert_str(chosen(d, 13, Placement::BestFit), "none");
}
END_TEST

START_TEST(whole_device_is_never_sliced)
{
	auto d = node(2, 4);
	d[0].whole_used = true;
	ck_assert_str(chosen(d, 2, Placement::BestFit), "1");
	ck_assert_str(chosen(d, 5, Placement::BestFit), "none");
	UnitMasks m = masks_for(d, NodeRequest{2, "", false}, Placement::BestFit);
	ck_assert(m.slices == std::vector<int>({0, 1, 2, 3}));
	ck_assert(m.gpus.empty());
	// count unknown per node (multi-node --gres-per-job): exclusivity only
	m = masks_for(d, NodeRequest{-1, "", false}, Placement::BestFit);
	ck_assert(m.slices == std::vector<int>({0, 1, 2, 3}));
}
END_TEST

START_TEST(sliced_device_is_never_given_whole)
{
	auto d = node(3, 4);
	use(d, 1, 1);
	UnitMasks m = masks_for(d, NodeRequest{0, "", true}, Placement::BestFit);
	ck_assert(m.gpus == std::vector<int>({1}));
	ck_assert(m.slices.empty());
	d[2].gpu_unit = -1; // no gpu configured for it: nothing to hide
	use(d, 2, 1);
	m = masks_for(d, NodeRequest{0, "", true}, Placement::BestFit);
	ck_assert(m.gpus == std::vector<int>({1}));
}
END_TEST

START_TEST(masks_hide_free_slices_outside_the_choice)
{
	auto d = node(2, 4);
	use(d, 0, 3);
	UnitMasks m = masks_for(d, NodeRequest{1, "", false}, Placement::BestFit);
	ck_assert(m.slices == std::vector<int>({4, 5, 6, 7}));
	m = masks_for(d, NodeRequest{2, "", false}, Placement::BestFit);
	ck_assert(m.slices == std::vector<int>({3})); // device 1 chosen, free slice 3 of device 0 hidden
	m = masks_for(d, NodeRequest{0, "", false}, Placement::BestFit);
	ck_assert(m.slices.empty() && m.gpus.empty());
}
END_TEST

START_TEST(gpus_and_slices_in_one_job_get_different_devices)
{
	auto d = node(3, 4);
	use(d, 1, 3); // 1 free: best fit for one slice
	UnitMasks m = masks_for(d, NodeRequest{1, "", true}, Placement::BestFit);
	ck_assert(m.gpus == std::vector<int>({1})); // sliced, and chosen for its slice
	ck_assert(m.slices == std::vector<int>({0, 1, 2, 3, 8, 9, 10, 11})); // slices only on device 1
}
END_TEST

START_TEST(ties_stay_open_for_cons_tres_to_pick_by_cores)
{
	auto d = node(4, 4);
	use(d, 0, 2); // 2 free
	use(d, 2, 2); // 2 free, ties with device 0
	UnitMasks m = masks_for(d, NodeRequest{2, "", false}, Placement::BestFit);
	ck_assert(m.slices == std::vector<int>({4, 5, 6, 7, 12, 13, 14, 15})); // 0 and 2 open
	m = masks_for(d, NodeRequest{1, "", false}, Placement::Spread);        // 1 and 3 (4 free) tie
	ck_assert(m.slices == std::vector<int>({2, 3, 10, 11}));
	m = masks_for(d, NodeRequest{2, "", true}, Placement::BestFit); // with whole GPUs: no ties
	ck_assert(m.slices == std::vector<int>({4, 5, 6, 7, 10, 11, 12, 13, 14, 15}));
}
END_TEST

START_TEST(types_are_respected)
{
	auto d = node(2, 4);
	d[1].type = "a100";
	ck_assert_str(chosen(d, 2, Placement::BestFit, "a100"), "1");
	ck_assert_str(chosen(d, 5, Placement::BestFit, "a100"), "none");
	ck_assert_str(chosen(d, 2, Placement::Spread, ""), "0");
}
END_TEST

START_TEST(one_device_request_waits_instead_of_splitting)
{
	auto d = node(2, 8);
	use(d, 0, 7);
	use(d, 1, 7); // one free slice on each device
	ck_assert_str(chosen(d, 1, Placement::BestFit), "0");
	ck_assert_str(chosen(d, 2, Placement::BestFit), "none");
	ck_assert_str(chosen(d, 2, Placement::BestFit, "", Split::Allowed), "0,1");
	ck_assert_str(chosen(d, 3, Placement::BestFit, "", Split::Allowed), "none");
	// Nothing offered: cons_tres must not take one slice from each device.
	UnitMasks m = masks_for(d, NodeRequest{2, "", false}, Placement::BestFit);
	ck_assert(m.slices == std::vector<int>({7, 15}));
	NodeRequest split{2, "", false, Split::Allowed};
	m = masks_for(d, split, Placement::BestFit);
	ck_assert(m.slices.empty());
	// As soon as one device frees, the request goes there, whole.
	d[0].used_slices.clear();
	ck_assert_str(chosen(d, 2, Placement::BestFit), "0");
	m = masks_for(d, NodeRequest{2, "", false}, Placement::BestFit);
	ck_assert(m.slices == std::vector<int>({15}));
}
END_TEST

START_TEST(opted_in_split_still_prefers_one_device)
{
	auto d = node(3, 4);
	use(d, 0, 3);
	use(d, 1, 1); // 3 free
	ck_assert_str(chosen(d, 3, Placement::BestFit, "", Split::Allowed), "1");
	use(d, 2, 2); // 2 free
	ck_assert_str(chosen(d, 3, Placement::BestFit, "", Split::Allowed), "1");
	use(d, 1, 2); // 1 free on 0 and 1, 2 on 2: the fewest devices
	ck_assert_str(chosen(d, 3, Placement::BestFit, "", Split::Allowed), "0,2");
}
END_TEST

START_TEST(larger_than_any_device_is_split_without_opting_in)
{
	auto d = node(2, 4);
	d.push_back(d[1]);
	d[2].type = "a100";
	d[2].slices = 8;
	d[2].first_slice = 8;
	d[2].gpu_unit = 2;
	ck_assert(fits_one_device(d, 6, ""));
	ck_assert(!fits_one_device(d, 6, "t4"));
	ck_assert_str(chosen(d, 6, Placement::BestFit, "t4"), "0,1"); // no t4 holds 6
	use(d, 2, 4);
	ck_assert_str(chosen(d, 6, Placement::BestFit, ""), "none"); // the a100 could, when free
	// A device held whole still counts: the request waits for it.
	d[2].used_slices.clear();
	d[2].whole_used = true;
	ck_assert(fits_one_device(d, 6, ""));
	ck_assert_str(chosen(d, 6, Placement::BestFit, ""), "none");
	ck_assert_str(chosen(d, 6, Placement::BestFit, "", Split::Allowed), "0,1");
}
END_TEST

START_TEST(split_from_the_job_control_environment)
{
	ck_assert(split_from_env({"FLEXSLURM_VSLICE_SPLIT=1"}) == Split::Allowed);
	ck_assert(split_from_env({"A=b", "SPANK_FLEXSLURM_VSLICE_SPLIT=1"}) == Split::Allowed);
	ck_assert(split_from_env({}) == Split::WhenLarger);
	ck_assert(split_from_env({"FLEXSLURM_VSLICE_SPLIT=0"}) == Split::WhenLarger);
	ck_assert(split_from_env({"FLEXSLURM_VSLICE_SPLIT=10"}) == Split::WhenLarger);
	ck_assert(split_from_env({"FLEXSLURM_VSLICE_SPLITX=1"}) == Split::WhenLarger);
	ck_assert(split_from_env({"X_FLEXSLURM_VSLICE_SPLIT=1"}) == Split::WhenLarger);
}
END_TEST

START_TEST(policy_names)
{
	ck_assert(parse_placement("best_fit") == Placement::BestFit);
	ck_assert(parse_placement("spread") == Placement::Spread);
	ck_assert(!parse_placement("first_fit"));
	ck_assert_str(std::string(placement_name(Placement::Spread)), "spread");
}
END_TEST

// A mixed node (a T4 of 4 slices, then a 910B of 2): a request of both types
// is placed per type; one type alone never gets the other's slices.
// lending.free_slices: a slice job on a device prefers the free slices no
// borrower holds while they are enough for all of it, and takes borrowed
// ones (never waits) when they are not.
START_TEST(owners_prefer_unborrowed_free_slices)
{
	std::vector<DeviceView> d = node(2, 4);
	use(d, 1, 4);                  // device 1 full: device 0 is the one
	d[0].borrowed_slices = {0, 1}; // two free slices of device 0 lent
	const NodeRequest two{2, "", false, Split::WhenLarger};
	ck_assert(masks_for(d, two, Placement::BestFit) == (UnitMasks{{0, 1}, {}}));
	const NodeRequest three{3, "", false, Split::WhenLarger};
	ck_assert(masks_for(d, three, Placement::BestFit) == (UnitMasks{}));
	const NodeRequest unknown{-1, "", false, Split::WhenLarger};
	ck_assert(masks_for(d, unknown, Placement::BestFit) == (UnitMasks{}));
	d[0].borrowed_slices = {};
	ck_assert(masks_for(d, two, Placement::BestFit) == (UnitMasks{}));

	// Split over devices (more slices than a device has): device 1 whole,
	// then the rest from device 0, whose free slice 0 is lent. Slice 0 is
	// spared while the two together have enough others (six), not when the
	// request needs it too (seven). Device 2 is not chosen: hidden.
	std::vector<DeviceView> e = node(3, 4);
	e[0].used_slices = {3};     // device 0: slices 0-2 free
	e[0].borrowed_slices = {0}; // ... slice 0 lent
	use(e, 2, 3);               // device 2: slice 11 free
	const NodeRequest six{6, "", false, Split::WhenLarger};
	ck_assert(masks_for(e, six, Placement::BestFit) == (UnitMasks{{0, 11}, {}}));
	const NodeRequest seven{7, "", false, Split::WhenLarger};
	ck_assert(masks_for(e, seven, Placement::BestFit) == (UnitMasks{{11}, {}}));
}
END_TEST

// The same for whole devices: a gpu job whose count is known skips devices
// a borrower holds a free slice of while enough others are open, and takes
// them (never waits) when they are not; an unknown count spares nothing.
START_TEST(whole_gpu_owners_prefer_unborrowed_devices)
{
	std::vector<DeviceView> d = node(4, 4);
	use(d, 0, 1);               // device 0 has a slice in use: never whole
	d[1].borrowed_slices = {4}; // a free slice of device 1 lent
	d[3].whole_used = true;     // device 3 held whole
	NodeRequest one{0, "", true, Split::WhenLarger, 1};
	ck_assert(masks_for(d, one, Placement::BestFit) == (UnitMasks{{}, {0, 1}}));
	NodeRequest two = one;
	two.gpu_count = 2; // device 2 alone is not enough: device 1 is taken
	ck_assert(masks_for(d, two, Placement::BestFit) == (UnitMasks{{}, {0}}));
	NodeRequest unknown = one;
	unknown.gpu_count = 0;
	ck_assert(masks_for(d, unknown, Placement::BestFit) == (UnitMasks{{}, {0}}));
	NodeRequest other_type = one;
	other_type.gpu_type = "a100"; // no open device of that type: nothing spared
	ck_assert(masks_for(d, other_type, Placement::BestFit) == (UnitMasks{{}, {0}}));
	// Two slices too: they go to device 0 (best fit), the whole device to
	// device 2, and device 1 is spared.
	NodeRequest both = one;
	both.slices = 2;
	ck_assert(masks_for(d, both, Placement::BestFit).gpus == (std::vector<int>{0, 1}));
	// The rule alone, as mask_for_allocation uses it.
	auto open = [&](size_t i) { return d[i].used_slices.empty(); };
	ck_assert(lent_devices_to_spare(d, 1, "", open) == (std::vector<int>{1}));
	ck_assert(lent_devices_to_spare(d, 2, "", open).empty());
	ck_assert(lent_devices_to_spare(d, 1, "t4", open) == (std::vector<int>{1}));
}
END_TEST

START_TEST(several_types_are_placed_per_type)
{
	auto d = node(2, 4);
	d[1].type = "ascend910b";
	d[1].slices = 2;
	const NodeRequest t4{1, "t4", false}, npu{1, "ascend910b", false};
	UnitMasks m = masks_for(d, std::vector<NodeRequest>{t4, npu}, Placement::BestFit);
	ck_assert(m.slices.empty()); // each type's device stays offered
	ck_assert(m.gpus.empty());
	m = masks_for(d, std::vector<NodeRequest>{npu}, Placement::BestFit);
	ck_assert(m.slices == std::vector<int>({0, 1, 2, 3}));
	// the 910B full: nothing of it is offered, the T4 still is
	use(d, 1, 2);
	m = masks_for(d, std::vector<NodeRequest>{t4, npu}, Placement::BestFit);
	ck_assert(m.slices.empty()); // no free 910B slice is left to hide: cons_tres finds none
	m = masks_for(d, std::vector<NodeRequest>{t4, NodeRequest{2, "ascend910b", false}},
	              Placement::BestFit);
	ck_assert(m.slices.empty());
	// whole devices too: the chosen T4 is not given whole
	auto e = node(2, 4);
	e[1].type = "ascend910b";
	m = masks_for(e, std::vector<NodeRequest>{{1, "t4", true}, {1, "ascend910b", true}},
	              Placement::BestFit);
	ck_assert(m.gpus == std::vector<int>({0, 1}));
}
END_TEST

START_TEST(devices_free_up_as_their_holders_end)
{
	// two devices of 4: device 0 has slices held until 100 and 300, device 1
	// is held whole until 200
	auto d = node(2, 4);
	use(d, 0, 2);
	d[1].whole_used = true;
	const UnitEnds ends{{{0, 100}, {1, 300}}, {{1, 200}}};
	const NodeRequest gpu{0, "", true, Split::WhenLarger, 1};
	const NodeRequest gpus2{0, "", true, Split::WhenLarger, 2};
	const NodeRequest slices4{4, "", false};
	ck_assert(!devices_can_hold(d, {gpu}, Placement::BestFit));
	ck_assert(devices_at(d, ends, 100)[0].used_slices == std::vector<int>({1}));
	ck_assert(devices_at(d, ends, 199)[1].whole_used);
	ck_assert(!devices_at(d, ends, 200)[1].whole_used);
	// a whole GPU: device 1's holder ends first (a device whose slices are
	// partly back is still not whole)
	ck_assert(devices_ready_at(d, ends, {gpu}, Placement::BestFit, 50) == 200);
	ck_assert(devices_ready_at(d, ends, {gpus2}, Placement::BestFit, 50) == 300);
	// four slices on one device: device 1 once its whole holder ends
	ck_assert(devices_ready_at(d, ends, {slices4}, Placement::BestFit, 50) == 200);
	// two slices fit now on device 0
	ck_assert(devices_ready_at(d, ends, {NodeRequest{2, "", false}}, Placement::BestFit, 50) == 50);
	// a holder past its end may end any moment: just after now
	ck_assert(devices_ready_at(d, ends, {gpus2}, Placement::BestFit, 400) == 401);
	// more than the node has, or a unit no running job is known to hold
	ck_assert(!devices_ready_at(d, ends, {NodeRequest{0, "", true, Split::WhenLarger, 3}},
	                            Placement::BestFit, 50));
	ck_assert(!devices_ready_at(d, UnitEnds{{{0, 100}}, {{1, 200}}}, {gpus2}, Placement::BestFit, 50));
	// slices and a whole GPU in one job: different devices
	ck_assert(devices_ready_at(d, ends, {NodeRequest{1, "", true, Split::WhenLarger, 1}},
	                           Placement::BestFit, 50) == 200);
	ck_assert(!devices_can_hold(devices_at(d, ends, 200),
	                            {NodeRequest{4, "", true, Split::WhenLarger, 1}}, Placement::BestFit));
	ck_assert(devices_ready_at(d, ends, {NodeRequest{4, "", true, Split::WhenLarger, 1}},
	                           Placement::BestFit, 50) == 300);
	// the whole GPU's type
	ck_assert(!devices_ready_at(d, ends, {NodeRequest{0, "", true, Split::WhenLarger, 1, "a100"}},
	                            Placement::BestFit, 50));
}
END_TEST

START_TEST(running_ends_are_read_again_only_for_new_or_changed_jobs)
{
	RunningEnds running;
	int reads = 0;
	// job 7 holds slices 0-1 and job 9 gpu unit 1 of node 3; job 8 slice 2 of node 4
	auto units = [&](const std::vector<HeldBy> &jobs) {
		return [&reads, jobs](size_t i) {
			++reads;
			switch (jobs[i].job_id) {
			case 7:
				return std::vector<HeldUnit>{{3, false, 0}, {3, false, 1}};
			case 8:
				return std::vector<HeldUnit>{{4, false, 2}};
			default:
				return std::vector<HeldUnit>{{3, true, 1}};
			}
		};
	};
	std::vector<HeldBy> jobs{{9, 10, 500, 1, 1}, {7, 10, 100, 2, 1}, {8, 20, 300, 3, 1}};
	const auto first = running.read(jobs, units(jobs));
	ck_assert_int_eq(reads, 3);
	ck_assert_int_eq(first->at(3).slices.at(0), 100);
	ck_assert_int_eq(first->at(3).slices.at(1), 100);
	ck_assert_int_eq(first->at(3).gpus.at(1), 500);
	ck_assert_int_eq(first->at(4).slices.at(2), 300);
	ck_assert_int_eq(static_cast<long>(first->size()), 2);

	// the same jobs in another order: the same reading, nothing read
	std::vector<HeldBy> again{jobs[2], jobs[0], jobs[1]};
	ck_assert(running.read(again, units(again)) == first);
	ck_assert_int_eq(reads, 3);

	// a new time limit: new ends, the units not read again
	jobs[1].end = 150;
	const auto extended = running.read(jobs, units(jobs));
	ck_assert(extended != first);
	ck_assert_int_eq(reads, 3);
	ck_assert_int_eq(extended->at(3).slices.at(0), 150);
	ck_assert_int_eq(first->at(3).slices.at(0), 100); // a reading handed out stays as it was

	// job 8 ends; job 7 is requeued and starts again (its units read again)
	jobs = {{9, 10, 500, 1, 1}, {7, 60, 400, 2, 1}};
	const auto requeued = running.read(jobs, units(jobs));
	ck_assert_int_eq(reads, 4);
	ck_assert(requeued->find(4) == requeued->end());
	ck_assert_int_eq(requeued->at(3).slices.at(1), 400);

	// job 9 resized (another allocation record, fewer nodes): read again
	jobs[0] = {9, 10, 500, 4, 1};
	running.read(jobs, units(jobs));
	ck_assert_int_eq(reads, 5);
	jobs[0].nodes = 2;
	running.read(jobs, units(jobs));
	ck_assert_int_eq(reads, 6);
	// expanded again into the same record address and node count: its resize time says so
	jobs[0].resized = 70;
	running.read(jobs, units(jobs));
	ck_assert_int_eq(reads, 7);
	ck_assert_int_eq(static_cast<long>(running.units_read()), 7);
	// forgotten (node indices may have changed): every job read again
	running.forget();
	running.read(jobs, units(jobs));
	ck_assert_int_eq(reads, 9);

	// a unit two jobs list comes back at the later end
	std::vector<HeldBy> both{{1, 0, 900, 1, 1}, {2, 0, 200, 2, 1}};
	const auto shared = RunningEnds().read(both, [](size_t) {
		return std::vector<HeldUnit>{{0, true, 5}};
	});
	ck_assert_int_eq(shared->at(0).gpus.at(5), 900);
	// no running job: nothing held
	ck_assert(RunningEnds().read({}, [](size_t) { return std::vector<HeldUnit>{}; })->empty());
}
END_TEST

Suite *placement_suite()
{
	Suite *s = suite_create("placement");
	TCase *tc = tcase_create("placement");
	tcase_add_test(tc, four_two_slice_jobs_best_fit_one_device);
	tcase_add_test(tc, four_two_slice_jobs_spread_both_devices);
	tcase_add_test(tc, best_fit_leaves_least_free);
	tcase_add_test(tc, more_than_one_device_whole_devices_first);
	tcase_add_test(tc, whole_device_is_never_sliced);
	tcase_add_test(tc, sliced_device_is_never_given_whole);
	tcase_add_test(tc, masks_hide_free_slices_outside_the_choice);
	tcase_add_test(tc, gpus_and_slices_in_one_job_get_different_devices);
	tcase_add_test(tc, ties_stay_open_for_cons_tres_to_pick_by_cores);
	tcase_add_test(tc, types_are_respected);
	tcase_add_test(tc, one_device_request_waits_instead_of_splitting);
	tcase_add_test(tc, opted_in_split_still_prefers_one_device);
	tcase_add_test(tc, larger_than_any_device_is_split_without_opting_in);
	tcase_add_test(tc, split_from_the_job_control_environment);
	tcase_add_test(tc, policy_names);
	tcase_add_test(tc, several_types_are_placed_per_type);
	tcase_add_test(tc, owners_prefer_unborrowed_free_slices);
	tcase_add_test(tc, whole_gpu_owners_prefer_unborrowed_devices);
	tcase_add_test(tc, devices_free_up_as_their_holders_end);
	tcase_add_test(tc, running_ends_are_read_again_only_for_new_or_changed_jobs);
	suite_add_tcase(s, tc);
	return s;
}
