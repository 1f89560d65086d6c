// SPDX-License-Identifier: GPL-2.0-or-later
// What a job sees: visible devices per vendor, numbering, and limits.
#include "suites.hpp"

#include "core/io/inventory.hpp"
#include "core/model/job_env.hpp"

#include <map>
#include <string>

using namespace flexslurm;

namespace
{

std::optional<DeviceId> fake_probe(const std::string &, std::string &)
{
	return DeviceId{1, 7};
}

SliceLayout layout_of(const char *file, const char *yaml = "version: 1\n")
{
	auto inv = Inventory::from_xml_file(std::string(TOPOLOGY_DIR) + "/" + file);
	ck_assert_msg(static_cast<bool>(inv), "%s", inv.error().c_str());
	auto cfg = Config::from_string(yaml, "test.yaml");
	ck_assert_msg(static_cast<bool>(cfg), "%s", cfg.error().c_str());
	return SliceLayout::build(*inv, *cfg, "/dev", fake_probe);
}

std::string render(const std::vector<EnvVar> &env)
{
	std::string out;
	for (const EnvVar &v : env)
		out += v.name + "=" + v.value + "\n";
	return out;
}

} // namespace

START_TEST(two_slices_of_one_h100)
{
	SliceLayout l = layout_of("nvidia-8gpu-2numa.xml", "slicing: {default: {slices: 8}}");
	// slices 40,41 are on device 5 (8 slices each)
	ck_assert_str(render(slice_environment(l, {40, 41}, DeviceNumbering::Local)).c_str(),
	              "CUDA_VISIBLE_DEVICES=0\n"
	              "CUDA_DEVICE_ORDER=PCI_BUS_ID\n"
	              "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=24\n"
	              "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=19660M\n"
	              "SLURM_VSLICES_ON_NODE=2\n"
	              "SLURM_VSLICE_DEVICES=5\n"
	              "SLURM_VSLICE_COUNTS=2\n"
	              "SLURM_VSLICE_POSITIONS=0+1\n"
	              "SLURM_VSLICE_COMPUTE_PERCENT=24\n"
	              "SLURM_VSLICE_MEMORY_LIMIT_MIB=19660\n");
}
END_TEST

START_TEST(slices_on_two_devices_physical_numbering)
{
	SliceLayout l = layout_of("nvidia-8gpu-2numa.xml");
	// 4 slices per device: 1 slice of device 2, 3 slices of device 7
	auto env = slice_environment(l, {29, 30, 8, 31}, DeviceNumbering::Physical);
	ck_assert_str(render(env).c_str(), "CUDA_VISIBLE_DEVICES=2,7\n"
	                                   "CUDA_DEVICE_ORDER=PCI_BUS_ID\n"
	                                   "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25\n"
	                                   "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=20480M,1=61440M\n"
	                                   "SLURM_VSLICES_ON_NODE=4\n"
	                                   "SLURM_VSLICE_DEVICES=2,7\n"
	                                   "SLURM_VSLICE_COUNTS=1,3\n"
	                                   "SLURM_VSLICE_POSITIONS=0,1+2+3\n"
	                                   "SLURM_VSLICE_COMPUTE_PERCENT=25,75\n"
	                                   "SLURM_VSLICE_MEMORY_LIMIT_MIB=20480,61440\n");
	auto local = slice_environment(l, {29, 30, 8, 31}, DeviceNumbering::Local);
	ck_assert_str(local.at(0).value.c_str(), "0,1");
}
END_TEST

