// SPDX-License-Identifier: GPL-2.0-or-later
// The slice model over real topologies, and the layout's wire form that
// slurmd hands to slurmstepd (validated like any input from outside).
#include "log_capture.hpp"
#include "suites.hpp"

#include "core/util/log.hpp"
#include "core/io/inventory.hpp"
#include "core/io/isolation.hpp"
#include "core/model/limits.hpp"
#include "core/model/slice_layout.hpp"
#include "slice_env_fixture.hpp"

#include <string>
#include <vector>

using namespace flexslurm;

namespace
{

Inventory load(const char *file)
{
	auto inv = Inventory::from_xml_file(std::string(TOPOLOGY_DIR) + "/" + file);
	ck_assert_msg(static_cast<bool>(inv), "%s", inv.error().c_str());
	return *inv;
}

// Every device present: minor = position, as a fake /dev would give.
std::optional<DeviceId> fake_probe(const std::string &path, std::string &why)
{
	if (path.find("missing") != std::string::npos) {
		why = "No such file or directory";
		return std::nullopt;
	}
	return DeviceId{195, static_cast<uint32_t>(path.back() - '0')};
}

Config config(const char *yaml)
{
	auto c = Config::from_string(yaml, "test.yaml");
	ck_assert_msg(static_cast<bool>(c), "%s", c.error().c_str());
	return *c;
}

} // namespace

START_TEST(defaults_cut_every_device_in_four)
{
	SliceLayout l =
	        SliceLayout::build(load("nvidia-8gpu-2numa.xml"), Config::defaults(), "/dev", fake_probe);
	ck_assert_int_eq(l.total_slices(), 32);
	ck_assert_uint_eq(l.devices().size(), 8);
	const DeviceSlices &d5 = l.devices()[5];
	ck_assert_int_eq(d5.first_slice, 20);
	ck_assert_int_eq(d5.slices, 4);
	ck_assert_int_eq(d5.compute_percent, 25);
	ck_assert_uint_eq(d5.slice_memory_bytes, 83886080ULL * 1024 * 25 / 100);
	ck_assert_str(d5.device_path.c_str(), "/dev/nvidia5");
	ck_assert_uint_eq(d5.device_id.minor, 5);
	ck_assert_ptr_eq(l.device_of_slice(23), &l.devices()[5]);
	ck_assert_ptr_eq(l.device_of_slice(24), &l.devices()[6]);
	ck_assert_ptr_null(l.device_of_slice(32));
	ck_assert_ptr_null(l.device_of_slice(-1));
}
END_TEST

START_TEST(class_rules_pick_the_most_specific)
{
	Config c = config("slicing:\n"
	                  "  default: {slices: 2}\n"
	                  "  classes:\n"
	                  "    - {vendor: nvidia, slices: 4}\n"
	                  "    - {vendor: nvidia, model: h100, slices: 8, memory_percent: 10}\n"
	                  "    - {vendor: amd, slices: 3, device_memory: 60GiB}\n");
	SliceLayout h100 = SliceLayout::build(load("nvidia-8gpu-2numa.xml"), c, "/dev/", fake_probe);
	ck_assert_int_eq(h100.total_slices(), 64);
	ck_assert_int_eq(h100.devices()[0].compute_percent, 12);
	ck_assert_uint_eq(h100.devices()[0].slice_memory_bytes, 83886080ULL * 1024 * 10 / 100);
	SliceLayout t4 = SliceLayout::build(load("cluster-nvidia-2gpu.xml"), c, "/dev", fake_probe);
	ck_assert_int_eq(t4.total_slices(), 8); // nvidia rule, not the h100 one
	SliceLayout mi = SliceLayout::build(load("amd-4gpu.xml"), c, "/dev", fake_probe);
	ck_assert_int_eq(mi.total_slices(), 12);
	ck_assert_int_eq(mi.devices()[0].compute_percent, 33);
	ck_assert_uint_eq(mi.devices()[0].slice_memory_bytes, (60ULL << 30) * 33 / 100);
	ck_assert_str(mi.devices()[2].device_path.c_str(), "/dev/dri/renderD130");
	SliceLayout npu = SliceLayout::build(load("ascend-8npu.xml"), c, "/dev", fake_probe);
	ck_assert_int_eq(npu.total_slices(), 16);                  // default rule
	ck_assert_uint_eq(npu.devices()[0].slice_memory_bytes, 0); // unknown memory
}
END_TEST

