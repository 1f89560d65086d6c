// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/command.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flexslurm
{

namespace
{

long now_ms()
{
	timespec ts{};
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

} // namespace

Result<int> run_command(const std::vector<std::string> &argv, const std::vector<std::string> &env,
                        const std::string &input, int timeout_ms, long uid, long gid)
{
	if (argv.empty())
		return Result<int>::failure("no program");
	std::vector<char *> args, envp;
	for (const auto &a : argv)
		args.push_back(const_cast<char *>(a.c_str()));
	args.push_back(nullptr);
	for (const auto &e : env)
		envp.push_back(const_cast<char *>(e.c_str()));
	envp.push_back(nullptr);

	int in[2];
	if (pipe2(in, O_CLOEXEC) != 0)
		return Result<int>::failure(std::string("pipe: ") + std::strerror(errno));
	const pid_t pid = fork();
	if (pid < 0) {
		close(in[0]);
		close(in[1]);
		return Result<int>::failure(std::string("fork: ") + std::strerror(errno));
	}
	if (pid == 0) {
		// With the caller's stdin closed (slurmstepd's spank prolog and
		// epilog) the pipe is descriptor 0 already: dup2 would then keep
		// its close-on-exec flag.
		if (in[0] == STDIN_FILENO)
			fcntl(in[0], F_SETFD, 0);
		else
			dup2(in[0], STDIN_FILENO);
		const int devnull = open("/dev/null", O_WRONLY);
		if (devnull >= 0) {
			dup2(devnull, STDOUT_FILENO);
			dup2(devnull, STDERR_FILENO);
		}
		// Nothing of the caller's (slurmstepd) but stdin/stdout/stderr:
		// no inherited descriptors, no supplementary groups (root, disk,
		// shadow ...), whatever user it then runs as.
		if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
			for (long fd = 3, max = sysconf(_SC_OPEN_MAX); fd < max; ++fd)
				close(static_cast<int>(fd));
		if (setgroups(0, nullptr) != 0 || (gid >= 0 && setgid(static_cast<gid_t>(gid)) != 0) ||
		    (uid >= 0 && setuid(static_cast<uid_t>(uid)) != 0))
			_exit(126);
		execve(args[0], args.data(), envp.data());
		_exit(127);
	}
	close(in[0]);
	// A program that exits without reading would raise SIGPIPE in the
	// caller (slurmstepd): block it on this thread and drop it if raised.
	sigset_t pipe_set, old_set;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
	for (size_t off = 0; off < input.size();) {
		const ssize_t n = write(in[1], input.data() + off, input.size() - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; // EPIPE: the program exited without reading all
		off += static_cast<size_t>(n);
	}
	close(in[1]);
	sigset_t pending;
	if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
		const timespec zero{};
		sigtimedwait(&pipe_set, nullptr, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old_set, nullptr);

	const long deadline = now_ms() + timeout_ms;
	int status = 0;
	for (;;) {
		const pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return Result<int>::failure(std::string("waitpid: ") + std::strerror(errno));
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return Result<int>::failure(argv[0] + " did not finish within " +
			                            std::to_string(timeout_ms) + " ms");
		}
		poll(nullptr, 0, 20);
	}
	if (WIFEXITED(status)) {
		if (WEXITSTATUS(status) == 127)
			return Result<int>::failure("cannot execute " + argv[0]);
		return WEXITSTATUS(status);
	}
	return Result<int>::failure(argv[0] + " was killed by signal " + std::to_string(WTERMSIG(status)));
}

} // namespace flexslurm