START_TEST(amd_and_ascend_variables)
{
	SliceLayout mi =
	        layout_of("amd-4gpu.xml", "slicing: {classes: [{vendor: amd, device_memory: 64GiB}]}");
	auto env = slice_environment(mi, {12}, DeviceNumbering::Physical);
	ck_assert_str(render(env).c_str(), "ROCR_VISIBLE_DEVICES=3\n"
	                                   "SLURM_VSLICES_ON_NODE=1\n"
	                                   "SLURM_VSLICE_DEVICES=3\n"
	                                   "SLURM_VSLICE_COUNTS=1\n"
	                                   "SLURM_VSLICE_POSITIONS=0\n"
	                                   "SLURM_VSLICE_COMPUTE_PERCENT=25\n"
	                                   "SLURM_VSLICE_MEMORY_LIMIT_MIB=16384\n");
	SliceLayout npu = layout_of("ascend-8npu.xml");
	auto npu_env = slice_environment(npu, {0, 1, 2, 3, 4}, DeviceNumbering::Local);
	ck_assert_str(npu_env.at(0).name.c_str(), "ASCEND_RT_VISIBLE_DEVICES");
	ck_assert_str(npu_env.at(0).value.c_str(), "0,1");
	ck_assert_str(npu_env.back().value.c_str(), "0,0"); // memory unknown
	for (const EnvVar &v : npu_env)
		ck_assert(v.name.rfind("CUDA", 0) != 0);
}
END_TEST

START_TEST(mps_limits_omitted_when_memory_unknown)
{
	SliceLayout l = layout_of("nvidia-8gpu-2numa.xml");
	// A layout from slurmd without memory (e.g. topology without CUDA info)
	std::string text = l.serialize();
	auto no_mem = SliceLayout::deserialize(
	        "flexslurm-layout 1\nnvidia\t0\tt4\t/dev/nvidia0\t195:0\t0\t4\t25\t0\t\n");
	ck_assert(static_cast<bool>(no_mem));
	std::string env = render(slice_environment(*no_mem, {0}, DeviceNumbering::Local));
	ck_assert(env.find("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT") == std::string::npos);
	ck_assert(env.find("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25\n") != std::string::npos);
	ck_assert(!text.empty());
}
END_TEST

// A mixed node (tests/topologies: a T4 and an Ascend 910B) with a slicing
// class per vendor: each device its class's slices, each job its vendor's
// variable only, and SLURM_VSLICE_VENDORS beside the per-vendor indices.
START_TEST(mixed_node_per_vendor_classes_and_variables)
{
	SliceLayout l = layout_of("cluster-mixed-nvidia-ascend.xml",
	                          "slicing: {default: {slices: 4}, classes: [{vendor: ascend, slices: 2, "
	                          "device_memory: 64GiB}]}");
	ck_assert_uint_eq(l.devices().size(), 2);
	ck_assert(l.devices()[0].vendor == Vendor::Nvidia);
	ck_assert_int_eq(l.devices()[0].slices, 4);
	ck_assert_str(l.devices()[0].model.c_str(), "t4");
	ck_assert(l.devices()[1].vendor == Vendor::Ascend);
	ck_assert_int_eq(l.devices()[1].slices, 2);
	ck_assert_int_eq(l.devices()[1].first_slice, 4);
	ck_assert_int_eq(l.devices()[1].vendor_index, 0);
	ck_assert_str(render(slice_environment(l, {4}, DeviceNumbering::Local)).c_str(),
	              "ASCEND_RT_VISIBLE_DEVICES=0\n"
	              "SLURM_VSLICES_ON_NODE=1\n"
	              "SLURM_VSLICE_DEVICES=0\n"
	              "SLURM_VSLICE_VENDORS=ascend\n"
	              "SLURM_VSLICE_COUNTS=1\n"
	              "SLURM_VSLICE_POSITIONS=0\n"
	              "SLURM_VSLICE_COMPUTE_PERCENT=50\n"
	              "SLURM_VSLICE_MEMORY_LIMIT_MIB=32768\n");
	const std::string t4 = render(slice_environment(l, {1}, DeviceNumbering::Local));
	ck_assert_msg(t4.find("CUDA_VISIBLE_DEVICES=0\n") != std::string::npos, "%s", t4.c_str());
	ck_assert_msg(t4.find("SLURM_VSLICE_VENDORS=nvidia\n") != std::string::npos, "%s", t4.c_str());
	ck_assert_msg(t4.find("ASCEND") == std::string::npos, "%s", t4.c_str());
	const std::string both = render(slice_environment(l, {5, 0}, DeviceNumbering::Local));
	ck_assert_msg(both.find("SLURM_VSLICE_DEVICES=0,0\nSLURM_VSLICE_VENDORS=nvidia,ascend\n") !=
	                      std::string::npos,
	              "%s", both.c_str());
}
END_TEST