// A device whose memory neither hwloc nor the rule gives: one error line
// per device, naming it and the key that fixes it.
START_TEST(unknown_device_memory_is_logged_loudly)
{
	const Inventory ascend = load("ascend-8npu.xml"), nvidia = load("nvidia-8gpu-2numa.xml");
	record_log();
	SliceLayout npu = SliceLayout::build(ascend, Config::defaults(), "/dev", fake_probe);
	ck_assert_uint_eq(npu.devices().size(), 8);
	ck_assert_uint_eq(logged_lines().size(), 8);
	ck_assert_uint_eq(logged(LogLevel::Error).size(), 8);
	ck_assert_str(
	        logged(LogLevel::Error)[0].c_str(),
	        "device 0000:01:00.0 (ascend ascend910b): memory size unknown (hwloc reports none): its slices get no memory share and no memory limit; set slicing.classes[].device_memory for this model in flexslurm.yaml");
	clear_log();
	SliceLayout::build(ascend, config("slicing: {classes: [{vendor: ascend, device_memory: 64GiB}]}"),
	                   "/dev", fake_probe);
	SliceLayout::build(nvidia, Config::defaults(), "/dev", fake_probe);
	ck_assert_uint_eq(logged_lines().size(), 0);
}
END_TEST

START_TEST(missing_device_nodes_are_left_out)
{
	SliceLayout l = SliceLayout::build(load("cluster-nvidia-2gpu.xml"), Config::defaults(), "/missing",
	                                   fake_probe);
	ck_assert_int_eq(l.total_slices(), 0);
	ck_assert(l.devices().empty());
}
END_TEST

START_TEST(serialize_round_trip)
{
	SliceLayout l = SliceLayout::build(load("amd-4gpu.xml"), Config::defaults(), "/dev", fake_probe);
	auto back = SliceLayout::deserialize(l.serialize());
	ck_assert_msg(static_cast<bool>(back), "%s", back.error().c_str());
	ck_assert_str(back->serialize().c_str(), l.serialize().c_str());
	ck_assert_int_eq(back->total_slices(), 16);
	ck_assert_uint_eq(back->devices()[3].cpus.size(), 8);
}
END_TEST

