// SPDX-License-Identifier: GPL-2.0-or-later
// Device identity from Slurm's own gpu records: file ranges, gpu units
// (MIG, MultipleFiles), the NVIDIA driver's minor -> PCI answers, exclusions,
// and how the SPANK plugin maps SLURM_JOB_GPUS through them.
#include "suites.hpp"

#include "core/io/device_identity.hpp"
#include "core/io/isolation.hpp"
#include "core/model/job_env.hpp"
#include "core/model/slice_layout.hpp"
#include "slice_env_fixture.hpp"

#include <map>
#include <string>

using namespace flexslurm;

namespace
{

const char *h100_buses[] = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
                            "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"};

Inventory h100_node()
{
	auto inv = Inventory::from_xml_file(std::string(TOPOLOGY_DIR) + "/nvidia-8gpu-2numa.xml");
	ck_assert_msg(static_cast<bool>(inv), "%s", inv.error().c_str());
	return *inv;
}

std::optional<DeviceId> probe(const std::string &path, std::string &)
{
	return DeviceId{195, static_cast<uint32_t>(path.back() - '0')};
}

GresRecord gpu(const std::string &file, const std::string &type = "", const std::string &uid = "",
               bool multiple = false)
{
	GresRecord r;
	r.name = "gpu";
	r.file = file;
	r.type = type;
	r.unique_id = uid;
	r.multiple_files = multiple;
	return r;
}

std::vector<GpuUnit> units_of(const std::vector<GresRecord> &records)
{
	std::vector<std::string> problems;
	auto units = gpu_units_of(records, problems);
	ck_assert_msg(problems.empty(), "%s", problems.empty() ? "" : problems[0].c_str());
	return units;
}

// What /proc/driver/nvidia/gpus/<bus>/information says, minor m on bus `bus`.
std::string information(int minor, const std::string &bus, const std::string &uuid)
{
	return "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 42\nGPU UUID: \t " + uuid +
	       "\nVideo BIOS: \t 96.00.5e.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\n"
	       "Bus Location: \t " +
	       bus + "\nDevice Minor: \t " + std::to_string(minor) + "\nGPU Excluded:\t No\n";
}

// A driver whose minor numbers run against the PCI order: minor m is on
// the (7 - m)-th bus.
std::vector<NvidiaGpuInfo> reversed_driver()
{
	std::map<std::string, std::string> files;
	std::vector<std::string> entries{".", ".."};
	for (int m = 0; m < 8; ++m) {
		const std::string bus = h100_buses[7 - m];
		files["/proc/gpus/" + bus + "/information"] = information(
		        m, bus, "GPU-0000000" + std::to_string(m) + "-aaaa-bbbb-cccc-dddddddddddd");
		entries.push_back(bus);
	}
	auto list = [&](const std::string &) { return entries; };
	auto read = [&](const std::string &p) -> std::optional<std::string> {
		auto it = files.find(p);
		return it == files.end() ? std::nullopt : std::optional<std::string>(it->second);
	};
	auto gpus = read_nvidia_gpus("/proc/gpus", list, read);
	ck_assert_uint_eq(gpus.size(), 8);
	return gpus;
}

std::string join(const std::vector<std::string> &v)
{
	std::string out;
	for (const auto &s : v)
		out += (out.empty() ? "" : " ") + s;
	return out;
}

std::string env_value(const std::vector<EnvVar> &env, const std::string &name)
{
	for (const EnvVar &v : env)
		if (v.name == name)
			return v.value;
	return "<unset>";
}

} // namespace

START_TEST(file_ranges_expand_as_slurm_writes_them)
{
	auto a = expand_device_files("/dev/nvidia[0-3]");
	ck_assert(static_cast<bool>(a));
	ck_assert_str(join(*a), "/dev/nvidia0 /dev/nvidia1 /dev/nvidia2 /dev/nvidia3");
	ck_assert_str(join(*expand_device_files("/dev/nvidia[1,3-4]")),
	              "/dev/nvidia1 /dev/nvidia3 /dev/nvidia4");
	ck_assert_str(join(*expand_device_files("/dev/dri/renderD[128-129]")),
	              "/dev/dri/renderD128 /dev/dri/renderD129");
	ck_assert_str(join(*expand_device_files("/dev/davinci7")), "/dev/davinci7");
	for (const char *bad : {"/dev/nvidia[3-1]", "/dev/nvidia[a]", "/dev/nvidia[0-", "/dev/nvidia]",
	                        "/dev/nvidia[0-9999]", "/dev/nvidia[1][2]", "", "/dev/nvidia[]"})
		ck_assert_msg(!expand_device_files(bad), "accepted %s", bad);
}
END_TEST

