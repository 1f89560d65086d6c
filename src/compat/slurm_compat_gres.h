/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The slurmd side of slurm_compat.h (gres/vslice, gres/vborrow): slurmd's
 * own configuration, the gres.conf records a GRES plugin adds, and the
 * prolog/epilog hooks, per release. Included by slurm_compat.h when the
 * plugin defines FLEXSLURM_COMPAT_GRES; not on its own.
 */
#ifndef FLEXSLURM_SLURM_COMPAT_GRES_H
#define FLEXSLURM_SLURM_COMPAT_GRES_H

#ifndef FLEXSLURM_SLURM_COMPAT_H
#error "include slurm_compat.h, not slurm_compat_gres.h"
#endif

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
