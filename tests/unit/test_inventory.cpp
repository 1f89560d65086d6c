// SPDX-License-Identifier: GPL-2.0-or-later
// Discovery from the shipped hwloc XML topologies (machine shapes we cannot
// have in CI), compared with what the hardware would report.
#include "suites.hpp"

#include "core/io/inventory.hpp"

#include <string>

using namespace flexslurm;

namespace
{

Inventory load(const char *file)
{
	auto inv = Inventory::from_xml_file(std::string(TOPOLOGY_DIR) + "/" + file);
	ck_assert_msg(static_cast<bool>(inv), "%s", inv.error().c_str());
	return *inv;
}

std::string cpus_of(const Accelerator &a)
{
	if (a.cpus.empty())
		return "";
	return std::to_string(a.cpus.front()) + "-" + std::to_string(a.cpus.back()) + "/" +
	       std::to_string(a.cpus.size());
}

} // namespace

START_TEST(nvidia_8gpu_2numa)
{
	Inventory inv = load("nvidia-8gpu-2numa.xml");
	ck_assert_uint_eq(inv.accelerators.size(), 8); // the ASPEED VGA and the NIC are not accelerators
	const char *bus[] = {"0000:18:00.0", "0000:2a:00.0", "0000:3a:00.0", "0000:5d:00.0",
	                     "0000:9a:00.0", "0000:ab:00.0", "0000:ba:00.0", "0000:db:00.0"};
	for (int i = 0; i < 8; ++i) {
		const Accelerator &a = inv.accelerators[static_cast<size_t>(i)];
		ck_assert(a.vendor == Vendor::Nvidia);
		ck_assert_str(a.pci_bus_id.c_str(), bus[i]);
		ck_assert_int_eq(a.vendor_index, i);
		ck_assert_str(a.model.c_str(), "h100");
		ck_assert_str(a.model_name.c_str(), "NVIDIA H100 80GB HBM3");
		ck_assert_str(a.device_nodes.at(0).c_str(), ("nvidia" + std::to_string(i)).c_str());
		ck_assert_int_eq(a.numa_node, i < 4 ? 0 : 1);
		ck_assert_str(cpus_of(a).c_str(), i < 4 ? "0-15/16" : "16-31/16");
		ck_assert_uint_eq(a.memory_bytes, 83886080ULL * 1024);
		ck_assert(a.uuid.rfind("GPU-", 0) == 0);
	}
}
END_TEST

START_TEST(amd_4gpu)
{
	Inventory inv = load("amd-4gpu.xml");
	ck_assert_uint_eq(inv.accelerators.size(), 4);
	for (int i = 0; i < 4; ++i) {
		const Accelerator &a = inv.accelerators[static_cast<size_t>(i)];
		ck_assert(a.vendor == Vendor::Amd);
		ck_assert_int_eq(a.vendor_index, i);
		ck_assert_str(a.model.c_str(), "mi210");
		ck_assert_str(a.device_nodes.at(0).c_str(),
		              ("dri/renderD" + std::to_string(128 + i)).c_str());
		ck_assert_str(a.device_nodes.at(1).c_str(), ("dri/card" + std::to_string(1 + i)).c_str());
		ck_assert_int_eq(a.numa_node, i < 2 ? 0 : 1);
		ck_assert_str(cpus_of(a).c_str(), i < 2 ? "0-7/8" : "8-15/8");
	}
	ck_assert_str(inv.accelerators[0].pci_bus_id.c_str(), "0000:03:00.0");
	ck_assert_str(inv.accelerators[3].pci_bus_id.c_str(), "0000:63:00.0");
}
END_TEST

START_TEST(ascend_8npu)
{
	Inventory inv = load("ascend-8npu.xml");
	ck_assert_uint_eq(inv.accelerators.size(), 8);
	const char *bus[] = {"0000:01:00.0", "0000:02:00.0", "0000:41:00.0", "0000:42:00.0",
	                     "0000:81:00.0", "0000:82:00.0", "0000:c1:00.0", "0000:c2:00.0"};
	for (int i = 0; i < 8; ++i) {
		const Accelerator &a = inv.accelerators[static_cast<size_t>(i)];
		ck_assert(a.vendor == Vendor::Ascend);
		ck_assert_str(a.pci_bus_id.c_str(), bus[i]);
		ck_assert_int_eq(a.vendor_index, i);
		ck_assert_str(a.model.c_str(), "ascend910b"); // from the PCI id: no vendor library names it
		ck_assert_str(a.device_nodes.at(0).c_str(), ("davinci" + std::to_string(i)).c_str());
		ck_assert_int_eq(a.numa_node, i < 4 ? 0 : 1);
		ck_assert_str(cpus_of(a).c_str(), i < 4 ? "0-23/24" : "24-47/24");
		ck_assert_uint_eq(a.memory_bytes, 0);
	}
}
END_TEST

START_TEST(cluster_topologies)
{
	Inventory t4 = load("cluster-nvidia-2gpu.xml");
	ck_assert_uint_eq(t4.accelerators.size(), 2);
	ck_assert_str(t4.accelerators[1].model.c_str(), "t4");
	ck_assert_str(t4.accelerators[1].device_nodes[0].c_str(), "nvidia1");
	ck_assert_str(cpus_of(t4.accelerators[1]).c_str(), "0-1/2");
	ck_assert_uint_eq(load("cluster-nvidia-4gpu.xml").accelerators.size(), 4);
	ck_assert_uint_eq(load("cluster-amd-2gpu.xml").accelerators.size(), 2);
	ck_assert_uint_eq(load("cluster-ascend-2npu.xml").accelerators.size(), 2);
}
END_TEST

START_TEST(missing_xml_is_an_error)
{
	auto inv = Inventory::from_xml_file("/nonexistent/topology.xml");
	ck_assert(!inv);
	ck_assert_str(inv.error().c_str(), "cannot read hwloc XML topology /nonexistent/topology.xml");
}
END_TEST

START_TEST(control_nodes)
{
	ck_assert_uint_eq(vendor_control_nodes(Vendor::Nvidia).size(), 4);
	ck_assert_str(vendor_control_nodes(Vendor::Amd).at(0).c_str(), "kfd");
	ck_assert_str(vendor_control_nodes(Vendor::Ascend).at(0).c_str(), "davinci_manager");
}
END_TEST

Suite *inventory_suite()
{
	Suite *s = suite_create("inventory");
	TCase *tc = tcase_create("xml");
	tcase_add_test(tc, nvidia_8gpu_2numa);
	tcase_add_test(tc, amd_4gpu);
	tcase_add_test(tc, ascend_8npu);
	tcase_add_test(tc, cluster_topologies);
	tcase_add_test(tc, missing_xml_is_an_error);
	tcase_add_test(tc, control_nodes);
	suite_add_tcase(s, tc);
	return s;
}
