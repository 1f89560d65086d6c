/*
 * The one place where Slurm releases differ for flexslurm. Plugin files
 * include this header instead of Slurm's internal headers, and use only the
 * names it defines. configure picks the Slurm source tree; the release it
 * holds decides the branch below.
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
#include "src/slurmd/slurmd/slurmd.h"
#else
#error "flexslurm supports Slurm 22.05 in this release; configure should have refused this tree"
#endif
}

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
