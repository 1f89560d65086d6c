/*
 * The one place where Slurm releases differ for flexslurm. Plugin files
 * include this header instead of Slurm's internal headers, and use only the
 * names it defines. configure picks the Slurm source tree; the release it
 * holds decides the branch below. A plugin defines FLEXSLURM_COMPAT_GRES
 * (slurmd side) or FLEXSLURM_COMPAT_SELECT (slurmctld side) first.
 *
 * Slurm's headers are C; they are included inside extern "C" so that C++
 * translation units see C linkage for every Slurm function.
 *
 * By concern: this file (the release families, Slurm's headers, logging,
 * list types, what every plugin side uses), slurm_holders.h (RAII for
 * Slurm lists, iterators and bitmaps), slurm_compat_gres.h (slurmd side),
 * slurm_compat_select.h (slurmctld side). Plugins include this one only.
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
#include "src/interfaces/accounting_storage.h"
#include "src/interfaces/select.h"
#else
#include "src/common/select.h"
#include "src/common/slurm_accounting_storage.h"
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
 * the plugin's name: each plugin's init() calls use_slurm_log(plugin_type). */
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
inline void use_slurm_log(const char *plugin_type)
{
	log_prefix = plugin_type;
	set_log_sink(slurm_log_sink);
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

#include "slurm_holders.h"

#if defined(FLEXSLURM_COMPAT_GRES)
#include "slurm_compat_gres.h"
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
#include "slurm_compat_select.h"
#endif

#endif
