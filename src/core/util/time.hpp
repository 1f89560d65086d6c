// SPDX-License-Identifier: GPL-2.0-or-later
// The time types of the core: whole seconds, and the instants that the
// policy, the wire and the state files speak of. Kept apart from the policy
// (lending.hpp) so that transport and codec headers need not include it.
#pragma once

#include <chrono>

namespace flexslurm
{

using Seconds = std::chrono::seconds;
// The policy's timeline, in whole seconds. The controller feeds it from a
// steady (monotonic) clock so that a wall clock step neither takes loans
// back early nor delays a reclaim; only what crosses the wire or a restart
// (a report's sent_at, the state file, the history) is wall clock time.
using Instant = std::chrono::sys_seconds;

} // namespace flexslurm
