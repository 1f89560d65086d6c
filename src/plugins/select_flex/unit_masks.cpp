// SPDX-License-Identifier: GPL-2.0-or-later
#include "plugins/select_flex/unit_masks.hpp"

#include "plugins/select_flex/gres_view.hpp"
#include "plugins/select_flex/lending_service.hpp"
#include "plugins/select_flex/settings.hpp"

#include "core/model/placement.hpp"

#include <optional>
#include <set>
#include <utility>

namespace flexslurm::select_flex
{

HiddenUnits::HiddenUnits(HiddenUnits &&other) noexcept
    : ns_(std::exchange(other.ns_, nullptr)), units_(std::move(other.units_))
{
}

HiddenUnits::~HiddenUnits()
{
	if (!ns_)
		return;
	for (int u : units_)
		count(u, false);
	xfree(ns_->gres_used); // a cached "in use" string, rebuilt on demand
}

void HiddenUnits::hide(int unit)
{
	if (unit < 0 || unit >= bit_size(ns_->gres_bit_alloc) || bit_test(ns_->gres_bit_alloc, unit))
		return;
	count(unit, true);
	units_.push_back(unit);
}

void HiddenUnits::count(int unit, bool add)
{
	if (add)
		bit_set(ns_->gres_bit_alloc, unit);
	else
		bit_clear(ns_->gres_bit_alloc, unit);
	auto step = [add](uint64_t &v) { v = add ? v + 1 : (v ? v - 1 : 0); };
	step(ns_->gres_cnt_alloc);
	for (int t = 0; ns_->topo_gres_bitmap && t < ns_->topo_cnt; ++t) {
		if (!ns_->topo_gres_bitmap[t] || unit >= bit_size(ns_->topo_gres_bitmap[t]) ||
		    !bit_test(ns_->topo_gres_bitmap[t], unit))
			continue;
		step(ns_->topo_gres_cnt_alloc[t]);
		for (int k = 0; k < ns_->type_cnt; ++k)
			if (ns_->type_id[k] == ns_->topo_type_id[t])
				step(ns_->type_cnt_alloc[k]);
	}
}

Placement placement_of(const job_record_t *job)
{
	return settings().placement_for(job->part_ptr && job->part_ptr->name ? job->part_ptr->name : "");
}

namespace
{

// The units a job must not get: slices of devices held whole, whole devices
// with a slice in use, and, for slice jobs, the free slices outside the
// devices the placement policy chose.
std::vector<HiddenUnits> hide_units(job_record_t *job, bitstr_t *nodes, const JobAsk &ask,
                                    const NodeEnds *ends, int64_t at)
{
	std::vector<HiddenUnits> hidden;
	const Placement policy = placement_of(job);
	for (int i = 0; nodes && i < bit_size(nodes); ++i) {
		if (!bit_test(nodes, i) || i >= node_record_count || !node_record_table_ptr[i])
			continue;
		node_record_t *node = node_record_table_ptr[i];
		std::vector<DeviceView> devices = devices_of(node);
		if (ends)
			if (const auto e = ends->find(i); e != ends->end())
				devices = devices_at(devices, e->second, at);
		const UnitMasks masks = masks_for(devices, node_requests(ask), policy);
		auto hide = [&](uint32_t gres, const std::vector<int> &units) {
			gres_node_state_t *ns = compat::node_gres(node, gres);
			if (units.empty() || !ns || !ns->gres_bit_alloc)
				return;
			hidden.emplace_back(ns);
			for (int u : units)
				hidden.back().hide(u);
		};
		hide(vslice_id(), masks.slices);
		hide(gpu_id(), masks.gpus);
	}
	return hidden;
}

// A borrower sees only borrow units whose slices are lendable now. A node
// with fewer free lendable units than the borrower needs there leaves
// `nodes`: what is lendable is known now only, so cons_tres's will-run
// search over running jobs' ends (backfill) cannot find it a later start,
// and a deep borrower queue made every backfill cycle pay that search.
std::vector<HiddenUnits> hide_unlendable(bitstr_t *nodes, int need, uint32_t *left)
{
	std::vector<HiddenUnits> hidden;
	*left = 0;
	for (int i = 0; nodes && i < bit_size(nodes); ++i) {
		if (!bit_test(nodes, i))
			continue;
		node_record_t *node = i < node_record_count ? node_record_table_ptr[i] : nullptr;
		gres_node_state_t *ns = node ? compat::node_gres(node, vborrow_id()) : nullptr;
		if (!ns || !ns->gres_bit_alloc) {
			bit_clear(nodes, i);
			continue;
		}
		// A slice Slurm has allocated since the ledger's last sync (an
		// owner placed earlier in this pass): its vslice unit, or its
		// device held whole. Read only if the ledger asks (free slices).
		gres_node_state_t *vs = compat::node_gres(node, vslice_id());
		std::optional<std::vector<DeviceView>> devices;
		const std::set<int> ok = lendable_units(node->name, [&](int u) {
			if (vs && vs->gres_bit_alloc && u < bit_size(vs->gres_bit_alloc) &&
			    bit_test(vs->gres_bit_alloc, u))
				return true;
			if (!devices)
				devices = devices_of(node);
			for (const DeviceView &d : *devices)
				if (u >= d.first_slice && u < d.first_slice + d.slices)
					return d.whole_used;
			return false;
		});
		int free_lendable = 0;
		for (int u : ok)
			if (u >= 0 && u < bit_size(ns->gres_bit_alloc) && !bit_test(ns->gres_bit_alloc, u))
				++free_lendable;
		if (free_lendable < need) {
			bit_clear(nodes, i);
			continue;
		}
		++*left;
		hidden.emplace_back(ns);
		for (int u = 0; u < bit_size(ns->gres_bit_alloc); ++u)
			if (!ok.count(u))
				hidden.back().hide(u);
	}
	return hidden;
}

} // namespace

JobTestMasks masks_for_job_test(job_record_t *job, bitstr_t *nodes, uint32_t min_nodes, uint32_t max_nodes,
                                uint16_t mode, const NodeEnds *ends, int64_t at)
{
	JobTestMasks out;
	const JobAsk ask = job_ask(job, max_nodes);
	if (ask.slices && ask.gpus && ask.per_node.slices < 0) {
		// Without a per-node slice count nothing keeps its own slices
		// off the devices it gets whole.
		debug("select/flex: JobId=%u asks for GPUs and slices spread over nodes: refused",
		      compat::job_id_of(job));
		out.refusal = ESLURM_INVALID_GRES;
		return out;
	}
	if (ask.borrows) {
		// A borrower is taken back by requeue: one that cannot be
		// requeued never starts (job_submit/flex refuses it earlier, with
		// a message to the user).
		if (!job->batch_flag || !job->details || !job->details->requeue || ask.slices || ask.gpus) {
			debug("select/flex: JobId=%u borrows but is not a requeueable batch job asking only vborrow: not placed",
			      compat::job_id_of(job));
			out.refusal = ESLURM_INVALID_GRES;
			return out;
		}
		if (mode != SELECT_MODE_TEST_ONLY) {
			uint32_t left = 0;
			out.hidden = hide_unlendable(nodes, ask.borrow_per_node, &left);
			if (left == 0 || left < min_nodes) {
				out.hidden.clear();
				out.refusal = SLURM_ERROR; // not now: pending, Reason=Resources
				return out;
			}
		}
	}
	if (ask.slices || ask.gpus)
		out.hidden = hide_units(job, nodes, ask, ends, at);
	return out;
}

int test_with_units_hidden(job_record_t *job, bitstr_t *nodes, uint32_t min_nodes, uint32_t max_nodes,
                           uint16_t mode, const std::function<int()> &test, bool *refused,
                           const NodeEnds *ends, int64_t at)
{
	const JobTestMasks masks = masks_for_job_test(job, nodes, min_nodes, max_nodes, mode, ends, at);
	if (masks.refusal != SLURM_SUCCESS) {
		if (refused)
			*refused = true;
		return masks.refusal;
	}
	return test();
}

// Slurm picks the units of a GRES without topology (gres.conf gpu lines
// with neither Type= nor Cores=) itself, first free bit, when it allocates
// the job (select_p_select_nodeinfo_set), after job_test's masks are gone.
// For that step the gpu units of devices whose slices are in use, or that
// hold the slices this job was given, are hidden the same way.
std::vector<HiddenUnits> mask_for_allocation(job_record_t *job)
{
	std::vector<HiddenUnits> masks;
	if (job->gres_list_alloc || !job->job_resrcs || !job->job_resrcs->node_bitmap)
		return masks; // not a new allocation (restart, resume): the job's units are known
	const JobAsk ask = job_ask(job, 1);
	if (!ask.gpus)
		return masks;
	bitstr_t *nodes = job->job_resrcs->node_bitmap;
	for (int i = 0; i < bit_size(nodes) && i < node_record_count; ++i) {
		if (!bit_test(nodes, i) || !node_record_table_ptr[i])
			continue;
		node_record_t *node = node_record_table_ptr[i];
		gres_node_state_t *gs = compat::node_gres(node, gpu_id());
		if (!gs || !gs->gres_bit_alloc || gs->topo_cnt)
			continue; // with topology cons_tres chose the units under job_test's masks
		bitstr_t *own_slices = selected_units(job, vslice_id(), i);
		HiddenUnits mask(gs);
		const std::vector<DeviceView> devices = devices_of(node);
		auto own = [&](const DeviceView &d) {
			for (int k = d.first_slice;
			     own_slices && k < d.first_slice + d.slices && k < bit_size(own_slices); ++k)
				if (bit_test(own_slices, k))
					return true;
			return false;
		};
		for (const DeviceView &d : devices)
			if (d.gpu_unit >= 0 && (!d.used_slices.empty() || own(d)))
				mask.hide(d.gpu_unit);
		for (int unit : lent_devices_to_spare(
		             devices, ask.per_node.gpu_count, ask.per_node.gpu_type,
		             [&](size_t k) { return devices[k].used_slices.empty() && !own(devices[k]); }))
			mask.hide(unit);
		masks.push_back(std::move(mask));
	}
	return masks;
}

} // namespace flexslurm::select_flex