START_TEST(nothing_held_sets_nothing)
{
	SliceLayout l = layout_of("cluster-nvidia-2gpu.xml");
	ck_assert(slice_environment(l, {}, DeviceNumbering::Local).empty());
	ck_assert(slice_environment(l, {99}, DeviceNumbering::Local).empty()); // unknown index ignored
	ck_assert_uint_eq(owned_variable_names().size(), 8);
}
END_TEST

namespace
{

using Vars = std::map<std::string, std::string>;

Result<SliceEnv> decode(const Vars &vars)
{
	return SliceEnv::decode([&](const char *name) -> std::optional<std::string> {
		auto it = vars.find(name);
		return it == vars.end() ? std::nullopt : std::optional(it->second);
	});
}

Vars vars_of(const std::vector<EnvVar> &env)
{
	Vars out;
	for (const EnvVar &v : env)
		out[v.name] = v.value;
	return out;
}

} // namespace

// The one codec of the SLURM_VSLICE_* variables: what slice_environment()
// writes decodes to the same devices, counts and shares.
START_TEST(slice_env_round_trip)
{
	SliceLayout l = layout_of("nvidia-8gpu-2numa.xml");
	for (bool borrowed : {false, true}) {
		auto env = decode(
		        vars_of(slice_environment(l, {29, 30, 8, 31}, DeviceNumbering::Local, borrowed)));
		ck_assert_msg(static_cast<bool>(env), "%s", env.error().c_str());
		ck_assert(env->devices == (std::vector<int>{2, 7}));
		ck_assert(env->counts == (std::vector<int>{1, 3}));
		ck_assert(env->positions == (std::vector<std::vector<int>>{{0}, {1, 2, 3}}));
		ck_assert(env->compute_percent == (std::vector<int>{25, 75}));
		ck_assert(env->memory_mib == (std::vector<uint64_t>{20480, 61440}));
		ck_assert_int_eq(env->slices, 4);
		ck_assert(env->borrowed == borrowed);
		ck_assert(decode(vars_of(env->encode()))->encode() == env->encode());
		ck_assert(*decode(vars_of(env->encode())) == *env);
	}
	// nothing set: nothing held, and nothing written back
	auto none = decode({});
	ck_assert(static_cast<bool>(none) && none->devices.empty() && none->encode().empty());
	ck_assert(decode({{"SLURM_VSLICE_DEVICES", ""}})->devices.empty());
	// a step reads SLURM_VSLICE_DEVICES alone: the other variables may be absent
	ck_assert(decode({{"SLURM_VSLICE_DEVICES", "0,0,65535"}})->devices ==
	          (std::vector<int>{0, 0, 65535}));
}
END_TEST

