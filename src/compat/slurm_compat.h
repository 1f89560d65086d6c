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

/*
 * Release families, from the tree's SLURM_VERSION_NUMBER (0xXXYYZZ):
 *   22.05         headers in src/common, List, gres epilog_* hooks
 *   24.11         src/interfaces, list_t, prep_* hooks, add_gres_to_list(conf)
 *   25.11, 26.05  as 24.11, and fini() returns void
 */
#define FLEXSLURM_SLURM_AT_LEAST(x, y) (SLURM_VERSION_NUMBER >= SLURM_VERSION_NUM(x, y, 0))

/* From 23.11 a struct field in Slurm's headers is named `operator`. */
#define operator operator_
extern "C" {
#include "config.h"

#include "slurm/slurm.h"
#include "slurm/slurm_errno.h"

#include "src/common/slurm_xlator.h"

#include "src/common/bitstring.h"
#include "src/common/env.h"
#include "src/common/list.h"
#include "src/common/log.h"
#include "src/common/node_conf.h"
#include "src/common/pack.h"
#include "src/common/plugin.h"
#include "src/common/read_config.h"
#include "src/common/run_in_daemon.h"
#include "src/common/xmalloc.h"
#include "src/common/xstring.h"

#if FLEXSLURM_SLURM_AT_LEAST(27, 0) || !FLEXSLURM_SLURM_AT_LEAST(22, 5) ||                                   \
        (FLEXSLURM_SLURM_AT_LEAST(22, 6) && !FLEXSLURM_SLURM_AT_LEAST(24, 11)) ||                            \
        (FLEXSLURM_SLURM_AT_LEAST(24, 12) && !FLEXSLURM_SLURM_AT_LEAST(25, 11)) ||                           \
        (FLEXSLURM_SLURM_AT_LEAST(25, 12) && !FLEXSLURM_SLURM_AT_LEAST(26, 5))
#error "unsupported Slurm release: configure should have refused this tree (supported: 22.05 24.11 25.11 26.05)"
#endif

#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
#include "src/interfaces/gres.h"
#else
#include "src/common/gres.h"
#endif

#if defined(FLEXSLURM_COMPAT_GRES)
#include "src/slurmd/slurmd/slurmd.h"
#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
#include "src/interfaces/cgroup.h"
#else
#include "src/common/cgroup.h"
#endif
#endif

#if defined(FLEXSLURM_COMPAT_SELECT)
#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
#include "src/interfaces/select.h"
#else
#include "src/common/select.h"
#endif
#include "src/slurmctld/locks.h"
#include "src/slurmctld/slurmctld.h"
#endif

#if defined(FLEXSLURM_COMPAT_JOB_SUBMIT)
#include "src/slurmctld/slurmctld.h"
#endif
}
#undef operator

#include "core/util/log.hpp"

#include <string>
#include <vector>

namespace flexslurm::compat
{

/* The core logs through Slurm's own log functions, each line prefixed with
 * the plugin's name (set log_prefix in init()). */
inline const char *log_prefix = "flexslurm";
inline void slurm_log_sink(LogLevel level, const char *message)
{
	switch (level) {
	case LogLevel::Error:
		error("%s: %s", log_prefix, message);
		break;
	case LogLevel::Info:
		info("%s: %s", log_prefix, message);
		break;
	case LogLevel::Verbose:
		verbose("%s: %s", log_prefix, message);
		break;
	case LogLevel::Debug:
		debug("%s: %s", log_prefix, message);
		break;
	}
}

#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
using list_ptr = list_t *;
using list_iter = list_itr_t *;
#else
using list_ptr = List;
using list_iter = ListIterator;
#endif

/* Controller addresses in slurm.conf order (the backup answers when the
 * primary does not). */
inline std::vector<std::string> controller_hosts()
{
	std::vector<std::string> hosts;
	for (uint32_t i = 0; i < slurm_conf.control_cnt; ++i)
		if (slurm_conf.control_addr && slurm_conf.control_addr[i])
			hosts.emplace_back(slurm_conf.control_addr[i]);
	return hosts;
}

#if FLEXSLURM_SLURM_AT_LEAST(25, 11)
using fini_result = void;
#define FLEXSLURM_FINI_RETURN return
#else
using fini_result = int;
#define FLEXSLURM_FINI_RETURN return SLURM_SUCCESS
#endif

} // namespace flexslurm::compat