START_TEST(gpu_units_follow_slurms_record_order)
{
	GresRecord cpu;
	cpu.name = "vslice";
	cpu.file = "/dev/nvidia0";
	auto units = units_of({gpu("/dev/nvidia[2-3]", "h100"), cpu, gpu("/dev/nvidia0"),
	                       gpu("/dev/nvidia1,/dev/nvidia-caps/nvidia-cap21,/dev/nvidia-caps/nvidia-cap22",
	                           "h100_1g.10gb", "MIG-11111111-2222-3333-4444-555555555555", true)});
	ck_assert_uint_eq(units.size(), 4);
	ck_assert_str(units[0].path, "/dev/nvidia2");
	ck_assert_str(units[1].path, "/dev/nvidia3");
	ck_assert_str(units[2].path, "/dev/nvidia0");
	ck_assert_str(units[2].type, "");
	ck_assert_str(units[3].path, "/dev/nvidia1");
	ck_assert(units[3].mig && !units[0].mig);
	ck_assert_int_eq(units[3].unit, 3);

	std::vector<std::string> problems;
	auto some =
	        gpu_units_of({gpu("dev/nvidia0"), gpu("/dev/nvidia[9-1]"), gpu("/dev/nvidia4")}, problems);
	ck_assert_uint_eq(some.size(), 1);
	ck_assert_uint_eq(problems.size(), 2);
	ck_assert_int_eq(some[0].unit, 0);
}
END_TEST

START_TEST(nvidia_driver_information_is_parsed_strictly)
{
	auto info = parse_nvidia_information(information(3, "0000:18:00.0", "GPU-abc"));
	ck_assert(info.has_value());
	ck_assert_int_eq(info->minor, 3);
	ck_assert_str(info->pci_bus_id, "0000:18:00.0");
	ck_assert_str(info->uuid, "GPU-abc");
	ck_assert_str(info->model, "NVIDIA H100 80GB HBM3");
	ck_assert(!parse_nvidia_information("Model: x\nDevice Minor: 1\n")); // no bus
	ck_assert(!parse_nvidia_information("Bus Location: 0000:18:00.0\nDevice Minor: -1\n"));
	ck_assert(!parse_nvidia_information("Bus Location: zz\nDevice Minor: 1\n"));
	// Found by tests/fuzz/fuzz_nvidia_info: control characters (a tab, here)
	// went into the tab-separated layout file, which slurmstepd then refused.
	auto odd = parse_nvidia_information("Model: NVIDIA\tH100\nGPU UUID: GPU-\x01\x7f\n"
	                                    "Bus Location: 0000:18:00.0\nDevice Minor: 0\n");
	ck_assert(odd.has_value());
	ck_assert_str(odd->model, "");
	ck_assert_str(odd->uuid, "");
	ck_assert_str(odd->pci_bus_id, "0000:18:00.0");
	ck_assert_str(gres_types_order_problem("gpu,vslice,vborrow"), "");
	ck_assert_str(gres_types_order_problem("mps,gpu,vslice"), "");
	ck_assert_str(gres_types_order_problem("vslice"), "");
	ck_assert(gres_types_order_problem("vslice, GPU").find("names vslice before gpu") !=
	          std::string::npos);
	ck_assert_str(normalize_pci_bus_id("00000000:18:00.0"), "0000:18:00.0");
	ck_assert_str(normalize_pci_bus_id("18:00.0"), "0000:18:00.0");
	ck_assert_str(normalize_pci_bus_id("0000:DB:00.0"), "0000:db:00.0");
	ck_assert_str(normalize_pci_bus_id("0000:18:00"), "");
	ck_assert_str(normalize_pci_bus_id("0000:18:20.0"), "");
}
END_TEST

