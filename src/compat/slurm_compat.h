/*
 * The one place where Slurm releases differ for flexslurm. Plugin files
 * include this header instead of Slurm's internal headers, and use only the
 * names it defines. configure picks the Slurm source tree; the release it
 * holds decides the branch below. A plugin defines FLEXSLURM_COMPAT_GRES
 * (slurmd side) or FLEXSLURM_COMPAT_SELECT (slurmctld side) first.
 *
 * Slurm's headers are C; they are included inside extern "C" so that C++
 * translation units see C linkage for every Slurm function.
 */
#ifndef FLEXSLURM_SLURM_COMPAT_H
#define FLEXSLURM_SLURM_COMPAT_H

extern "C" {
#include "config.h"

#include "slurm/slurm.h"
#include "slurm/slurm_errno.h"

#include "src/common/slurm_xlator.h"

#include "src/common/bitstring.h"
#include "src/common/env.h"
#include "src/common/list.h"
#include "src/common/log.h"
#include "src/common/pack.h"
#include "src/common/xmalloc.h"
#include "src/common/read_config.h"
#include "src/common/xstring.h"

#if SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(22, 5, 0) && SLURM_VERSION_NUMBER < SLURM_VERSION_NUM(22, 6, 0)
#include "src/common/gres.h"
#include "src/common/node_conf.h"
#include "src/common/plugin.h"
#include "src/common/run_in_daemon.h"
#if defined(FLEXSLURM_COMPAT_GRES)
#include "src/slurmd/slurmd/slurmd.h"
#endif
#if defined(FLEXSLURM_COMPAT_SELECT)
#include "src/common/select.h"
#include "src/slurmctld/slurmctld.h"
#endif
#else
#error "flexslurm supports Slurm 22.05 in this release; configure should have refused this tree"
#endif
}

#if defined(FLEXSLURM_COMPAT_GRES)
/*
 * slurmd's configuration: present in slurmd and slurmstepd, absent in
 * slurmctld and clients, hence weak. Used only for the node name, which
 * 22.05 does not pass to gres node_config_load.
 */
#pragma weak conf

namespace flexslurm::compat
{

/* Name of the node this slurmd runs as (-N with multiple slurmd), or "". */
inline const char *slurmd_node_name()
{
	return (&conf && conf && conf->node_name) ? conf->node_name : "";
}

} // namespace flexslurm::compat
#endif

#if defined(FLEXSLURM_COMPAT_SELECT)
namespace flexslurm::compat
{

/* The select plugin select/flex wraps, and the order of its entry points in
 * slurm_select_ops_t (src/common/select.h), which plugin_context_create fills. */
inline constexpr const char *wrapped_select_type = "select/cons_tres";
inline const char *select_ops_names[] = {
        "plugin_id",
        "select_p_state_save",
        "select_p_state_restore",
        "select_p_job_init",
        "select_p_node_init",
        "select_p_job_test",
        "select_p_job_begin",
        "select_p_job_ready",
        "select_p_job_expand",
        "select_p_job_resized",
        "select_p_job_signal",
        "select_p_job_fini",
        "select_p_job_suspend",
        "select_p_job_resume",
        "select_p_step_pick_nodes",
        "select_p_step_start",
        "select_p_step_finish",
        "select_p_select_nodeinfo_pack",
        "select_p_select_nodeinfo_unpack",
        "select_p_select_nodeinfo_alloc",
        "select_p_select_nodeinfo_free",
        "select_p_select_nodeinfo_set_all",
        "select_p_select_nodeinfo_set",
        "select_p_select_nodeinfo_get",
        "select_p_select_jobinfo_alloc",
        "select_p_select_jobinfo_free",
        "select_p_select_jobinfo_set",
        "select_p_select_jobinfo_get",
        "select_p_select_jobinfo_copy",
        "select_p_select_jobinfo_pack",
        "select_p_select_jobinfo_unpack",
        "select_p_select_jobinfo_sprint",
        "select_p_select_jobinfo_xstrdup",
        "select_p_get_info_from_plugin",
        "select_p_update_node_config",
        "select_p_reconfigure",
        "select_p_resv_test",
};
static_assert(sizeof(select_ops_names) / sizeof(select_ops_names[0]) ==
                      sizeof(slurm_select_ops_t) / sizeof(void *),
              "select_ops_names must list every member of slurm_select_ops_t");

using select_ops_t = slurm_select_ops_t;

/* A job in log messages, as Slurm's %pJ prints it (plain printf here). */
inline unsigned job_id_of(const job_record_t *job)
{
	return job ? job->job_id : 0;
}

/* Per-node GRES state of one GRES (NULL if the node has none of it). */
inline gres_node_state_t *node_gres(node_record_t *node, uint32_t plugin_id)
{
	if (!node || !node->gres_list)
		return nullptr;
	auto *state = static_cast<gres_state_t *>(list_find_first(
	        node->gres_list,
	        [](void *x, void *key) -> int {
		        return static_cast<gres_state_t *>(x)->plugin_id == *static_cast<uint32_t *>(key);
	        },
	        &plugin_id));
	return state ? static_cast<gres_node_state_t *>(state->gres_data) : nullptr;
}

} // namespace flexslurm::compat
#endif

#endif
