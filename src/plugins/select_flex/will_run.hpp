// SPDX-License-Identifier: GPL-2.0-or-later
// Backfill's will-run test (SELECT_MODE_WILL_RUN) of a slice or whole-GPU job
// that cannot start now. cons_tres plans a start by simulating the running
// jobs' ends, but the units job_test hides stay hidden through that
// simulation: a device whose slices all end never turns into a whole GPU
// there (nor a device held whole into slices). A whole-GPU job behind sliced
// devices got no planned start, so no backfill reservation, and later slice
// jobs kept taking the devices it waited for. Here select/flex reads when
// each held unit comes back (its holder's end of time limit), finds when
// each candidate node's devices can take the job, and asks cons_tres again
// as of those times. Caller holds the controller's job and node locks.
#pragma once

#ifndef FLEXSLURM_COMPAT_SELECT
#define FLEXSLURM_COMPAT_SELECT
#endif
#include "slurm_compat.h"

#include <cstdint>
#include <functional>

namespace flexslurm::select_flex
{

// At most this many later times are tried, earliest first: each is one more
// cons_tres will-run test.
inline constexpr int will_run_steps = 4;

// Backfill's will-run test of the job on `nodes`: `test` (cons_tres's
// job_test on `nodes`) with the units hidden as they are now and, when that
// gives no start now, again as of the times at which candidate nodes'
// devices can take the job, earliest first, each with `nodes` cut to the
// nodes ready by then and the units hidden as they will be then, while a
// time can still beat the best plan. The earliest plan wins: its nodes are
// left in `nodes` and the job's start time is no earlier than the time it
// was tried at. When no candidate's devices can take the job now, the
// earliest time min_nodes of them can is tried first: a start then is the
// best plan, and cons_tres's test as of now is not made. No plan: the
// answer of cons_tres's test as of now.
// Drops the kept reading of the running jobs' units (select_p_reconfigure:
// Slurm 22.05 to 23.02 rebuild the node table in place, node indices may
// change under the same jobs).
void forget_running_ends();

int will_run_planned(job_record_t *job, bitstr_t *nodes, uint32_t min_nodes, uint32_t max_nodes,
                     compat::WillRunWindow window, const std::function<int()> &test);

} // namespace flexslurm::select_flex