START_TEST(minor_numbers_against_pci_order_keep_each_file_with_its_gpu)
{
	// gres.conf lists /dev/nvidia0..7; the driver put minor 0 on the last bus.
	const auto found = identify_devices(h100_node(), "/dev",
	                                    units_of({gpu("/dev/nvidia[0-7]", "nvidia_h100_80gb_hbm3")}),
	                                    reversed_driver(), {});
	ck_assert_uint_eq(found.sliced.size(), 8);
	const Accelerator &first = found.sliced[0]; // gpu unit 0
	ck_assert_str(first.device_nodes.at(0), "/dev/nvidia0");
	ck_assert_str(first.pci_bus_id, "0000:db:00.0");
	ck_assert_int_eq(first.vendor_index, 7); // CUDA's PCI_BUS_ID order
	ck_assert_str(first.model, "nvidia_h100_80gb_hbm3");
	ck_assert_str(first.uuid, "GPU-00000000-aaaa-bbbb-cccc-dddddddddddd");
	ck_assert_int_eq(first.numa_node, 1); // where bus db sits, not bus 18
	ck_assert(found.report[0].find("/dev/nvidia0: type nvidia_h100_80gb_hbm3, UUID GPU-00000000") !=
	          std::string::npos);
	ck_assert(found.report[0].find("NVIDIA driver") != std::string::npos);

	// The job environment numbers a job's devices in PCI order.
	SliceLayout l = SliceLayout::build(found, Config::defaults(), probe);
	// Slices 0-3 are /dev/nvidia0 (PCI 7th), 28-31 /dev/nvidia7 (PCI 0th).
	auto env = slice_environment(l, {0, 28}, DeviceNumbering::Physical);
	ck_assert_str(env_value(env, "CUDA_VISIBLE_DEVICES"), "0,7");
	ck_assert_str(env_value(env, "SLURM_VSLICE_DEVICES"), "0,7");
	// ... and the SPANK plugin maps those back to the right files.
	auto held = devices_of(l, "0,7");
	ck_assert_uint_eq(held.size(), 2);
	ck_assert_str(held[0]->device_path, "/dev/nvidia7");
	ck_assert_str(held[1]->device_path, "/dev/nvidia0");
	// SLURM_JOB_GPUS=2 is gpu unit 2, /dev/nvidia2, whatever its PCI place.
	ck_assert_str(join(held_device_paths(l, {}, "2")), "/dev/nvidia2");
}
END_TEST

START_TEST(untyped_records_without_driver_keep_hwloc_type_and_number_order)
{
	const auto found = identify_devices(h100_node(), "/dev", units_of({gpu("/dev/nvidia[0-7]")}), {}, {});
	ck_assert_uint_eq(found.sliced.size(), 8);
	ck_assert_str(found.sliced[3].model, "h100");
	ck_assert_str(found.sliced[3].pci_bus_id, "0000:5d:00.0");
	ck_assert(found.report[3].find("assumed in device-number order") != std::string::npos);

	// No records at all: hwloc alone, its device names under device_dir.
	const auto hw = identify_devices(h100_node(), "/d/", {}, {}, {});
	ck_assert_str(hw.sliced[2].device_nodes[0], "/d/nvidia2");
	ck_assert(hw.report[2].find("(hwloc)") != std::string::npos);
}
END_TEST

START_TEST(mig_and_excluded_devices_are_never_sliced_but_stay_accelerators)
{
	// GPU 0 in MIG mode (two instances), GPU 1 plain, GPUs 2-7 plain; GPU 5
	// excluded by UUID, GPU 6 by PCI bus id.
	auto units = units_of({gpu("/dev/nvidia0,/dev/nvidia-caps/nvidia-cap21", "nvidia_h100_1g.10gb",
	                           "MIG-aaaaaaaa-0000-0000-0000-000000000001", true),
	                       gpu("/dev/nvidia0,/dev/nvidia-caps/nvidia-cap30", "nvidia_h100_3g.40gb",
	                           "MIG-aaaaaaaa-0000-0000-0000-000000000002", true),
	                       gpu("/dev/nvidia[1-7]", "nvidia_h100_80gb_hbm3")});
	ck_assert_uint_eq(units.size(), 9);
	auto driver = reversed_driver();
	const auto found = identify_devices(h100_node(), "/dev", units, driver,
	                                    {"GPU-00000005-AAAA-bbbb-cccc-dddddddddddd", "ab:00.0"});
	// minor 6 sits on bus 2a... (7-6 = 1st): the exclusion by bus ab:00.0 hits minor 2.
	ck_assert_uint_eq(found.sliced.size(), 5);
	for (const Accelerator &a : found.sliced)
		ck_assert(a.device_nodes[0] != "/dev/nvidia0" && a.device_nodes[0] != "/dev/nvidia5" &&
		          a.device_nodes[0] != "/dev/nvidia2");
	ck_assert_str(join(found.unsliced), "/dev/nvidia0 /dev/nvidia2 /dev/nvidia5");
	ck_assert(found.report[0].find("MIG mode") != std::string::npos);
	ck_assert(found.report.back().find("warning: an excluded GPU has type nvidia_h100_80gb_hbm3") == 0);

	SliceLayout l = SliceLayout::build(found, Config::defaults(), probe);
	ck_assert_int_eq(l.total_slices(), 20);
	// A job holding MIG instance 1 (SLURM_JOB_GPUS=1) keeps /dev/nvidia0
	// and nothing else; a slice job does not see /dev/nvidia0.
	IsolationPlan mig = plan_isolation(l, held_device_paths(l, {}, "1"));
	ck_assert_str(join(mig.visible), "/dev/nvidia0");
	ck_assert_uint_eq(mig.hidden.size(), 7);
	IsolationPlan slice = plan_isolation(
	        l, held_device_paths(l, devices_of(l, std::to_string(l.devices()[0].vendor_index)), ""));
	ck_assert_str(join(slice.visible), l.devices()[0].device_path);
	ck_assert(join(slice.hidden).find("/dev/nvidia0") != std::string::npos);

	// The whole picture travels to slurmstepd and back.
	auto back = SliceLayout::deserialize(l.serialize());
	ck_assert_msg(static_cast<bool>(back), "%s", back.error().c_str());
	ck_assert_str(back->serialize(), l.serialize());
	ck_assert_uint_eq(back->gpu_units().size(), 9);
	ck_assert(back->gpu_units()[1].mig);
	ck_assert_str(back->devices()[0].uuid, l.devices()[0].uuid);
	ck_assert_str(join(back->unsliced()), "/dev/nvidia0 /dev/nvidia2 /dev/nvidia5");

	// Memory no slice reserved (what borrowers get) travels too.
	auto lend = Config::from_string("version: 1\nslicing:\n  default: {slices: 4, memory_percent: 20}\n",
	                                "t.yaml");
	ck_assert(static_cast<bool>(lend));
	SliceLayout lent = SliceLayout::build(found, *lend, probe);
	ck_assert_uint_gt(lent.devices()[0].borrow_memory_bytes, 0);
	auto lent_back = SliceLayout::deserialize(lent.serialize());
	ck_assert(static_cast<bool>(lent_back));
	ck_assert_uint_eq(lent_back->devices()[0].borrow_memory_bytes, lent.devices()[0].borrow_memory_bytes);
}
END_TEST

