// SPDX-License-Identifier: GPL-2.0-or-later
// Which slurmd process runs the node agent (core/agent_process).
#include "suites.hpp"

#include "core/service/agent_process.hpp"

#include <memory>

using namespace flexslurm;

namespace
{

pid_t fake_pid = 100;
pid_t current_pid()
{
	return fake_pid;
}

struct Tracked {
	explicit Tracked(int *destroyed) : destroyed_(destroyed) {}
	~Tracked() { ++*destroyed_; }
	int *destroyed_;
};

} // namespace

START_TEST(agent_starts_only_in_the_serving_slurmd)
{
	ck_assert(agent_start({.in_slurmd = true}) == AgentStart::Now);
	ck_assert(agent_start({.in_slurmd = true, .daemonizes_later = true}) == AgentStart::AfterDaemonizing);
	// slurmd -G prints and exits: no agent, with or without -D.
	ck_assert(agent_start({.in_slurmd = true, .print_only = true}) == AgentStart::Never);
	ck_assert(agent_start({.in_slurmd = true, .print_only = true, .daemonizes_later = true}) ==
	          AgentStart::Never);
	ck_assert(agent_start({.in_slurmd = false}) == AgentStart::Never);
}
END_TEST

START_TEST(only_xdaemons_grandchild_is_the_daemon)
{
	const pid_t session = 50; // slurmd's session (an init script's, or its own)
	// xdaemon: child 200 calls setsid (session 200) and forks 201.
	ck_assert(is_daemon_of(session, 201, 200));
	// The first child, before setsid, and any plain child of slurmd.
	ck_assert(!is_daemon_of(session, 200, session));
	ck_assert(!is_daemon_of(session, 300, session));
	// A child that called setsid itself leads its session.
	ck_assert(!is_daemon_of(session, 200, 200));
	// slurmd -D started as a session leader (setsid slurmd -D): its children.
	ck_assert(!is_daemon_of(100, 300, 100));
	ck_assert(!is_daemon_of(0, 201, 200));
	ck_assert(!is_daemon_of(session, 201, -1));
}
END_TEST

START_TEST(process_local_object_is_destroyed_only_by_its_owner)
{
	int destroyed = 0;
	fake_pid = 100;
	{
		ProcessLocal<Tracked> p(current_pid);
		p.reset(std::make_unique<Tracked>(&destroyed));
		ck_assert_int_eq(p.owner(), 100);
		ck_assert_ptr_nonnull(p.get());
		// A fork's copy (another pid): nothing there, and replacing or
		// dropping it must not run the destructor (which would join a
		// thread that is not in that process).
		fake_pid = 101;
		ck_assert_ptr_null(p.get());
		p.reset(std::make_unique<Tracked>(&destroyed));
		ck_assert_int_eq(destroyed, 0);
		ck_assert_int_eq(p.owner(), 101);
		ck_assert_ptr_nonnull(p.get());
		// Its own owner destroys it.
		p.reset();
		ck_assert_int_eq(destroyed, 1);
		ck_assert_ptr_null(p.get());
		p.reset(std::make_unique<Tracked>(&destroyed));
	}
	ck_assert_int_eq(destroyed, 2); // destructor in the owner
	{
		fake_pid = 100;
		ProcessLocal<Tracked> p(current_pid);
		p.reset(std::make_unique<Tracked>(&destroyed));
		fake_pid = 102;
	}
	ck_assert_int_eq(destroyed, 2); // destructor in a copy: left alone
}
END_TEST

Suite *agent_process_suite()
{
	Suite *s = suite_create("agent_process");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, agent_starts_only_in_the_serving_slurmd);
	tcase_add_test(tc, only_xdaemons_grandchild_is_the_daemon);
	tcase_add_test(tc, process_local_object_is_destroyed_only_by_its_owner);
	suite_add_tcase(s, tc);
	return s;
}
