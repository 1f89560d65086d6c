// SPDX-License-Identifier: GPL-2.0-or-later
#include "plugins/select_flex/gres_view.hpp"

#include <algorithm>
#include <string_view>

namespace flexslurm::select_flex
{

uint32_t vslice_id()
{
	static const uint32_t id = gres_build_id(const_cast<char *>("vslice"));
	return id;
}

uint32_t vborrow_id()
{
	static const uint32_t id = gres_build_id(const_cast<char *>("vborrow"));
	return id;
}

uint32_t gpu_id()
{
	static const uint32_t id = gres_build_id(const_cast<char *>("gpu"));
	return id;
}

namespace
{

int unit_count(bitstr_t *bits)
{
	return bits ? static_cast<int>(bit_size(bits)) : 0;
}

std::vector<int> set_bits(bitstr_t *bits, int first, int count)
{
	std::vector<int> out;
	if (!bits)
		return out;
	const int last = std::min(first + count, static_cast<int>(bit_size(bits)));
	for (int i = first; i < last; ++i)
		if (bit_test(bits, i))
			out.push_back(i);
	return out;
}

} // namespace

NodeSlices node_slices(gres_node_state_t *vs)
{
	NodeSlices out;
	if (!vs || !vs->topo_gres_bitmap)
		return out;
	out.known = vs->gres_bit_alloc && vs->topo_cnt;
	const int units = unit_count(vs->gres_bit_alloc);
	out.device_of_slice.assign(static_cast<size_t>(units), -1);
	for (int t = 0; t < vs->topo_cnt; ++t) {
		SliceDevice d;
		d.index = t;
		d.type = vs->topo_type_name && vs->topo_type_name[t] ? vs->topo_type_name[t] : "";
		for_each_set_bit(vs->topo_gres_bitmap[t], [&](int u) {
			if (d.first_slice < 0)
				d.first_slice = u;
			++d.slices;
			if (u < units)
				out.device_of_slice[static_cast<size_t>(u)] = t;
		});
		if (d.first_slice >= 0)
			out.devices.push_back(std::move(d));
	}
	return out;
}

// gres/vslice registers one topology entry per device; gpu units are matched
// to devices in order within each type (gres.conf lists a node's GPUs in PCI
// order, as AutoDetect does), or in plain order when the types differ.
std::vector<DeviceView> devices_of(node_record_t *node)
{
	std::vector<DeviceView> devices;
	gres_node_state_t *vs = compat::node_gres(node, vslice_id());
	gres_node_state_t *vb = compat::node_gres(node, vborrow_id()); // unit u shadows slice u
	for (const SliceDevice &s : node_slices(vs).devices) {
		DeviceView d;
		d.first_slice = s.first_slice;
		d.slices = s.slices;
		d.type = s.type;
		d.used_slices = set_bits(vs->gres_bit_alloc, d.first_slice, d.slices);
		if (vb)
			d.borrowed_slices = set_bits(vb->gres_bit_alloc, d.first_slice, d.slices);
		devices.push_back(std::move(d));
	}

	gres_node_state_t *gs = compat::node_gres(node, gpu_id());
	if (!gs || !gs->gres_bit_alloc)
		return devices;
	const int gpu_units = static_cast<int>(bit_size(gs->gres_bit_alloc));
	std::vector<std::string_view> gpu_type(static_cast<size_t>(gpu_units));
	for (int t = 0; gs->topo_gres_bitmap && t < gs->topo_cnt; ++t)
		for_each_set_bit(gs->topo_gres_bitmap[t], [&](int u) {
			if (u < gpu_units)
				gpu_type[static_cast<size_t>(u)] = gs->topo_type_name && gs->topo_type_name[t]
				                                           ? gs->topo_type_name[t]
				                                           : "";
		});
	bool types_match = true;
	for (const DeviceView &d : devices)
		types_match = types_match && std::count(gpu_type.begin(), gpu_type.end(), d.type) > 0;
	std::vector<bool> taken(static_cast<size_t>(gpu_units), false);
	for (DeviceView &d : devices) {
		for (int u = 0; u < gpu_units; ++u) {
			if (taken[static_cast<size_t>(u)] ||
			    (types_match && gpu_type[static_cast<size_t>(u)] != d.type))
				continue;
			taken[static_cast<size_t>(u)] = true;
			d.gpu_unit = u;
			d.whole_used = bit_test(gs->gres_bit_alloc, u);
			break;
		}
	}
	return devices;
}

std::vector<std::pair<int, int>> slices_of_gpu_units(node_record_t *node)
{
	std::vector<std::pair<int, int>> out;
	for (const DeviceView &d : devices_of(node)) {
		if (d.gpu_unit < 0)
			continue;
		if (out.size() <= static_cast<size_t>(d.gpu_unit))
			out.resize(static_cast<size_t>(d.gpu_unit) + 1, {-1, 0});
		out[static_cast<size_t>(d.gpu_unit)] = {d.first_slice, d.slices};
	}
	return out;
}

JobAsk job_ask(job_record_t *job, uint32_t max_nodes)
{
	JobAsk ask;
	int gpu_count = 0;
	std::string gpu_type;
	for (auto *state : compat::list_items<gres_state_t>(job->gres_list_req)) {
		auto *js = static_cast<gres_job_state_t *>(state->gres_data);
		if (state->plugin_id == gpu_id()) {
			// One gpu request: its count per node, when known. Several
			// (gpu:a100:1,gpu:t4:1): unknown.
			uint64_t count = 0;
			if (js && js->gres_per_node)
				count = js->gres_per_node;
			else if (js && js->gres_per_job && max_nodes == 1)
				count = js->gres_per_job;
			gpu_count = ask.gpus ? 0 : static_cast<int>(std::min<uint64_t>(count, INT32_MAX));
			gpu_type = js && js->type_name ? js->type_name : "";
			ask.gpus = true;
		} else if (state->plugin_id == vborrow_id()) {
			ask.borrows = true;
			if (js && js->gres_per_node)
				ask.borrow_per_node =
				        static_cast<int>(std::min<uint64_t>(js->gres_per_node, INT32_MAX));
			else if (js && js->gres_per_job && max_nodes == 1)
				ask.borrow_per_node =
				        static_cast<int>(std::min<uint64_t>(js->gres_per_job, INT32_MAX));
		} else if (state->plugin_id == vslice_id()) {
			NodeRequest r;
			r.type = js->type_name ? js->type_name : "";
			if (js->gres_per_node)
				r.slices = static_cast<int>(js->gres_per_node);
			else if (js->gres_per_job && max_nodes == 1)
				r.slices = static_cast<int>(js->gres_per_job);
			else
				r.slices = -1; // spread over nodes by cons_tres
			// Any type's count unknown per node: the job's is.
			const bool unknown = ask.slices && ask.per_node.slices < 0;
			ask.slices = true;
			ask.per_node.type = r.type;
			ask.per_node.slices = unknown ? -1 : r.slices;
			ask.per_type.push_back(std::move(r));
		}
	}
	ask.per_node.gpus = ask.gpus;
	ask.per_node.gpu_count = gpu_count;
	ask.per_node.gpu_type = gpu_type;
	for (NodeRequest &r : ask.per_type) {
		r.gpus = ask.gpus;
		r.gpu_count = gpu_count;
		r.gpu_type = gpu_type;
	}
	if (ask.slices) {
		std::vector<std::string_view> env;
		for (uint32_t i = 0; job->spank_job_env && i < job->spank_job_env_size; ++i)
			if (job->spank_job_env[i])
				env.emplace_back(job->spank_job_env[i]);
		ask.per_node.split = split_from_env(env);
		for (NodeRequest &r : ask.per_type)
			r.split = ask.per_node.split;
	}
	return ask;
}

bool count_known_per_node(const JobAsk &ask)
{
	return (!ask.slices || ask.per_node.slices >= 0) && (!ask.gpus || ask.per_node.gpu_count > 0);
}

std::vector<NodeRequest> node_requests(const JobAsk &ask)
{
	if (ask.per_type.size() > 1 && ask.per_node.slices >= 0)
		return ask.per_type;
	return {ask.per_node};
}

bitstr_t *selected_units(job_record_t *job, uint32_t gres, int index)
{
	bitstr_t *bits = nullptr;
	for (auto *state : compat::list_items<gres_state_t>(job->gres_list_req)) {
		auto *js = static_cast<gres_job_state_t *>(state->gres_data);
		if (state->plugin_id == gres && js && js->gres_bit_select && index >= 0 &&
		    static_cast<uint32_t>(index) < js->total_node_cnt)
			bits = js->gres_bit_select[index];
	}
	return bits;
}

} // namespace flexslurm::select_flex