START_TEST(exclusion_by_type_and_class_rules_by_autodetect_type)
{
	auto c = Config::from_string("version: 1\nslicing:\n  exclude: [nvidia_h100_80gb_hbm3]\n", "t.yaml");
	ck_assert_msg(static_cast<bool>(c), "%s", c.error().c_str());
	auto found = identify_devices(h100_node(), "/dev",
	                              units_of({gpu("/dev/nvidia[0-7]", "nvidia_h100_80gb_hbm3")}), {},
	                              c->exclude);
	ck_assert_uint_eq(found.sliced.size(), 0);
	ck_assert_uint_eq(found.unsliced.size(), 8);

	// A class written for the short model still applies to AutoDetect's type.
	auto rules = Config::from_string(
	        "version: 1\nslicing:\n  classes:\n    - {vendor: nvidia, model: h100, slices: 8}\n",
	        "t.yaml");
	ck_assert(static_cast<bool>(rules));
	found = identify_devices(h100_node(), "/dev",
	                         units_of({gpu("/dev/nvidia[0-7]", "nvidia_h100_80gb_hbm3")}), {}, {});
	ck_assert_int_eq(SliceLayout::build(found, *rules, probe).total_slices(), 64);

	for (const char *bad : {"slicing:\n  exclude: foo\n", "slicing:\n  exclude: [\"a b\"]\n",
	                        "slicing:\n  exclude: [\"\"]\n"}) {
		auto r = Config::from_string(std::string("version: 1\n") + bad, "t.yaml");
		ck_assert_msg(!r, "accepted %s", bad);
		ck_assert_msg(r.error().find("t.yaml:") == 0 &&
		                      r.error().find("slicing.exclude") != std::string::npos,
		              "%s", r.error().c_str());
	}
}
END_TEST

