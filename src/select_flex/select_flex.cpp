/*
 * select/flex: select/cons_tres, taught that a vslice and a gpu can be the
 * same silicon. Every select_p_* call is handed to cons_tres (loaded as a
 * second plugin context, the way select/cray_aries wraps "other"); job_test
 * first hides, for the length of the call, the GRES units the job must not
 * get: slices of devices held whole, whole devices with a slice in use, and,
 * for slice jobs, the free slices outside the devices the placement policy
 * chose. cons_tres then picks as usual: nodes, cores, memory, backfill and
 * preemption stay its business. Placement decisions live in the core
 * (src/core/placement.*); this file only translates.
 */
#define FLEXSLURM_COMPAT_SELECT
#include "slurm_compat.h"

#include "core/config.hpp"
#include "core/log.hpp"
#include "core/placement.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

extern "C" {
extern const char plugin_name[] =
        "select/flex: slice-aware select/cons_tres (flexslurm " FLEXSLURM_VERSION ")";
extern const char plugin_type[] = "select/flex";
extern const uint32_t plugin_id = flexslurm::compat::select_plugin_id;
extern const uint32_t plugin_version = SLURM_VERSION_NUMBER;
}

namespace
{

using namespace flexslurm;

constexpr const char *config_file_name = "flexslurm.yaml";

std::mutex delegate_lock;
plugin_context_t *delegate_context = nullptr;
compat::select_ops_t ops{};
Config config = Config::defaults();

// cons_tres is loaded on first use: clients (sinfo, squeue) load every
// select plugin in PluginDir and most never call it.
bool delegate()
{
	std::lock_guard<std::mutex> guard(delegate_lock);
	if (delegate_context)
		return true;
	delegate_context = plugin_context_create(
	        "select", compat::wrapped_select_type, reinterpret_cast<void **>(&ops),
	        const_cast<const char **>(compat::select_ops_names), sizeof(compat::select_ops_names));
	if (!delegate_context)
		error("select/flex: cannot load %s, which select/flex wraps", compat::wrapped_select_type);
	return delegate_context != nullptr;
}

bool is_selected_plugin()
{
	return running_in_slurmctld() && !xstrcmp(slurm_conf.select_type, plugin_type);
}

int load_config()
{
	char *path_c = get_extra_conf_path(const_cast<char *>(config_file_name));
	const std::string path = path_c ? path_c : config_file_name;
	xfree(path_c);
	struct stat st {
	};
	if (stat(path.c_str(), &st) != 0) {
		info("select/flex: %s: %s; placement best_fit everywhere", path.c_str(),
		     std::strerror(errno));
		return SLURM_SUCCESS;
	}
	auto loaded = Config::from_file(path);
	if (!loaded) {
		error("flexslurm: %s", loaded.error().c_str());
		return SLURM_ERROR;
	}
	config = *loaded;
	info("select/flex: placement %s by default, %zu partition override(s)",
	     std::string(placement_name(config.default_placement)).c_str(),
	     config.partition_placement.size());
	return SLURM_SUCCESS;
}

// ---------------------------------------------------------------------------
// Slurm's GRES state <-> the core's view of a node's devices

uint32_t vslice_id()
{
	static const uint32_t id = gres_build_id(const_cast<char *>("vslice"));
	return id;
}

uint32_t gpu_id()
{
	static const uint32_t id = gres_build_id(const_cast<char *>("gpu"));
	return id;
}

std::vector<int> set_bits(bitstr_t *bits, int first, int count)
{
	std::vector<int> out;
	if (!bits)
		return out;
	for (int i = first; i < first + count && i < bit_size(bits); ++i)
		if (bit_test(bits, i))
			out.push_back(i);
	return out;
}

// gres/vslice registers one topology entry per device; gpu units are matched
// to devices in order within each type (gres.conf lists a node's GPUs in PCI
// order, as AutoDetect does), or in plain order when the types differ.
std::vector<DeviceView> devices_of(node_record_t *node)
{
	std::vector<DeviceView> devices;
	gres_node_state_t *vs = compat::node_gres(node, vslice_id());
	if (!vs || !vs->topo_gres_bitmap)
		return devices;
	for (int t = 0; t < vs->topo_cnt; ++t) {
		bitstr_t *units = vs->topo_gres_bitmap[t];
		if (!units)
			continue;
		DeviceView d;
		d.first_slice = static_cast<int>(bit_ffs(units));
		d.slices = bit_set_count(units);
		if (d.first_slice < 0)
			continue;
		d.type = vs->topo_type_name && vs->topo_type_name[t] ? vs->topo_type_name[t] : "";
		d.used_slices = set_bits(vs->gres_bit_alloc, d.first_slice, d.slices);
		devices.push_back(std::move(d));
	}

	gres_node_state_t *gs = compat::node_gres(node, gpu_id());
	if (!gs || !gs->gres_bit_alloc)
		return devices;
	const int gpu_units = static_cast<int>(bit_size(gs->gres_bit_alloc));
	std::vector<std::string> gpu_type(static_cast<size_t>(gpu_units));
	for (int t = 0; gs->topo_gres_bitmap && t < gs->topo_cnt; ++t)
		for (int u : set_bits(gs->topo_gres_bitmap[t], 0, gpu_units))
			gpu_type[static_cast<size_t>(u)] =
			        gs->topo_type_name && gs->topo_type_name[t] ? gs->topo_type_name[t] : "";
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

struct JobAsk {
	bool slices = false;
	bool gpus = false;
	NodeRequest per_node;
};

JobAsk job_ask(job_record_t *job, uint32_t max_nodes)
{
	JobAsk ask;
	if (!job->gres_list_req)
		return ask;
	compat::list_iter it = list_iterator_create(job->gres_list_req);
	while (auto *state = static_cast<gres_state_t *>(list_next(it))) {
		auto *js = static_cast<gres_job_state_t *>(state->gres_data);
		if (state->plugin_id == gpu_id()) {
			ask.gpus = true;
		} else if (state->plugin_id == vslice_id()) {
			ask.slices = true;
			ask.per_node.type = js->type_name ? js->type_name : "";
			if (js->gres_per_node)
				ask.per_node.slices = static_cast<int>(js->gres_per_node);
			else if (js->gres_per_job && max_nodes == 1)
				ask.per_node.slices = static_cast<int>(js->gres_per_job);
			else
				ask.per_node.slices = -1; // spread over nodes by cons_tres
		}
	}
	list_iterator_destroy(it);
	ask.per_node.gpus = ask.gpus;
	return ask;
}

// Hides units of one GRES on one node by counting them allocated, exactly as
// a job holding them would, and puts everything back when it goes away.
class HiddenUnits
{
public:
	explicit HiddenUnits(gres_node_state_t *ns)
	    : ns_(ns), cnt_alloc_(ns->gres_cnt_alloc), bits_(bit_copy(ns->gres_bit_alloc)),
	      topo_alloc_(ns->topo_gres_cnt_alloc, ns->topo_gres_cnt_alloc + ns->topo_cnt),
	      type_alloc_(ns->type_cnt_alloc, ns->type_cnt_alloc + ns->type_cnt)
	{
	}
	HiddenUnits(const HiddenUnits &) = delete;
	HiddenUnits &operator=(const HiddenUnits &) = delete;
	HiddenUnits(HiddenUnits &&other) noexcept
	    : ns_(std::exchange(other.ns_, nullptr)), cnt_alloc_(other.cnt_alloc_),
	      bits_(std::exchange(other.bits_, nullptr)), topo_alloc_(std::move(other.topo_alloc_)),
	      type_alloc_(std::move(other.type_alloc_))
	{
	}
	~HiddenUnits()
	{
		if (!ns_)
			return;
		ns_->gres_cnt_alloc = cnt_alloc_;
		bit_copybits(ns_->gres_bit_alloc, bits_);
		FREE_NULL_BITMAP(bits_);
		std::copy(topo_alloc_.begin(), topo_alloc_.end(), ns_->topo_gres_cnt_alloc);
		std::copy(type_alloc_.begin(), type_alloc_.end(), ns_->type_cnt_alloc);
		xfree(ns_->gres_used); // a cached "in use" string, rebuilt on demand
	}

	void hide(int unit)
	{
		if (unit < 0 || unit >= bit_size(ns_->gres_bit_alloc) || bit_test(ns_->gres_bit_alloc, unit))
			return;
		bit_set(ns_->gres_bit_alloc, unit);
		ns_->gres_cnt_alloc++;
		for (int t = 0; ns_->topo_gres_bitmap && t < ns_->topo_cnt; ++t) {
			if (!ns_->topo_gres_bitmap[t] || unit >= bit_size(ns_->topo_gres_bitmap[t]) ||
			    !bit_test(ns_->topo_gres_bitmap[t], unit))
				continue;
			ns_->topo_gres_cnt_alloc[t]++;
			for (int k = 0; k < ns_->type_cnt; ++k)
				if (ns_->type_id[k] == ns_->topo_type_id[t])
					ns_->type_cnt_alloc[k]++;
		}
	}

private:
	gres_node_state_t *ns_;
	uint64_t cnt_alloc_;
	bitstr_t *bits_;
	std::vector<uint64_t> topo_alloc_;
	std::vector<uint64_t> type_alloc_;
};

std::vector<HiddenUnits> hide_units(job_record_t *job, bitstr_t *nodes, const JobAsk &ask)
{
	std::vector<HiddenUnits> hidden;
	const Placement policy =
	        config.placement_for(job->part_ptr && job->part_ptr->name ? job->part_ptr->name : "");
	for (int i = 0; nodes && i < bit_size(nodes); ++i) {
		if (!bit_test(nodes, i) || i >= node_record_count || !node_record_table_ptr[i])
			continue;
		node_record_t *node = node_record_table_ptr[i];
		const UnitMasks masks = masks_for(devices_of(node), ask.per_node, policy);
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

} // namespace

extern "C" {

int init(void)
{
	compat::log_prefix = plugin_type;
	set_log_sink(compat::slurm_log_sink);
	if (!is_selected_plugin())
		return SLURM_SUCCESS;
	int rc = SLURM_ERROR;
	try {
		rc = load_config();
	} catch (...) {
		error("select/flex: init: unexpected failure");
	}
	// A refused init would make Slurm retry the load and log the reason
	// twice before its own fatal: stop here, after the one line above.
	if (rc != SLURM_SUCCESS)
		fatal("select/flex: refusing to start with a broken %s", config_file_name);
	return rc;
}

compat::fini_result fini(void)
{
	std::lock_guard<std::mutex> guard(delegate_lock);
	if (delegate_context)
		plugin_context_destroy(delegate_context);
	delegate_context = nullptr;
	FLEXSLURM_FINI_RETURN;
}

int select_p_job_test(job_record_t *job_ptr, bitstr_t *bitmap, uint32_t min_nodes, uint32_t max_nodes,
                      uint32_t req_nodes, uint16_t mode, FLEXSLURM_JOB_TEST_TAIL_PARAMS)
{
	if (!delegate())
		return SLURM_ERROR;
	std::vector<HiddenUnits> hidden;
	try {
		const JobAsk ask = job_ask(job_ptr, max_nodes);
		if (ask.slices && ask.gpus && ask.per_node.slices < 0) {
			// Without a per-node slice count nothing keeps its own
			// slices off the devices it gets whole.
			debug("select/flex: JobId=%u asks for GPUs and slices spread over nodes: refused",
			      compat::job_id_of(job_ptr));
			return ESLURM_INVALID_GRES;
		}
		if (ask.slices || ask.gpus)
			hidden = hide_units(job_ptr, bitmap, ask);
	} catch (const std::exception &e) {
		error("select/flex: job_test JobId=%u: %s", compat::job_id_of(job_ptr), e.what());
		return SLURM_ERROR;
	} catch (...) {
		error("select/flex: job_test JobId=%u: unexpected failure", compat::job_id_of(job_ptr));
		return SLURM_ERROR;
	}
	return ops.job_test(job_ptr, bitmap, min_nodes, max_nodes, req_nodes, mode,
	                    FLEXSLURM_JOB_TEST_TAIL_ARGS);
	// `hidden` restores every node's GRES state here, after cons_tres chose.
}

/* Everything else is cons_tres's, unchanged, per release. */
#include "select_delegates.inc"

int select_p_reconfigure(void)
{
	if (is_selected_plugin() && load_config() != SLURM_SUCCESS)
		error("select/flex: keeping the previous placement settings");
	return delegate() ? ops.reconfigure() : SLURM_ERROR;
}
} // extern "C"
