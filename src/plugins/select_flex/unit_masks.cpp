// SPDX-License-Identifier: GPL-2.0-or-later
#include "plugins/select_flex/unit_masks.hpp"

#include "plugins/select_flex/gres_view.hpp"
#include "plugins/select_flex/lending_service.hpp"
#include "plugins/select_flex/settings.hpp"

#include "core/model/placement.hpp"

#include <optional>
#include <set>
#include <string>
#include <utility>

namespace flexslurm::select_flex
{

HiddenUnits::HiddenUnits(HiddenUnits &&other) noexcept
    : ns_(std::exchange(other.ns_, nullptr)), units_(std::move(other.units_)),
      topo_counted_(std::move(other.topo_counted_))
{
}

namespace
{

// Counts `by` in or out of `v`, never below zero.
void step(uint64_t &v, uint64_t by, bool add)
{
	v = add ? v + by : (v > by ? v - by : 0);
}

// `by` counted in or out of topology entry t and its type's total.
void count_in_topo(gres_node_state_t *ns, int t, uint64_t by, bool add)
{
	step(ns->topo_gres_cnt_alloc[t], by, add);
	for (int k = 0; ns->type_id && ns->type_cnt_alloc && k < ns->type_cnt; ++k)
		if (ns->type_id[k] == ns->topo_type_id[t])
			step(ns->type_cnt_alloc[k], by, add);
}

} // namespace

HiddenUnits::~HiddenUnits()
{
	if (!ns_)
		return;
	for (int u : units_)
		bit_clear(ns_->gres_bit_alloc, u);
	step(ns_->gres_cnt_alloc, units_.size(), false);
	for (size_t t = 0; t < topo_counted_.size(); ++t)
		if (topo_counted_[t])
			count_in_topo(ns_, static_cast<int>(t), topo_counted_[t], false);
	xfree(ns_->gres_used); // a cached "in use" string, rebuilt on demand
}

void HiddenUnits::hide(const std::vector<int> &units)
{
	const int size = static_cast<int>(bit_size(ns_->gres_bit_alloc));
	const compat::bitmap_holder added(bit_alloc(size));
	units_.reserve(units_.size() + units.size()); // no throw once a bit is set
	size_t n = 0;
	for (int u : units) {
		if (u < 0 || u >= size || bit_test(ns_->gres_bit_alloc, u))
			continue;
		bit_set(ns_->gres_bit_alloc, u);
		bit_set(added.get(), u);
		units_.push_back(u);
		++n;
	}
	if (!n)
		return;
	step(ns_->gres_cnt_alloc, n, true);
	if (!ns_->topo_gres_bitmap || ns_->topo_cnt <= 0 || !ns_->topo_gres_cnt_alloc)
		return;
	topo_counted_.resize(static_cast<size_t>(ns_->topo_cnt), 0);
	for (int t = 0; t < ns_->topo_cnt; ++t) {
		bitstr_t *topo = ns_->topo_gres_bitmap[t];
		if (!topo)
			continue;
		uint64_t in = 0;
		if (bit_size(topo) == size) {
			in = static_cast<uint64_t>(bit_overlap(topo, added.get()));
		} else {
			const int topo_size = static_cast<int>(bit_size(topo));
			for (size_t k = units_.size() - n; k < units_.size(); ++k)
				in += units_[k] < topo_size && bit_test(topo, units_[k]);
		}
		if (!in)
			continue;
		count_in_topo(ns_, t, in, true);
		topo_counted_[static_cast<size_t>(t)] += in;
	}
}

Placement placement_of(const job_record_t *job)
{
	return settings().placement_for(job->part_ptr && job->part_ptr->name ? job->part_ptr->name : "");
}

namespace
{

// Whether select/flex's view of a node's devices is all cons_tres sees of
// the job's GRES through the masks: a known slice count per node, or an
// untyped gpu count per node, not a borrower's, and on the node every vslice
// unit on a device and (a gpu request) every gpu unit matched to a device.
// Several slice requests only of distinct named types (vslice:4,vslice:t4:1
// overlap: the masks offer what either's placement does). Not a job whose
// memory comes from its GRES (no --mem, a memory per GRES): cons_tres's test
// as of now sets its per-node memory, select/flex leaves that to it.
bool fit_is_known(job_record_t *job, const JobAsk &ask)
{
	if (!(ask.slices || ask.gpus) || ask.borrows || !count_known_per_node(ask) ||
	    !ask.per_node.gpu_type.empty())
		return false;
	if (ask.per_type.size() > 1) {
		std::set<std::string> types;
		for (const NodeRequest &r : ask.per_type)
			if (r.type.empty() || !types.insert(r.type).second)
				return false;
	}
	if (!(job->bit_flags & JOB_MEM_SET))
		for (auto *state : compat::list_items<gres_state_t>(job->gres_list_req)) {
			const auto *js = static_cast<gres_job_state_t *>(state->gres_data);
			if (js && (js->mem_per_gres || js->def_mem_per_gres))
				return false;
		}
	return true;
}
bool devices_cover(node_record_t *node, const std::vector<DeviceView> &devices, const JobAsk &ask)
{
	int slices = 0;
	int gpus = 0;
	for (const DeviceView &d : devices) {
		slices += d.slices;
		gpus += d.gpu_unit >= 0;
	}
	gres_node_state_t *vs = compat::node_gres(node, vslice_id());
	if (ask.slices && (!vs || !vs->gres_bit_alloc || slices != bit_size(vs->gres_bit_alloc)))
		return false;
	gres_node_state_t *gs = compat::node_gres(node, gpu_id());
	return !ask.gpus || (gs && gs->gres_bit_alloc && gpus == bit_size(gs->gres_bit_alloc));
}

// The units a job must not get: slices of devices held whole, whole devices
// with a slice in use, and, for slice jobs, the free slices outside the
// devices the placement policy chose. `none_fit` (where given): set when
// select/flex knows that no candidate node's devices, or not those of a node
// the job requires (-w), can take the job now (fit_is_known).
std::vector<HiddenUnits> hide_units(job_record_t *job, bitstr_t *nodes, const JobAsk &ask,
                                    const NodeEnds *ends, int64_t at, bool *none_fit = nullptr)
{
	std::vector<HiddenUnits> hidden;
	const Placement policy = placement_of(job);
	const std::vector<NodeRequest> requests = node_requests(ask);
	const bool check = none_fit && fit_is_known(job, ask);
	bitstr_t *required = job->details ? job->details->req_node_bitmap : nullptr;
	bool found = false;
	bool required_cannot = false;
	for_each_set_bit(nodes, [&](int i) {
		if (i >= node_record_count || !node_record_table_ptr[i]) {
			found = true; // not select/flex's to judge: cons_tres's test answers
			return;
		}
		node_record_t *node = node_record_table_ptr[i];
		std::vector<DeviceView> devices = devices_of(node);
		const bool is_required = required && i < bit_size(required) && bit_test(required, i);
		if (check && (!found || is_required)) {
			const bool cannot = !devices.empty() && devices_cover(node, devices, ask) &&
			                    !devices_can_hold(devices, requests, policy);
			found = found || !cannot;
			required_cannot = required_cannot || (cannot && is_required);
		}
		if (ends)
			if (const auto e = ends->find(i); e != ends->end())
				devices = devices_at(devices, e->second, at);
		const UnitMasks masks = masks_for(devices, requests, policy);
		auto hide = [&](uint32_t gres, const std::vector<int> &units) {
			gres_node_state_t *ns = compat::node_gres(node, gres);
			if (units.empty() || !ns || !ns->gres_bit_alloc)
				return;
			hidden.emplace_back(ns);
			hidden.back().hide(units);
		};
		hide(vslice_id(), masks.slices);
		hide(gpu_id(), masks.gpus);
	});
	if (none_fit)
		*none_fit = check && (!found || required_cannot);
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
		std::vector<int> unlendable;
		for (int u = 0, size = static_cast<int>(bit_size(ns->gres_bit_alloc)); u < size; ++u)
			if (!ok.count(u))
				unlendable.push_back(u);
		hidden.emplace_back(ns);
		hidden.back().hide(unlendable);
	}
	return hidden;
}

} // namespace

JobTestMasks masks_for_job_test(job_record_t *job, bitstr_t *nodes, uint32_t min_nodes, uint32_t max_nodes,
                                uint16_t mode, const NodeEnds *ends, int64_t at, bool answer_unfit)
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
	if (ask.slices || ask.gpus) {
		bool none_fit = false;
		out.hidden = hide_units(job, nodes, ask, ends, at, answer_unfit ? &none_fit : nullptr);
		if (none_fit) {
			debug2("select/flex: JobId=%u: no candidate node's devices can take it now",
			       compat::job_id_of(job));
			out.hidden.clear();
			out.refusal = SLURM_ERROR; // not now: pending, Reason=Resources
		}
	}
	return out;
}

int test_with_units_hidden(job_record_t *job, bitstr_t *nodes, uint32_t min_nodes, uint32_t max_nodes,
                           uint16_t mode, const std::function<int()> &test, bool *refused,
                           const NodeEnds *ends, int64_t at, bool answer_unfit)
{
	const JobTestMasks masks =
	        masks_for_job_test(job, nodes, min_nodes, max_nodes, mode, ends, at, answer_unfit);
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