// Ascend vNPUs: gres.conf lists their own device files (/dev/vdavinci<vNPU id>, cut by the
// admin with npu-smi); each is a device of its own, placed where its physical NPU sits, and
// that NPU is never sliced beside them (its node stays hidden from every job).
START_TEST(ascend_vnpus_are_devices_of_their_own)
{
	auto inv = Inventory::from_xml_file(std::string(TOPOLOGY_DIR) + "/ascend-8npu.xml");
	ck_assert_msg(static_cast<bool>(inv), "%s", inv.error().c_str());
	ck_assert(vnpu_of_node("/dev/vdavinci116").has_value());
	ck_assert_int_eq(vnpu_of_node("/dev/vdavinci116")->parent, 1); // npu-smi: 100 + 16 x chip
	ck_assert(!vnpu_of_node("/dev/davinci1") && !vnpu_of_node("/dev/vdavinci99") &&
	          !vnpu_of_node("/dev/vdavinci1x"));
	const auto found = identify_devices(
	        *inv, "/dev",
	        units_of({gpu("/dev/vdavinci[100-101]", "vir04"), gpu("/dev/davinci1", "ascend910b")}), {},
	        {});
	ck_assert_str(join(found.unsliced), "/dev/davinci0");
	ck_assert_uint_eq(found.sliced.size(), 9); // two vNPUs, davinci1 (record), davinci2-7 (hwloc)
	ck_assert_str(found.sliced[0].device_nodes[0], "/dev/vdavinci100");
	ck_assert_int_eq(found.sliced[0].vendor_index, 100);
	ck_assert_str(found.sliced[0].model, "vir04");
	ck_assert_str(found.sliced[1].pci_bus_id, inv->accelerators[0].pci_bus_id);
	ck_assert(found.report[0].find("vNPU 100 of NPU 0") != std::string::npos);
	for (const Accelerator &a : found.sliced)
		ck_assert(a.device_nodes[0] != "/dev/davinci0");

	// One slice per vNPU (the template binds AI Core and memory), four per whole NPU.
	auto c = Config::from_string(
	        "version: 1\nslicing:\n  default: {slices: 4}\n  classes:\n    - {vendor: ascend, model: vir04, slices: 1}\n",
	        "t.yaml");
	ck_assert_msg(static_cast<bool>(c), "%s", c.error().c_str());
	SliceLayout l = SliceLayout::build(found, *c, probe);
	const DeviceSlices *v100 = l.devices_named({100}, {Vendor::Ascend})[0];
	ck_assert(v100 != nullptr);
	ck_assert_int_eq(v100->slices, 1);
	auto env = slice_environment(l, {v100->first_slice}, DeviceNumbering::Physical);
	ck_assert_str(env_value(env, "ASCEND_VISIBLE_DEVICES"), "100");
	ck_assert_str(env_value(env, "ASCEND_RUNTIME_OPTIONS"), "VIRTUAL");
	ck_assert_str(env_value(env, "ASCEND_RT_VISIBLE_DEVICES"), "100");
	ck_assert_str(env_value(slice_environment(l, {v100->first_slice}, DeviceNumbering::Local),
	                        "ASCEND_RT_VISIBLE_DEVICES"),
	              "0");
	// a vNPU and a whole NPU's slice: both visible, the vNPU alone by its id, no VIRTUAL
	const DeviceSlices *npu1 = l.devices_named({1}, {Vendor::Ascend})[0];
	env = slice_environment(l, {v100->first_slice, npu1->first_slice}, DeviceNumbering::Physical);
	ck_assert_str(env_value(env, "ASCEND_RT_VISIBLE_DEVICES"), "1,100");
	ck_assert_str(env_value(env, "ASCEND_VISIBLE_DEVICES"), "100");
	ck_assert_str(env_value(env, "ASCEND_RUNTIME_OPTIONS"), "<unset>");
	// whole NPUs only: no vNPU variables
	env = slice_environment(l, {npu1->first_slice}, DeviceNumbering::Physical);
	ck_assert_str(env_value(env, "ASCEND_VISIBLE_DEVICES"), "<unset>");
	// the job sees its vNPU's node only: the parent NPU and the other vNPU stay hidden
	IsolationPlan plan = plan_isolation(l, held_device_paths(l, devices_of(l, "100"), ""));
	ck_assert_str(join(plan.visible), "/dev/vdavinci100");
	ck_assert(join(plan.hidden).find("/dev/davinci0") != std::string::npos);
	ck_assert(join(plan.hidden).find("/dev/vdavinci101") != std::string::npos);
}
END_TEST

Suite *device_identity_suite()
{
	Suite *s = suite_create("device_identity");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, file_ranges_expand_as_slurm_writes_them);
	tcase_add_test(tc, gpu_units_follow_slurms_record_order);
	tcase_add_test(tc, nvidia_driver_information_is_parsed_strictly);
	tcase_add_test(tc, minor_numbers_against_pci_order_keep_each_file_with_its_gpu);
	tcase_add_test(tc, untyped_records_without_driver_keep_hwloc_type_and_number_order);
	tcase_add_test(tc, mig_and_excluded_devices_are_never_sliced_but_stay_accelerators);
	tcase_add_test(tc, exclusion_by_type_and_class_rules_by_autodetect_type);
	tcase_add_test(tc, ascend_vnpus_are_devices_of_their_own);
	suite_add_tcase(s, tc);
	return s;
}
