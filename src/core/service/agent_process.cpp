// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/service/agent_process.hpp"

namespace flexslurm
{

AgentStart agent_start(const SlurmdMode &mode) noexcept
{
	if (!mode.in_slurmd || mode.print_only)
		return AgentStart::Never;
	return mode.daemonizes_later ? AgentStart::AfterDaemonizing : AgentStart::Now;
}

bool is_daemon_of(pid_t creator_session, pid_t self, pid_t session) noexcept
{
	return creator_session > 0 && session > 0 && session != creator_session && session != self;
}

} // namespace flexslurm