START_TEST(slice_env_refuses_malformed_variables)
{
	auto err = [](const Vars &v) {
		auto r = decode(v);
		ck_assert_msg(!r, "accepted");
		return r.error();
	};
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", "1,x"}}),
	              "SLURM_VSLICE_DEVICES: entry 2 \"x\" is not a number from 0 to 65535");
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", "1,,2"}}),
	              "SLURM_VSLICE_DEVICES: entry 2 \"\" is not a number from 0 to 65535");
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", "65536"}}),
	              "SLURM_VSLICE_DEVICES: entry 1 \"65536\" is not a number from 0 to 65535");
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", "-1"}}),
	              "SLURM_VSLICE_DEVICES: entry 1 \"-1\" is not a number from 0 to 65535");
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", "0\n1"}}),
	              "SLURM_VSLICE_DEVICES: entry 1 \"0?1\" is not a number from 0 to 65535");
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", std::string(40, '7')}}),
	              "SLURM_VSLICE_DEVICES: entry 1 \"" + std::string(32, '7') +
	                      "...\" is not a number from 0 to 65535");
	std::string many = "0";
	for (int i = 0; i < 1024; ++i)
		many += ",0";
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", many}}), "SLURM_VSLICE_DEVICES: more than 1024 entries");
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", "0,1"}, {"SLURM_VSLICE_COUNTS", "1"}}),
	              "SLURM_VSLICE_COUNTS: 1 entries for the 2 devices of SLURM_VSLICE_DEVICES");
	ck_assert_str(err({{"SLURM_VSLICE_COUNTS", "1"}}),
	              "SLURM_VSLICE_COUNTS: 1 entries for the 0 devices of SLURM_VSLICE_DEVICES");
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", "0"}, {"SLURM_VSLICE_COUNTS", "0"}}),
	              "SLURM_VSLICE_COUNTS: entry 1 \"0\" is not a number from 1 to 64");
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", "0"}, {"SLURM_VSLICE_COMPUTE_PERCENT", "101"}}),
	              "SLURM_VSLICE_COMPUTE_PERCENT: entry 1 \"101\" is not a number from 1 to 100");
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", "0"}, {"SLURM_VSLICE_MEMORY_LIMIT_MIB", "1,2"}}),
	              "SLURM_VSLICE_MEMORY_LIMIT_MIB: 2 entries for the 1 devices of SLURM_VSLICE_DEVICES");
	ck_assert_str(
	        err({{"SLURM_VSLICE_DEVICES", "0"}, {"SLURM_VSLICE_MEMORY_LIMIT_MIB", "1099511627777"}}),
	        "SLURM_VSLICE_MEMORY_LIMIT_MIB: entry 1 \"1099511627777\" is not a number from 0 to 1099511627776");
	ck_assert_str(err({{"SLURM_VSLICE_DEVICES", "0"},
	                   {"SLURM_VSLICE_COUNTS", "2"},
	                   {"SLURM_VSLICES_ON_NODE", "3"}}),
	              "SLURM_VSLICES_ON_NODE: \"3\" is not the sum of SLURM_VSLICE_COUNTS (2)");
	ck_assert_str(err({{"SLURM_VSLICES_ON_NODE", "x"}}),
	              "SLURM_VSLICES_ON_NODE: \"x\" is not a number from 1 to 1048576");
	ck_assert_str(err({{"SLURM_VSLICE_BORROWED", "yes"}}), "SLURM_VSLICE_BORROWED: \"yes\" is not 1");
	// which slices of each device: '+'-joined positions, one entry per device
	const Vars two = {{"SLURM_VSLICE_DEVICES", "0,1"}, {"SLURM_VSLICE_COUNTS", "2,1"}};
	auto with = [&](const std::string &positions) {
		Vars v = two;
		v["SLURM_VSLICE_POSITIONS"] = positions;
		return v;
	};
	ck_assert(decode(with("0+3,2"))->positions == (std::vector<std::vector<int>>{{0, 3}, {2}}));
	ck_assert_str(err(with("0+1")),
	              "SLURM_VSLICE_POSITIONS: 1 entries for the 2 devices of SLURM_VSLICE_DEVICES");
	ck_assert_str(err(with("0+1,64")),
	              "SLURM_VSLICE_POSITIONS device 2: entry 1 \"64\" is not a number from 0 to 63");
	ck_assert_str(err(with("0+x,1")),
	              "SLURM_VSLICE_POSITIONS device 1: entry 2 \"x\" is not a number from 0 to 63");
	ck_assert_str(err(with("1+0,1")),
	              "SLURM_VSLICE_POSITIONS: entry 1 \"1+0\" is not in ascending order");
	ck_assert_str(err(with("1+1,1")),
	              "SLURM_VSLICE_POSITIONS: entry 1 \"1+1\" is not in ascending order");
	ck_assert_str(err(with("1,1")),
	              "SLURM_VSLICE_POSITIONS: entry 1 \"1\" names 1 slices for a count of 2");
}
END_TEST

Suite *job_env_suite()
{
	Suite *s = suite_create("job_env");
	TCase *tc = tcase_create("env");
	tcase_add_test(tc, two_slices_of_one_h100);
	tcase_add_test(tc, slices_on_two_devices_physical_numbering);
	tcase_add_test(tc, amd_and_ascend_variables);
	tcase_add_test(tc, mixed_node_per_vendor_classes_and_variables);
	tcase_add_test(tc, mps_limits_omitted_when_memory_unknown);
	tcase_add_test(tc, nothing_held_sets_nothing);
	tcase_add_test(tc, slice_env_round_trip);
	tcase_add_test(tc, slice_env_refuses_malformed_variables);
	suite_add_tcase(s, tc);
	return s;
}
