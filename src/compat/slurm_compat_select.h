/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The slurmctld side of slurm_compat.h (select/flex): the controller's
 * symbols, cons_tres's entry points and their table, requeue and the
 * controller's locks, per release. Included by slurm_compat.h when the
 * plugin defines FLEXSLURM_COMPAT_SELECT; not on its own.
 */
#ifndef FLEXSLURM_SLURM_COMPAT_SELECT_H
#define FLEXSLURM_SLURM_COMPAT_SELECT_H

#ifndef FLEXSLURM_SLURM_COMPAT_H
#error "include slurm_compat.h, not slurm_compat_select.h"
#endif

/*
 * slurmd and the clients load select plugins too (22.05), where the
 * controller's own symbols do not exist: weak, and used only by the lending
 * service, which runs only in slurmctld.
 */
#pragma weak job_list
#pragma weak last_job_update
#pragma weak slurmctld_primary
#pragma weak slurmctld_config
#pragma weak control_time
#pragma weak find_job_record
#pragma weak job_signal
#pragma weak lock_slurmctld
#pragma weak unlock_slurmctld
#pragma weak queue_job_scheduler
#pragma weak acct_db_conn
#pragma weak acct_storage_g_modify_job
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
/* The window backfill tests in WILL_RUN mode ({0, 0}: from now, no end). */
#define FLEXSLURM_WILL_RUN_WINDOW                                                                            \
	flexslurm::compat::WillRunWindow                                                                     \
	{                                                                                                    \
		will_run_ptr ? will_run_ptr->start : 0, will_run_ptr ? will_run_ptr->end : 0                 \
	}
#else
#define FLEXSLURM_JOB_TEST_TAIL_PARAMS                                                                       \
	List preemptee_candidates, List *preemptee_job_list, bitstr_t *exc_core_bitmap
#define FLEXSLURM_JOB_TEST_TAIL_ARGS preemptee_candidates, preemptee_job_list, exc_core_bitmap
#define FLEXSLURM_WILL_RUN_WINDOW                                                                            \
	flexslurm::compat::WillRunWindow {}
#endif
struct WillRunWindow {
	time_t start = 0, end = 0;
};

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

/*
 * Sends the job's SystemComment to the accounting storage (slurmdbd) as an
 * update of the job's record, queued without waiting for an answer: what
 * Slurm's burst buffer plugins do for theirs (bb_update_system_comment,
 * 22.05 to 26.05). Slurm sends no SystemComment with a job's start or end
 * record. With AccountingStorageType=accounting_storage/none it does nothing.
 * Caller holds the job write lock.
 */
inline void store_system_comment(job_record_t *job)
{
	if (!&acct_db_conn || !&acct_storage_g_modify_job || !job->system_comment || !job->details)
		return;
	slurm_selected_step_t step{};
	step.array_task_id = NO_VAL;
	step.step_id.job_id = job->job_id;
	step.het_job_offset = NO_VAL;
	step.step_id.step_id = NO_VAL;
	step.step_id.step_het_comp = NO_VAL;
	slurmdb_job_cond_t cond{};
	cond.step_list = list_create(nullptr);
	list_append(cond.step_list, &step);
	cond.flags = JOBCOND_FLAG_NO_WAIT | JOBCOND_FLAG_NO_DEFAULT_USAGE;
	// Any scheduling flags (0 would match only jobs with none, as sacctmgr
	// modify job knows and the burst buffer call above does not).
	cond.db_flags = SLURMDB_JOB_FLAG_NOTSET;
	cond.cluster_list = list_create(nullptr);
	list_append(cond.cluster_list, slurm_conf.cluster_name);
	cond.usage_start = job->details->submit_time;
	slurmdb_job_rec_t rec{};
	rec.derived_ec = NO_VAL; // unchanged (Slurm's own call above sets it to 0)
	rec.system_comment = job->system_comment;
	auto answer = acct_storage_g_modify_job(acct_db_conn, slurm_conf.slurm_user_id, &cond, &rec);
	FREE_NULL_LIST(answer);
	FREE_NULL_LIST(cond.cluster_list);
	FREE_NULL_LIST(cond.step_list);
}

/* Holds slurmctld's locks at `levels` while it lives. */
class SlurmctldLock
{
public:
	explicit SlurmctldLock(slurmctld_lock_t levels) : levels_(levels) { lock_slurmctld(levels_); }
	~SlurmctldLock() { unlock_slurmctld(levels_); }
	SlurmctldLock(const SlurmctldLock &) = delete;
	SlurmctldLock &operator=(const SlurmctldLock &) = delete;

	/* The job and node records at `records`, the partitions (their names)
	 * for reading, federation at `fed`; nothing else (in every release:
	 * the fields a release adds stay NO_LOCK). */
	static slurmctld_lock_t levels(lock_level_t records, lock_level_t fed) noexcept
	{
		slurmctld_lock_t l{};
		l.job = records;
		l.node = records;
		l.part = READ_LOCK;
		l.fed = fed;
		return l;
	}

private:
	slurmctld_lock_t levels_;
};

/* Reading the job and node records (and the partitions' names) while
 * other readers go on. */
class JobReadLock : public SlurmctldLock
{
public:
	JobReadLock() : SlurmctldLock(levels(READ_LOCK, NO_LOCK)) {}
};

/* What `scontrol requeue` holds (job and node write, fed read), plus the
 * partitions for reading their names. */
class JobWriteLock : public SlurmctldLock
{
public:
	JobWriteLock() : SlurmctldLock(levels(WRITE_LOCK, READ_LOCK)) {}
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
