// SPDX-License-Identifier: GPL-2.0-or-later
// The slice map's readers (flexslurm): a node's Gres and GresUsed, a job's
// per-node GRES detail (slurmctld's answers) and the lending controller's
// status text or its device table. Input: gres \x01 gres_used \x01 job
// detail \x01 status (or device table).
// Counts stay consistent, slices lie on their device, the JSON carries no
// raw control character.
#include "fuzz_common.hpp"

#include "core/model/slice_map.hpp"

using namespace flexslurm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	const std::string_view in = fuzz::text(data, size);
	std::string_view parts[4];
	size_t start = 0;
	for (int i = 0; i < 4; ++i) {
		const size_t end = i < 3 ? in.find('\x01', start) : std::string_view::npos;
		parts[i] = start <= in.size()
		                   ? in.substr(start, end == std::string_view::npos ? end : end - start)
		                   : "";
		start = end == std::string_view::npos ? in.size() + 1 : end + 1;
	}
	if (auto list = parse_index_list(parts[1]); list)
		for (size_t i = 1; i < list->size(); ++i)
			FUZZ_CHECK((*list)[i - 1] < (*list)[i], std::string(in));
	auto rows = parse_lending_status(parts[3]);
	// The same text as the controller's device table (its own header).
	auto table = parse_device_table(parts[3]);
	if (table)
		for (const NodeDeviceIds &n : table->nodes)
			for (const DeviceIdentity &d : n.devices)
				FUZZ_CHECK((d.uuid.empty() || valid_device_uuid(d.uuid)) &&
				                   (d.pci_bus_id.empty() || valid_pci_bus_id(d.pci_bus_id)),
				           std::string(in));
	const std::vector<JobInput> jobs = {{7, {{"n1", std::string(parts[2])}}}};
	const NodeInput node{"n1", "MIXED", {"p"}, std::string(parts[0]), std::string(parts[1])};
	const SliceMap map =
	        build_map({node}, jobs, rows ? &*rows : nullptr, {}, table ? &table->nodes : nullptr);
	for (const NodeMap &n : map.nodes) {
		FUZZ_CHECK(n.counts.total <= static_cast<int>(max_node_slices), std::string(in));
		for (const DeviceInfo &d : n.devices) {
			const SliceCounts &c = d.counts;
			FUZZ_CHECK(c.allocated <= c.total && c.lent <= c.total && c.borrowed <= c.total &&
			                   c.free() >= 0,
			           std::string(in));
			FUZZ_CHECK(d.slices.size() == static_cast<size_t>(c.total), std::string(in));
			for (const SliceInfo &s : d.slices)
				FUZZ_CHECK(s.index >= d.first_slice && s.index < d.first_slice + c.total,
				           std::string(in));
		}
	}
	for (const std::string &out : {map_json(map), map_text(map)})
		for (size_t i = 0; i + 1 < out.size(); ++i) {
			const auto ch = static_cast<unsigned char>(out[i]);
			FUZZ_CHECK(ch >= 0x20 || ch == '\n', std::string(in));
		}
	return 0;
}