#if defined(FLEXSLURM_COMPAT_GRES)
/*
 * slurmd's configuration: present in slurmd and slurmstepd, absent in
 * slurmctld and clients, hence weak. Used for the node name, which 22.05
 * does not pass to gres node_config_load, and for how slurmd runs (-G, -D).
 */
#pragma weak conf

namespace flexslurm::compat
{

/* Name of the node this slurmd runs as (-N with multiple slurmd), or "". */
inline const char *slurmd_node_name()
{
	return (&conf && conf && conf->node_name) ? conf->node_name : "";
}

/* slurmstepd's path as slurmd runs it (SBINDIR/slurmstepd, or slurmd -d). */
inline const char *slurmd_stepd_path()
{
	return (&conf && conf && conf->stepd_loc) ? conf->stepd_loc : "";
}

/* cgroup.conf's CgroupPrepend (cgroup/v1; "%n" for the node name), or ""
 * before slurmd has read cgroup.conf. Weak: absent outside the daemons. */
#pragma weak slurm_cgroup_conf
inline const char *cgroup_prepend()
{
	return (&slurm_cgroup_conf && slurm_cgroup_conf.cgroup_prepend) ? slurm_cgroup_conf.cgroup_prepend
	                                                                : "";
}

/* slurmd -G: loads the GRES plugins only to print what they found, then
 * exits (slurmd -C exits before loading them). */
inline bool slurmd_prints_only()
{
	return &conf && conf && conf->print_gres;
}

/* Whether slurmd loads its GRES plugins before it forks into its daemon
 * (without -D): 22.05 does (_slurmd_init, then xdaemon); 24.11, 25.11 and
 * 26.05 daemonize first. A reconfigure's load runs in the daemon. */
inline bool slurmd_daemonizes_after_gres_load()
{
#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
	return false;
#else
	return &conf && conf && conf->daemonize;
#endif
}

/* One gres.conf-like record: `count` units of `name`, bound to `file`. */
inline void add_device_record(list_ptr list, const char *name, uint64_t count, uint32_t cpu_cnt,
                              const char *cpus_abs, bitstr_t *cpus_bitmap, const char *file, const char *type)
{
#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
	gres_slurmd_conf_t conf = {};
	conf.count = count;
	conf.cpu_cnt = cpu_cnt;
	conf.cpus = const_cast<char *>(cpus_abs);
	conf.cpus_bitmap = cpus_bitmap;
	conf.file = const_cast<char *>(file);
	conf.name = const_cast<char *>(name);
	conf.type_name = const_cast<char *>(type);
	add_gres_to_list(list, &conf);
#else
	add_gres_to_list(list, const_cast<char *>(name), count, static_cast<int>(cpu_cnt),
	                 const_cast<char *>(cpus_abs), cpus_bitmap, const_cast<char *>(file),
	                 const_cast<char *>(type), nullptr, nullptr, 0);
#endif
}

/* The prolog/epilog hooks: epilog_* with gres_epilog_info_t until 22.05,
 * prep_* with gres_prep_t after. */
#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
using prep_info_t = gres_prep_t;
#define FLEXSLURM_GRES_PREP_BUILD_ENV gres_p_prep_build_env
#define FLEXSLURM_GRES_PREP_SET_ENV gres_p_prep_set_env
#else
using prep_info_t = gres_epilog_info_t;
#define FLEXSLURM_GRES_PREP_BUILD_ENV gres_p_epilog_build_env
#define FLEXSLURM_GRES_PREP_SET_ENV gres_p_epilog_set_env
#endif

} // namespace flexslurm::compat

/* 22.05 also asks every GRES plugin for two getters, removed later. */
#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
#define FLEXSLURM_GRES_INFO_GETTERS
#else
#define FLEXSLURM_GRES_INFO_GETTERS                                                                          \
	int gres_p_get_job_info(gres_job_state_t *, uint32_t, enum gres_job_data_type, void *)               \
	{                                                                                                    \
		return EINVAL;                                                                               \
	}                                                                                                    \
	int gres_p_get_step_info(gres_step_state_t *, uint32_t, enum gres_step_data_type, void *)            \
	{                                                                                                    \
		return EINVAL;                                                                               \
	}