START_TEST(deserialize_rejects_bad_input)
{
	const char *bad[] = {
	        "",
	        "flexslurm-layout 3\n",
	        "flexslurm-layout 2\ngpu\t1\t/dev/nvidia0\t0\tt4\n", // units out of order
	        "flexslurm-layout 2\ngpu\t0\tdev/nvidia0\t0\tt4\n",  // relative path
	        "flexslurm-layout 2\ngpu\t0\t/dev/nvidia0\t2\tt4\n", // mig flag
	        "flexslurm-layout 2\nunsliced\tnvidia0\n",           // relative path
	        "flexslurm-layout 2\nnvidia\t0\tt4\t/dev/nvidia0\t195:0\t0\t4\t25\t0\t\t0\tGPU-1\n", // 12
	                                                                                             // fields
	        "flexslurm-layout 1\nnvidia\t0\tt4\t/dev/nvidia0\t195:0\t0\t4\t25\t0\n",      // 9 fields
	        "flexslurm-layout 1\nintel\t0\tt4\t/dev/nvidia0\t195:0\t0\t4\t25\t0\t\n",     // vendor
	        "flexslurm-layout 1\nnvidia\t0\tt4\tdev/nvidia0\t195:0\t0\t4\t25\t0\t\n",     // relative path
	        "flexslurm-layout 1\nnvidia\t0\tt4\t/dev/nvidia0\t195\t0\t4\t25\t0\t\n",      // major:minor
	        "flexslurm-layout 1\nnvidia\t0\tt4\t/dev/nvidia0\t195:0\t0\t65\t25\t0\t\n",   // slices
	        "flexslurm-layout 1\nnvidia\t0\tt4\t/dev/nvidia0\t195:0\t0\t4\t101\t0\t\n",   // percent
	        "flexslurm-layout 1\nnvidia\t0\tt4\t/dev/nvidia0\t195:0\t4\t4\t25\t0\t\n",    // gap
	        "flexslurm-layout 1\nnvidia\t0\tt4\t/dev/nvidia0\t195:0\t0\t4\t25\t-1\t\n",   // memory
	        "flexslurm-layout 1\nnvidia\t0\tt4\t/dev/nvidia0\t195:0\t0\t4\t25\t0\t1,x\n", // cpus
	        // Found by tests/fuzz/fuzz_job_env: a vendor index twice, so that
	        // SLURM_VSLICE_DEVICES could not say which device a job holds.
	        "flexslurm-layout 1\nnvidia\t1\tt4\t/dev/nvidia0\t195:0\t0\t4\t25\t0\t\n"
	        "nvidia\t1\tt4\t/dev/nvidia1\t195:1\t4\t4\t25\t0\t\n",
	};
	for (const char *text : bad)
		ck_assert_msg(!SliceLayout::deserialize(text), "accepted: %s", text);
	ck_assert(SliceLayout::deserialize(
	        "flexslurm-layout 1\nnvidia\t0\tt4\t/dev/nvidia0\t195:0\t0\t4\t25\t0\t\n"));
}
END_TEST

// Found by tests/fuzz/fuzz_job_env: a layout's slice memory of 2^63 bytes
// wrapped in device_limits() (2 slices: 0 MiB, which means "no memory
// limit"). The layout bounds a device's memory (1 PiB, as the config's
// device_memory) and its vendor index (what a device node's name can give,
// which the limits file now takes too).
START_TEST(deserialize_bounds_memory_and_index)
{
	const std::string head = "flexslurm-layout 2\nnvidia\t";
	auto layout = [&](const std::string &index, const std::string &slice_memory,
	                  const std::string &borrow) {
		return SliceLayout::deserialize(head + index + "\tt4\t/dev/nvidia0\t195:0\t0\t4\t25\t" +
		                                slice_memory + "\t\t" + borrow + "\t-\t-\n");
	};
	ck_assert(layout("65535", "1125899906842624", "1125899906842624"));
	ck_assert(!layout("65536", "0", "0"));
	ck_assert(!layout("0", "1125899906842625", "0"));
	ck_assert(!layout("0", "9223372036854775808", "0"));
	ck_assert(!layout("0", "0", "1125899906842625"));

	auto big = layout("65535", "1125899906842624", "0");
	ck_assert_uint_eq(devices_of(*big, "65535").size(), 1);
	const auto limits = device_limits(*big, *slice_env_of("65535", "4"));
	ck_assert_uint_eq(limits.size(), 1);
	ck_assert_uint_eq(limits[0].memory_mib, uint64_t{4} << 30); // 4 x 1 PiB, in MiB
	JobLimits job;
	job.job = 1;
	job.devices = limits;
	const auto back = decode_job_limits(encode_job_limits(job));
	ck_assert_msg(static_cast<bool>(back), "%s", back.error().c_str());
	ck_assert(*back == job);
}
END_TEST

Suite *slice_layout_suite()
{
	Suite *s = suite_create("slice_layout");
	TCase *tc = tcase_create("layout");
	tcase_add_test(tc, defaults_cut_every_device_in_four);
	tcase_add_test(tc, class_rules_pick_the_most_specific);
	tcase_add_test(tc, missing_device_nodes_are_left_out);
	tcase_add_test(tc, unknown_device_memory_is_logged_loudly);
	tcase_add_test(tc, serialize_round_trip);
	tcase_add_test(tc, deserialize_rejects_bad_input);
	tcase_add_test(tc, deserialize_bounds_memory_and_index);
	suite_add_tcase(s, tc);
	return s;
}
