// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * gres/vborrow: the units of idle reclaim. A node has as many borrow units
 * per device as slices, unit u shadowing slice u on the same device file;
 * select/flex decides which units a borrower may be allocated. A
 * borrower's environment carries the slice's compute share and only memory
 * no slice reserved.
 *
 * gres/vborrow does not discover the node: in slurmd it reads the slice
 * layout gres/vslice saved (inventory.layout_file) a moment before, since
 * slurmd loads GRES plugins in GresTypes order. That dependency is checked
 * (core/io/layout_handoff.*): without vslice's layout of this start,
 * gres/vborrow refuses to load with one line naming GresTypes.
 *
 * What both GRES plugins share is in src/plugins/gres_common. Every entry
 * point runs through plugin::guarded: no C++ exception reaches Slurm.
 */
#include "plugins/gres_common/slice_gres.hpp"

#include "core/io/layout_handoff.hpp"
#include "core/util/log.hpp"
#include "core/util/node_name.hpp"
#include "plugins/common/entry_guard.hpp"

#include <ctime>
#include <string>

#define LOG_PREFIX "gres/vborrow: "

extern "C" {
extern const char plugin_name[] = "gres/vborrow: idle slices to borrow (flexslurm " FLEXSLURM_VERSION ")";
extern const char plugin_type[] = "gres/vborrow";
extern const uint32_t plugin_version = SLURM_VERSION_NUMBER;
}

namespace
{

using namespace flexslurm;
using plugin::guarded;
using plugin::guarded_void;

// Filled by node_config_load in slurmd and by recv_stepd in slurmstepd.
plugin::SliceGres vborrow("vborrow", true);
plugin::SliceGres &this_gres()
{
	return vborrow;
}
// gres/vslice's layout counts if saved after this: set at load and after
// each node_config_load, both before gres/vslice's next node_config_load.
timespec layout_not_before{};

int load_node_config(compat::list_ptr gres_conf_list, node_config_load_t *node_conf)
{
	const char *gres_types = slurm_conf.gres_plugins ? slurm_conf.gres_plugins : "";
	if (const std::string order = borrow_order_problem(gres_types); !order.empty()) {
		error(LOG_PREFIX "%s", order.c_str());
		return SLURM_ERROR;
	}
	// flexslurm.yaml only says where the layout is; gres/vslice already
	// reported anything wrong with it.
	std::optional<Config> config = plugin::load_node_config_file();
	if (!config)
		return SLURM_ERROR;
	const std::string path = expand_node_name(config->layout_file, compat::slurmd_node_name());
	auto layout = load_layout_saved_since(path, layout_not_before);
	if (!layout) {
		error(LOG_PREFIX
		      "no slice layout from gres/vslice at this start (%s): gres/vborrow needs gres/vslice to load without error just before it (GresTypes=%s lists vslice, then vborrow); see gres/vslice's error above",
		      layout.error().c_str(), gres_types);
		return SLURM_ERROR;
	}
	vborrow.adopt(std::move(*layout));
	info(LOG_PREFIX "slice layout read from %s (saved by gres/vslice at this start): %d borrow units",
	     path.c_str(), vborrow.layout()->total_slices());
	vborrow.publish(gres_conf_list, node_conf);
	for (const DeviceSlices &d : vborrow.layout()->devices())
		info(LOG_PREFIX "%s %s: %d borrow units (index %d-%d), %llu MiB of unreserved memory each%s",
		     std::string(vendor_name(d.vendor)).c_str(), d.device_path.c_str(), d.slices,
		     d.first_slice, d.first_slice + d.slices - 1,
		     static_cast<unsigned long long>(d.borrow_memory_bytes >> 20),
		     d.borrow_memory_bytes ? "" : " (slices reserve all memory: nothing is lent here)");
	return SLURM_SUCCESS;
}

} // namespace

extern "C" {

int init(void)
{
	return guarded(
	        "init",
	        [] {
		        compat::use_slurm_log(plugin_type);
		        layout_not_before = file_clock_now();
		        debug("%s: loaded", plugin_type);
		        return static_cast<int>(SLURM_SUCCESS);
	        },
	        static_cast<int>(SLURM_ERROR));
}

compat::fini_result fini(void)
{
	guarded_void("fini", [] { vborrow.clear(); });
	FLEXSLURM_FINI_RETURN;
}

int gres_p_node_config_load(compat::list_ptr gres_conf_list, node_config_load_t *node_conf)
{
	const int rc = guarded(
	        "node_config_load", [&] { return load_node_config(gres_conf_list, node_conf); },
	        static_cast<int>(SLURM_ERROR));
	// A reconfigure's gres/vslice saves a newer one.
	layout_not_before = file_clock_now();
	return rc;
}

#include "plugins/gres_common/gres_entry_points.inc"

} // extern "C"