#endif
#endif

#if defined(FLEXSLURM_COMPAT_JOB_SUBMIT)
/* job_modify gained the message back to the user in 23.02. */
#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
#define FLEXSLURM_JOB_MODIFY_PARAMS                                                                          \
	job_desc_msg_t *job_desc, job_record_t *job_ptr, uint32_t submit_uid, char **err_msg
#define FLEXSLURM_JOB_MODIFY_ERR_MSG err_msg
#else
#define FLEXSLURM_JOB_MODIFY_PARAMS job_desc_msg_t *job_desc, job_record_t *job_ptr, uint32_t submit_uid
#define FLEXSLURM_JOB_MODIFY_ERR_MSG nullptr
#endif
#endif

#if defined(FLEXSLURM_COMPAT_SELECT)
/*
 * slurmd and the clients load select plugins too (22.05), where the
 * controller's own symbols do not exist: weak, and used only by the lending
 * service, which runs only in slurmctld.
 */
#pragma weak job_list
#pragma weak slurmctld_primary
#pragma weak slurmctld_config
#pragma weak control_time
#pragma weak find_job_record
#pragma weak job_signal
#pragma weak lock_slurmctld
#pragma weak unlock_slurmctld
#pragma weak queue_job_scheduler
#if FLEXSLURM_SLURM_AT_LEAST(25, 11)
#pragma weak job_requeue_internal
#else
#pragma weak job_requeue
#endif

/* slurmctld's own (controller.c, every release from 22.05 to 26.05), in no
 * header: when this process took control, 0 while it is a standby backup or
 * still recovering its state. */
extern "C" time_t control_time;

