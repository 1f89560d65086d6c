// SPDX-License-Identifier: GPL-2.0-or-later
// Which slurmd process runs the node agent's thread. A thread lives only in
// the process that created it: slurmd 22.05 loads its GRES plugins (and so
// the agent) before it daemonizes, `slurmd -G` loads them only to print and
// exit, and slurmd forks for every step and script. The rules here keep the
// agent in the one process that serves the node, and keep every other
// process from joining (or reporting through) a thread it does not have.
//
// Slurm-free: the plugin hands in what slurmd's configuration says.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <memory>
#include <utility>

namespace flexslurm
{

enum class AgentStart {
	Now,              // this process serves the node (slurmd -D, or already a daemon)
	AfterDaemonizing, // slurmd forks into its daemon later: start there
	Never,            // not slurmd, or slurmd -G / -C (prints and exits)
};

struct SlurmdMode {
	bool in_slurmd = false;
	bool print_only = false;       // slurmd -G (or -C): prints and exits
	bool daemonizes_later = false; // slurmd still has to fork into its daemon
};

AgentStart agent_start(const SlurmdMode &mode) noexcept;

// Slurm's xdaemon() forks, calls setsid() in the child and forks again: the
// grandchild is the daemon, in a session it does not lead (its parent's, who
// may have exited already). True for such a process (`self`, `session`: its
// getpid() and getsid(0)) when `creator_session` is the session of the
// process that loaded the plugin: a plain child of that process stays in its
// session, and the child that called setsid() leads the new one.
bool is_daemon_of(pid_t creator_session, pid_t self, pid_t session) noexcept;

// An object with a thread of its own, owned by the process that made it. In
// a forked copy of that process get() is null and reset() forgets the copy
// without destroying it (its destructor would join a thread that is not in
// this process, and hang).
template <class T>
class ProcessLocal
{
public:
	using PidSource = pid_t (*)();
	explicit ProcessLocal(PidSource pid = &::getpid) noexcept : pid_(pid) {}
	~ProcessLocal() { reset(); }
	ProcessLocal(const ProcessLocal &) = delete;
	ProcessLocal &operator=(const ProcessLocal &) = delete;

	void reset(std::unique_ptr<T> next = nullptr)
	{
		if (object_ && pid_() != owner_)
			(void)object_.release(); // another process's: its memory here is a copy
		object_.reset();
		object_ = std::move(next);
		owner_ = object_ ? pid_() : 0;
	}
	T *get() const noexcept { return object_ && pid_() == owner_ ? object_.get() : nullptr; }
	pid_t owner() const noexcept { return owner_; }

private:
	PidSource pid_;
	std::unique_ptr<T> object_;
	pid_t owner_ = 0;
};

} // namespace flexslurm
