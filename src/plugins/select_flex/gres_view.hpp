// SPDX-License-Identifier: GPL-2.0-or-later
// select/flex's view of Slurm's GRES state: gres/vslice, gres/gpu and
// gres/vborrow on the nodes (units, topology, what is allocated) and in the
// jobs (what they ask for, what they were given), read into the core's
// structs. The one place the select side maps a node's slices to its
// devices (node_slices). Caller holds the controller's node (and job) locks.
#pragma once

#ifndef FLEXSLURM_COMPAT_SELECT
#define FLEXSLURM_COMPAT_SELECT
#endif
#include "slurm_compat.h"

#include "core/model/placement.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace flexslurm::select_flex
{

uint32_t vslice_id();
uint32_t vborrow_id();
uint32_t gpu_id();

// Calls f(bit) for each set bit of `bits`, from its first to its last.
template <class F>
void for_each_set_bit(bitstr_t *bits, F &&f)
{
	if (!bits)
		return;
	const auto first = bit_ffs(bits);
	if (first < 0)
		return;
	const auto last = bit_fls(bits);
	for (auto i = first; i <= last; ++i)
		if (bit_test(bits, i))
			f(static_cast<int>(i));
}

// One device of a node as gres/vslice registered it: one topology entry
// per device, in the node's layout order.
struct SliceDevice {
	int index = 0;        // its topology entry: the device's place in the layout
	std::string type;     // GRES type ("t4")
	int first_slice = -1; // vslice unit index of its first slice
	int slices = 0;       // vslice units on it
};

// A node's slices and devices, from gres/vslice's topology.
struct NodeSlices {
	// Slurm has the node's units and topology (false: not registered
	// since the controller started).
	bool known = false;
	std::vector<int> device_of_slice; // per vslice unit: its device's index, -1 if none
	std::vector<SliceDevice> devices; // those with slices, in layout order
};

// The one slice -> device derivation of select/flex (gres/vslice's
// node state; nullptr: nothing known).
NodeSlices node_slices(gres_node_state_t *vslice);

// The node's devices for the placement policy: slices, which are in use,
// and the gpu unit that is the same device, if gpu is configured.
std::vector<DeviceView> devices_of(node_record_t *node);

// Per gpu unit of the node, the vslice units of the same device (as
// devices_of matches them): {first slice, slices}, {-1, 0} for none.
std::vector<std::pair<int, int>> slices_of_gpu_units(node_record_t *node);

// What a job asks for, per node.
struct JobAsk {
	bool slices = false;
	bool gpus = false;
	bool borrows = false;
	int borrow_per_node = 1; // vborrow units a borrower needs on each node it gets (at least 1)
	NodeRequest per_node;
	// One per vslice GRES type asked (several on a mixed node: vslice:t4:1,vslice:ascend910b:1),
	// with per_node's gpus and split; per_node is the last of them.
	std::vector<NodeRequest> per_type;
};
JobAsk job_ask(job_record_t *job, uint32_t max_nodes);

// Whether what the job asks of each node is known: a slice count per node
// (not one cons_tres spreads over nodes) and a gpu count per node, for
// whichever of the two it asks.
bool count_known_per_node(const JobAsk &ask);

// What the job asks of each node, for the placement core: per type when it
// asks several types with a known count per node, else per_node alone.
std::vector<NodeRequest> node_requests(const JobAsk &ask);

// The units of `gres` that job_test selected for the job on node `index`.
bitstr_t *selected_units(job_record_t *job, uint32_t gres, int index);

// Calls f(node index, unit bits) for each node a job holds units of `gres` on.
template <class F>
void for_each_job_unit_set(job_record_t *job, uint32_t gres, F &&f)
{
	if (!job->gres_list_alloc || !job->job_resrcs || !job->job_resrcs->node_bitmap)
		return;
	for (auto *state : compat::list_items<gres_state_t>(job->gres_list_alloc)) {
		if (state->plugin_id != gres)
			continue;
		auto *js = static_cast<gres_job_state_t *>(state->gres_data);
		if (!js || !js->gres_bit_alloc)
			continue;
		uint32_t j = 0;
		for_each_set_bit(job->job_resrcs->node_bitmap, [&](int i) {
			if (j >= js->node_cnt)
				return;
			if (js->gres_bit_alloc[j] && i < node_record_count && node_record_table_ptr[i])
				f(i, js->gres_bit_alloc[j]);
			++j;
		});
	}
}

} // namespace flexslurm::select_flex