namespace flexslurm::compat
{

/*
 * Whether this slurmctld is the one in control now. slurmctld_primary says
 * only which SlurmctldHost line this is: a backup that took over never sets
 * it. control_time is set once a primary, or a backup that took over, runs
 * as the controller, and cleared when a backup goes back to standby;
 * shutdown_time is set while the process stops, gives control back to the
 * primary, or (23.11 and later) re-executes itself for a reconfigure.
 */
inline bool controller_in_control()
{
	if (!&slurmctld_config || !&control_time)
		return false; // not slurmctld
	return slurmctld_config.shutdown_time == 0 && control_time != 0;
}

/* The select plugin select/flex wraps. */
inline constexpr const char *wrapped_select_type = "select/cons_tres";

#if FLEXSLURM_SLURM_AT_LEAST(25, 11)
/* From 25.05 Slurm loads only the SelectType plugin and treats it as
 * cons_tres when its plugin_id is cons_tres's. */
inline constexpr uint32_t select_plugin_id = SELECT_PLUGIN_CONS_TRES;
#else
/* Until 24.11 every select plugin in PluginDir is loaded: ids are unique. */
inline constexpr uint32_t select_plugin_id = 150;
#endif

/* cons_tres's entry points, in the order Slurm's select ops table has them
 * (src/interfaces/select.c keeps that table private from 24.11 on). */
#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
struct select_ops_t {
	uint32_t *plugin_id;
#if !FLEXSLURM_SLURM_AT_LEAST(25, 11)
	int (*state_save)(char *dir_name);
	int (*state_restore)(char *dir_name);
	int (*job_init)(list_t *job_list);
#endif
	int (*node_init)(void);
	int (*job_test)(job_record_t *job_ptr, bitstr_t *bitmap, uint32_t min_nodes, uint32_t max_nodes,
	                uint32_t req_nodes, uint16_t mode, list_t *preemptee_candidates,
	                list_t **preemptee_job_list, resv_exc_t *resv_exc_ptr, will_run_data_t *will_run_ptr);
	int (*job_begin)(job_record_t *job_ptr);
	int (*job_ready)(job_record_t *job_ptr);
	int (*job_expand)(job_record_t *from_job_ptr, job_record_t *to_job_ptr);
	int (*job_resized)(job_record_t *job_ptr, node_record_t *node_ptr);
#if FLEXSLURM_SLURM_AT_LEAST(26, 5)
	void (*job_mem_reduce)(job_record_t *job_ptr);
#endif
	int (*job_fini)(job_record_t *job_ptr);
	int (*job_suspend)(job_record_t *job_ptr, bool indf_susp);
	int (*job_resume)(job_record_t *job_ptr, bool indf_susp);
#if !FLEXSLURM_SLURM_AT_LEAST(25, 11)
	bitstr_t *(*step_pick_nodes)(job_record_t *job_ptr, select_jobinfo_t *step_jobinfo,
	                             uint32_t node_count, bitstr_t **avail_nodes);
	int (*step_start)(step_record_t *step_ptr);
	int (*step_finish)(step_record_t *step_ptr, bool killing_step);
	int (*nodeinfo_pack)(select_nodeinfo_t *nodeinfo, buf_t *buffer, uint16_t protocol_version);
	int (*nodeinfo_unpack)(select_nodeinfo_t **nodeinfo, buf_t *buffer, uint16_t protocol_version);
	select_nodeinfo_t *(*nodeinfo_alloc)(void);
	int (*nodeinfo_free)(select_nodeinfo_t *nodeinfo);
#endif
	int (*nodeinfo_set_all)(void);
	int (*nodeinfo_set)(job_record_t *job_ptr);
#if !FLEXSLURM_SLURM_AT_LEAST(25, 11)
	int (*nodeinfo_get)(select_nodeinfo_t *nodeinfo, enum select_nodedata_type dinfo,
	                    enum node_states state, void *data);
	select_jobinfo_t *(*jobinfo_alloc)(void);
	int (*jobinfo_free)(select_jobinfo_t *jobinfo);
	int (*jobinfo_set)(select_jobinfo_t *jobinfo, enum select_jobdata_type data_type, void *data);
	int (*jobinfo_get)(select_jobinfo_t *jobinfo, enum select_jobdata_type data_type, void *data);
	select_jobinfo_t *(*jobinfo_copy)(select_jobinfo_t *jobinfo);
	int (*jobinfo_pack)(select_jobinfo_t *jobinfo, buf_t *buffer, uint16_t protocol_version);
	int (*jobinfo_unpack)(select_jobinfo_t **jobinfo_pptr, buf_t *buffer, uint16_t protocol_version);
	int (*get_info_from_plugin)(enum select_plugindata_info dinfo, job_record_t *job_ptr, void *data);
#endif
	int (*reconfigure)(void);
};
#else
using select_ops_t = slurm_select_ops_t;
#endif

inline const char *select_ops_names[] = {
        "plugin_id",
#if !FLEXSLURM_SLURM_AT_LEAST(25, 11)
        "select_p_state_save",
        "select_p_state_restore",
        "select_p_job_init",
#endif
        "select_p_node_init",
        "select_p_job_test",
        "select_p_job_begin",
        "select_p_job_ready",
        "select_p_job_expand",
        "select_p_job_resized",
#if !FLEXSLURM_SLURM_AT_LEAST(24, 11)
        "select_p_job_signal",
#endif
#if FLEXSLURM_SLURM_AT_LEAST(26, 5)
        "select_p_job_mem_reduce",
#endif
        "select_p_job_fini",
        "select_p_job_suspend",
        "select_p_job_resume",
#if !FLEXSLURM_SLURM_AT_LEAST(25, 11)
        "select_p_step_pick_nodes",
        "select_p_step_start",
        "select_p_step_finish",
        "select_p_select_nodeinfo_pack",
        "select_p_select_nodeinfo_unpack",
        "select_p_select_nodeinfo_alloc",
        "select_p_select_nodeinfo_free",
#endif
        "select_p_select_nodeinfo_set_all",
        "select_p_select_nodeinfo_set",
#if !FLEXSLURM_SLURM_AT_LEAST(25, 11)
        "select_p_select_nodeinfo_get",
        "select_p_select_jobinfo_alloc",
        "select_p_select_jobinfo_free",
        "select_p_select_jobinfo_set",
        "select_p_select_jobinfo_get",
        "select_p_select_jobinfo_copy",
        "select_p_select_jobinfo_pack",
        "select_p_select_jobinfo_unpack",
#endif
#if !FLEXSLURM_SLURM_AT_LEAST(24, 11)
        "select_p_select_jobinfo_sprint",
        "select_p_select_jobinfo_xstrdup",
#endif
#if !FLEXSLURM_SLURM_AT_LEAST(25, 11)
        "select_p_get_info_from_plugin",
#endif
#if !FLEXSLURM_SLURM_AT_LEAST(24, 11)
        "select_p_update_node_config",
#endif
        "select_p_reconfigure",
#if !FLEXSLURM_SLURM_AT_LEAST(24, 11)
        "select_p_resv_test",
#endif
};
static_assert(sizeof(select_ops_names) / sizeof(select_ops_names[0]) == sizeof(select_ops_t) / sizeof(void *),
              "select_ops_names must list every member of select_ops_t");

/* select_p_job_test's parameters after the first six. */
#if FLEXSLURM_SLURM_AT_LEAST(24, 11)
#define FLEXSLURM_JOB_TEST_TAIL_PARAMS                                                                       \
	list_t *preemptee_candidates, list_t **preemptee_job_list, resv_exc_t *resv_exc_ptr,                 \
	        will_run_data_t *will_run_ptr
#define FLEXSLURM_JOB_TEST_TAIL_ARGS preemptee_candidates, preemptee_job_list, resv_exc_ptr, will_run_ptr
#else
#define FLEXSLURM_JOB_TEST_TAIL_PARAMS                                                                       \
	List preemptee_candidates, List *preemptee_job_list, bitstr_t *exc_core_bitmap
#define FLEXSLURM_JOB_TEST_TAIL_ARGS preemptee_candidates, preemptee_job_list, exc_core_bitmap
#endif

/* Requeue a running batch job as the controller itself (uid 0): the
 * borrower's reclaim. Not from inside a select_p_* call (locks). */
inline int requeue_job(job_record_t *job)
{
#if FLEXSLURM_SLURM_AT_LEAST(25, 11)
	return job_requeue_internal(0, job, false, 0);
#else
	return job_requeue(0, job->job_id, nullptr, false, 0);
#endif
}

/* Reading the job and node records (and the partitions' names) while
 * other readers go on; released when it goes away. */
class JobReadLock
{
public:
	JobReadLock() { lock_slurmctld(levels_); }
	~JobReadLock() { unlock_slurmctld(levels_); }
	JobReadLock(const JobReadLock &) = delete;
	JobReadLock &operator=(const JobReadLock &) = delete;

private:
#if FLEXSLURM_SLURM_AT_LEAST(26, 5)
	slurmctld_lock_t levels_ = {.conf = NO_LOCK,
	                            .job = READ_LOCK,
	                            .node = READ_LOCK,
	                            .part = READ_LOCK,
	                            .fed = NO_LOCK,
	                            .select_node = NO_LOCK};
#else
	slurmctld_lock_t levels_ = {
	        .conf = NO_LOCK, .job = READ_LOCK, .node = READ_LOCK, .part = READ_LOCK, .fed = NO_LOCK};
#endif
};

/* What `scontrol requeue` holds (job and node write, fed read), plus the
 * partitions for reading their names; released when it goes away. */
class JobWriteLock
{
public:
	JobWriteLock() { lock_slurmctld(levels_); }
	~JobWriteLock() { unlock_slurmctld(levels_); }
	JobWriteLock(const JobWriteLock &) = delete;
	JobWriteLock &operator=(const JobWriteLock &) = delete;

private:
#if FLEXSLURM_SLURM_AT_LEAST(26, 5)
	slurmctld_lock_t levels_ = {.conf = NO_LOCK,
	                            .job = WRITE_LOCK,
	                            .node = WRITE_LOCK,
	                            .part = READ_LOCK,
	                            .fed = READ_LOCK,
	                            .select_node = NO_LOCK};
#else
	slurmctld_lock_t levels_ = {
	        .conf = NO_LOCK, .job = WRITE_LOCK, .node = WRITE_LOCK, .part = READ_LOCK, .fed = READ_LOCK};
#endif
};

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
