// Isolation at launch: which nodes a job keeps, the plugstack arguments,
// and the private device directory itself (in a child, as root).
#include "suites.hpp"

#include "core/io/command.hpp"
#include "core/io/isolation.hpp"
#include "core/io/job_state.hpp"
#include "core/model/limits.hpp"
#include "core/model/spank_config.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

using namespace flexslurm;

namespace
{

SliceLayout mixed_layout()
{
	auto l = SliceLayout::deserialize("flexslurm-layout 1\n"
	                                  "nvidia\t0\tt4\t/d/nvidia0\t195:0\t0\t4\t25\t0\t\n"
	                                  "nvidia\t1\tt4\t/d/nvidia1\t195:1\t4\t4\t25\t0\t\n"
	                                  "amd\t0\tmi210\t/d/dri/renderD128\t226:128\t8\t4\t25\t0\t\n"
	                                  "amd\t1\tmi210\t/d/dri/renderD129\t226:129\t12\t4\t25\t0\t\n");
	ck_assert_msg(static_cast<bool>(l), "%s", l.error().c_str());
	return *l;
}

std::string paths(const std::vector<std::string> &v)
{
	std::string out;
	for (const auto &p : v)
		out += (out.empty() ? "" : " ") + p;
	return out;
}

} // namespace

START_TEST(held_devices_resolve_vendor_indices_in_layout_order)
{
	SliceLayout l = mixed_layout();
	auto held = held_devices(l, "1,0", ""); // nvidia1, then amd0 (not nvidia0)
	ck_assert_uint_eq(held.size(), 2);
	ck_assert_str(held[0]->device_path, "/d/nvidia1");
	ck_assert_str(held[1]->device_path, "/d/dri/renderD128");
	// A version 1 layout has no gpu units: gres/gpu unit 3 is the fourth device.
	held = held_devices(l, "", "3");
	ck_assert_str(held.at(0)->device_path, "/d/dri/renderD129");
	ck_assert(held_devices(l, "x,,9", "17").empty());
	IsolationPlan plan = plan_isolation(l, held_device_paths(l, "0", "1"));
	ck_assert_str(paths(plan.visible), "/d/nvidia0 /d/nvidia1");
	ck_assert_str(paths(plan.hidden), "/d/dri/renderD128 /d/dri/renderD129");
	plan = plan_isolation(l, {});
	ck_assert_uint_eq(plan.hidden.size(), 4);
}
END_TEST

START_TEST(plugstack_arguments)
{
	auto ok =
	        parse_plugstack_args({"isolation=optional", "layout=/run/x/%n", "limits=preload",
	                              "limits.nvidia=mps", "preload=/opt/hami/libvgpu.so", "job_dir=/run/m"});
	ck_assert_msg(static_cast<bool>(ok), "%s", ok.error().c_str());
	ck_assert(ok->isolation == FailurePolicy::Optional);
	ck_assert_str(ok->layout_file, "/run/x/%n");
	ck_assert(ok->limits_for(Vendor::Nvidia) == LimitBackend::Mps);
	ck_assert(ok->limits_for(Vendor::Amd) == LimitBackend::Preload);
	ck_assert_str(ok->job_dir, "/run/m");
	auto mps_all = parse_plugstack_args({"limits=mps"}); // NVIDIA only; the others keep none
	ck_assert(mps_all->limits_for(Vendor::Nvidia) == LimitBackend::Mps);
	ck_assert(mps_all->limits_for(Vendor::Ascend) == LimitBackend::None);
	ck_assert(parse_plugstack_args({})->isolation == FailurePolicy::Required);
	ck_assert_str(parse_plugstack_args({"isolation=maybe"}).error(),
	              "isolation: \"maybe\" is not allowed (allowed: required, optional)");
	ck_assert_str(parse_plugstack_args({"layout=run"}).error(),
	              "layout: \"run\" is not an absolute path (allowed: an absolute path, %n stands for the "
	              "node name)");
	ck_assert_str(parse_plugstack_args({"limits=fast"}).error(),
	              "limits: \"fast\" is not allowed (allowed: none, preload, mps)");
	ck_assert_str(parse_plugstack_args({"limits.amd=mps"}).error(),
	              "limits.amd: mps is NVIDIA's (allowed: none, preload)");
	ck_assert_str(parse_plugstack_args({"limits.intel=none"}).error(),
	              "limits.intel: unknown vendor \"intel\" (allowed: nvidia, amd, ascend)");
	ck_assert_str(parse_plugstack_args({"limits=preload"}).error(),
	              "limits: preload needs preload=PATH (the interception library) or preload=system (it "
	              "is in /etc/ld.so.preload)");
	auto system = parse_plugstack_args({"limits.amd=preload", "preload=system"});
	ck_assert(system->preload_system && system->preload.empty());
	ck_assert_str(
	        parse_plugstack_args({"colour=red"}).error(),
	        "unknown plugstack argument \"colour=red\" (allowed: isolation=required|optional, "
	        "layout=PATH, "
	        "limits[.VENDOR]=none|preload|mps, preload=PATH|system, mps_control=PATH, job_dir=PATH)");
	ck_assert_str(parse_plugstack_args({"mps_dir=/run/flexslurm/mps"}).error(),
	              "mps_dir: replaced by job_dir=PATH (each job's limits and MPS directories, root's; "
	              "default /run/flexslurm/jobs): remove mps_dir");
}
END_TEST

START_TEST(limits_from_slices)
{
	auto l = SliceLayout::deserialize("flexslurm-layout 1\n"
	                                  "nvidia\t0\tt4\t/d/nvidia0\t195:0\t0\t4\t25\t4026531840\t\n"
	                                  "nvidia\t1\tt4\t/d/nvidia1\t195:1\t4\t4\t25\t4026531840\t\n");
	ck_assert(static_cast<bool>(l));
	auto held = held_devices(*l, "0,1", "");
	auto limits = device_limits(held, "1,3");
	ck_assert_uint_eq(limits.size(), 2);
	ck_assert_int_eq(limits[1].ordinal, 1);
	ck_assert_int_eq(limits[1].compute_percent, 75);
	ck_assert_uint_eq(limits[1].memory_mib, 11520);
	ck_assert_str(mps_limit_commands(limits, 1000), "set_default_active_thread_percentage 25\n"
	                                                "set_default_device_pinned_mem_limit 0 3840M\n"
	                                                "set_default_device_pinned_mem_limit 1 11520M\n"
	                                                "start_server -uid 1000\n");
	auto env =
	        preload_environment(limits, "/opt/libvgpu.so", "/usr/lib/other.so", "/run/j/7/preload.cache");
	std::string text;
	for (const auto &v : env)
		text += v.name + "=" + v.value + "\n";
	ck_assert_str(text, "LD_PRELOAD=/opt/libvgpu.so:/usr/lib/other.so\n"
	                    "CUDA_DEVICE_MEMORY_LIMIT_0=3840m\n"
	                    "CUDA_DEVICE_MEMORY_LIMIT_1=11520m\n"
	                    "CUDA_DEVICE_SM_LIMIT=25\n"
	                    "CUDA_DEVICE_MEMORY_SHARED_CACHE=/run/j/7/preload.cache\n");
	// the library in /etc/ld.so.preload: LD_PRELOAD is the user's business
	ck_assert_str(preload_environment(limits, "", "/x.so", "/c").front().name,
	              "CUDA_DEVICE_MEMORY_LIMIT_0");
	ck_assert_str(preload_config(limits, "/c"),
	              "CUDA_DEVICE_MEMORY_LIMIT_0=3840m\n"
	              "CUDA_DEVICE_MEMORY_LIMIT_1=11520m\n"
	              "CUDA_DEVICE_SM_LIMIT=25\nCUDA_DEVICE_MEMORY_SHARED_CACHE=/c\n");
	// counts that gres/vslice could not have written give no limit
	ck_assert(device_limits(held, "9,x").empty());
	ck_assert(preload_environment({}, "/opt/libvgpu.so", "", "/c").empty());
}
END_TEST

START_TEST(job_limits_file_round_trip_and_bounds)
{
	JobLimits job;
	job.job = 42;
	job.uid = 1000;
	job.devices = {{Vendor::Nvidia, 1, 0, 50, 7680, LimitBackend::Mps},
	               {Vendor::Amd, 0, 0, 25, 0, LimitBackend::Preload}};
	const std::string text = encode_job_limits(job);
	ck_assert_str(text,
	              "flexslurm-limits 1\njob 42 uid 1000\nnvidia 1 0 50 7680 mps\namd 0 0 25 - preload\n");
	auto back = decode_job_limits(text);
	ck_assert_msg(static_cast<bool>(back), "%s", back.error().c_str());
	ck_assert(*back == job);
	auto err = [](const std::string &t) { return decode_job_limits(t).error(); };
	ck_assert_str(err("flexslurm-layout 1\n"), "limits file: not a flexslurm limits file (version 1)");
	ck_assert_str(err("flexslurm-limits 1\n"), "limits file: truncated");
	ck_assert_str(err("flexslurm-limits 1\njob 0 uid 1\n"),
	              "limits file: line 2: expected \"job <id> uid <uid>\"");
	const std::string head = "flexslurm-limits 1\njob 4 uid 1\n";
	for (const char *line : {"nvidia 1 0 101 5 mps", "nvidia 1 0 0 5 mps", "nvidia -1 0 5 5 mps",
	                         "intel 1 0 5 5 mps", "nvidia 1 0 5 0 mps", "nvidia 1 0 5 5",
	                         "nvidia 1 0 5 5 mps x", "nvidia 1 0 5 99999999999999999 mps"})
		ck_assert_msg(!decode_job_limits(head + line + "\n"), "accepted: %s", line);
	ck_assert_str(err(head + "amd 1 0 5 5 mps\n"), "limits file: line 3: unknown backend \"mps\"");
	ck_assert_str(err(head + "nvidia 1 0 5 5 mps"), "limits file: line 3 is not terminated");
	std::string many = head;
	for (int i = 0; i < 65; ++i)
		many += "nvidia " + std::to_string(i) + " 0 5 5 mps\n";
	ck_assert_str(err(many), "limits file: more than 64 devices");
	ck_assert_str(err(std::string(job_limits_max_bytes + 1, 'x')),
	              "limits file: larger than 16384 bytes");

	// a step that holds the job's second device only sees it as its device 0
	auto l = SliceLayout::deserialize("flexslurm-layout 1\n"
	                                  "nvidia\t0\tt4\t/d/nvidia0\t195:0\t0\t4\t25\t4026531840\t\n"
	                                  "nvidia\t1\tt4\t/d/nvidia1\t195:1\t4\t4\t25\t4026531840\t\n");
	JobLimits two;
	two.job = 5;
	two.devices = {{Vendor::Nvidia, 0, 0, 25, 3840, LimitBackend::Preload},
	               {Vendor::Nvidia, 1, 1, 75, 11520, LimitBackend::Preload}};
	auto step = limits_for_step(two, LimitBackend::Preload, held_devices(*l, "1", ""));
	ck_assert_uint_eq(step.size(), 1);
	ck_assert_int_eq(step[0].ordinal, 0);
	ck_assert_int_eq(step[0].compute_percent, 75);
	ck_assert(limits_for_step(two, LimitBackend::Mps, held_devices(*l, "0,1", "")).empty());

	auto p = job_paths("/run/flexslurm/jobs/", 42);
	ck_assert_str(p.dir, "/run/flexslurm/jobs/42");
	ck_assert_str(p.limits, "/run/flexslurm/jobs/42/limits");
	ck_assert_str(p.preload_cache, "/run/flexslurm/jobs/42/preload.cache");
	ck_assert_str(p.mps_pipe, "/run/flexslurm/jobs/42/mps-pipe");
}
END_TEST

// What a step may use comes from the job's allocation (the prolog's root
// file), never from SLURM_VSLICE_DEVICES alone: a user can set that.
START_TEST(step_devices_never_exceed_the_jobs_allocation)
{
	SliceLayout l = mixed_layout();
	JobLimits job;
	job.job = 9;
	job.devices = {{Vendor::Nvidia, 1, 0, 25, 0, LimitBackend::None},
	               {Vendor::Amd, 0, 1, 25, 0, LimitBackend::None}};
	auto names = [](const std::vector<const DeviceSlices *> &v) {
		std::string out;
		for (const DeviceSlices *d : v)
			out += (out.empty() ? "" : " ") + d->device_path;
		return out;
	};
	// Slurm's own value: the job's devices (nvidia1, amd0).
	ck_assert_str(names(step_devices(l, &job, "1,0")), "/d/nvidia1 /d/dri/renderD128");
	// A step holding part of them.
	ck_assert_str(names(step_devices(l, &job, "1")), "/d/nvidia1");
	// A user's value naming devices the job does not hold: dropped.
	ck_assert_str(names(step_devices(l, &job, "0,1,0,1")), "/d/nvidia1 /d/dri/renderD128");
	ck_assert_str(names(step_devices(l, &job, "0")), "");
	ck_assert_str(names(step_devices(l, &job, "0,1,2,3,4,5,6,7")), "/d/nvidia1");
	// No allocation on this node (no prolog state): nothing, whatever is claimed.
	ck_assert(step_devices(l, nullptr, "0,1").empty());
	ck_assert(step_devices(l, &job, "").empty());
	// The limits a step gets are then the job's for those devices.
	job.devices[0].backend = LimitBackend::Preload;
	auto lim = limits_for_step(job, LimitBackend::Preload, step_devices(l, &job, "0,1"));
	ck_assert_uint_eq(lim.size(), 1);
	ck_assert_int_eq(lim[0].host_index, 1);
	ck_assert_int_eq(lim[0].ordinal, 0);
}
END_TEST

// The per-job directory is root's, made without following links: a link
// planted where it goes is removed, its target untouched.
START_TEST(job_state_is_root_owned_and_follows_no_link)
{
	if (geteuid() != 0)
		return; // chown needs root; CI runs as root
	char tmpl[] = "/tmp/flexslurm-jobs-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	const std::string top = tmpl;
	chmod(top.c_str(), 0755);
	const std::string target = top + "-target";
	close(open(target.c_str(), O_CREAT | O_WRONLY, 0600));
	const JobPaths p = job_paths(top, 9);
	ck_assert_int_eq(mkdir(p.dir.c_str(), 0777), 0);
	ck_assert_int_eq(symlink(target.c_str(), p.mps_log.c_str()), 0);
	ck_assert_int_eq(symlink(target.c_str(), p.limits.c_str()), 0);
	std::string note;
	auto r = create_job_state(top, p, {"flexslurm-limits 1\njob 9 uid 65534\n", "X=1\n", true}, 65534,
	                          65534, note);
	ck_assert_msg(static_cast<bool>(r), "%s", r.error().c_str());
	ck_assert_str(note, "removed what was already at " + p.dir);
	struct stat st {
	};
	ck_assert_int_eq(stat(target.c_str(), &st), 0);
	ck_assert_uint_eq(st.st_uid, 0);
	ck_assert_uint_eq(st.st_size, 0);
	ck_assert_int_eq(lstat(p.mps_log.c_str(), &st), 0);
	ck_assert(S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 0777) == 0700);
	ck_assert_int_eq(lstat(p.mps_pipe.c_str(), &st), 0);
	ck_assert(S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 0777) == 0755);
	ck_assert_int_eq(lstat(p.preload_cache.c_str(), &st), 0);
	ck_assert(S_ISREG(st.st_mode) && st.st_uid == 65534 && (st.st_mode & 0777) == 0600);
	ck_assert_str(*read_root_file(p.limits, 100), "flexslurm-limits 1\njob 9 uid 65534\n");
	ck_assert(!read_root_file(p.preload_cache, 100)); // the user's: not trusted
	ck_assert(!read_root_file(p.limits, 5));
	// a job_dir others may write is refused
	chmod(top.c_str(), 0777);
	ck_assert(!create_job_state(top, job_paths(top, 10), {"x", "", false}, 0, 0, note));
	remove_job_state(p);
	ck_assert_int_ne(lstat(p.dir.c_str(), &st), 0);
	ck_assert_int_eq(stat(target.c_str(), &st), 0);
	rmdir(top.c_str());
	unlink(target.c_str());
}
END_TEST

START_TEST(commands_run_bounded)
{
	auto ok = run_command({"/bin/sh", "-c", "read a; [ \"$a\" = quit ] && [ \"$X\" = 1 ]"}, {"X=1"},
	                      "quit\n", 5000);
	ck_assert_msg(static_cast<bool>(ok), "%s", ok.error().c_str());
	ck_assert_int_eq(*ok, 0);
	ck_assert_int_eq(*run_command({"/bin/false"}, {}, "", 5000), 1);
	ck_assert_str(run_command({"/nonexistent/mps-control"}, {}, "", 5000).error(),
	              "cannot execute /nonexistent/mps-control");
	ck_assert_str(run_command({"/bin/sleep", "5"}, {}, "", 200).error(),
	              "/bin/sleep did not finish within 200 ms");
	// a program that does not read its input must not raise SIGPIPE here
	ck_assert_int_eq(*run_command({"/bin/true"}, {}, std::string(1 << 20, 'x'), 5000), 0);
}
END_TEST

// slurmstepd's spank prolog/epilog runs with stdin, stdout and stderr
// closed: the pipe then gets descriptor 0 and must still reach the program.
START_TEST(commands_get_their_input_when_the_caller_has_no_stdin)
{
	close(STDIN_FILENO);
	close(STDOUT_FILENO);
	auto ok = run_command({"/bin/sh", "-c", "read a; [ \"$a\" = quit ]"}, {}, "quit\n", 5000);
	ck_assert_msg(static_cast<bool>(ok), "%s", ok.error().c_str());
	ck_assert_int_eq(*ok, 0);
}
END_TEST

// As another user, the program keeps none of the caller's supplementary
// groups (slurmstepd's: root, disk, shadow ...) and none of its descriptors.
START_TEST(commands_drop_groups_and_descriptors)
{
	if (geteuid() != 0)
		return; // changing user needs root; CI runs as root
	const gid_t extra[] = {0, 6, 42};
	const bool had_groups = setgroups(3, extra) == 0;
	const int leaked = open("/dev/null", O_RDONLY); // no O_CLOEXEC: would be inherited
	ck_assert_int_ge(leaked, 3);
	const std::string check =
	        "[ \"$(id -G)\" = 65534 ] && [ ! -e /proc/$$/fd/" + std::to_string(leaked) + " ]";
	auto r = run_command({"/bin/sh", "-c", check}, {"PATH=/usr/bin:/bin"}, "", 5000, 65534, 65534);
	close(leaked);
	if (had_groups)
		setgroups(0, nullptr);
	ck_assert_msg(static_cast<bool>(r), "%s", r.error().c_str());
	ck_assert_int_eq(*r, 0);
}
END_TEST

// The private view, for real: a child unshares, and reports what it sees.
START_TEST(private_device_view_hides_only_the_hidden)
{
	if (geteuid() != 0)
		return; // mount namespaces need root; CI runs as root
	char tmpl[] = "/tmp/flexslurm-view-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	const std::string d = tmpl;
	ck_assert_int_eq(mkdir((d + "/dri").c_str(), 0755), 0);
	for (const char *f : {"/nvidia0", "/nvidia1", "/null", "/dri/renderD128", "/dri/renderD129"})
		close(open((d + f).c_str(), O_CREAT | O_WRONLY, 0644));
	ck_assert_int_eq(symlink("nvidia0", (d + "/link").c_str()), 0);

	const pid_t pid = fork();
	if (pid == 0) {
		auto r = enter_private_device_view(d, {d + "/nvidia1", d + "/dri/renderD129"});
		if (!r)
			_exit(10);
		auto exists = [&](const char *f) { return access((d + f).c_str(), F_OK) == 0; };
		const bool ok = exists("/nvidia0") && !exists("/nvidia1") && exists("/null") &&
		                exists("/dri/renderD128") && !exists("/dri/renderD129") && exists("/link");
		_exit(ok ? 0 : 11);
	}
	int status = 0;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	// The host view is untouched.
	ck_assert_int_eq(access((d + "/nvidia1").c_str(), F_OK), 0);
	ck_assert_int_eq(access((d + "/dri/renderD129").c_str(), F_OK), 0);
	std::string cleanup = "rm -rf " + d;
	ck_assert_int_eq(std::system(cleanup.c_str()), 0);
}
END_TEST

START_TEST(cgroup_check_reports_openable_nodes)
{
	std::vector<std::string> unfenced;
	ck_assert(devices_cgroup_denies({"/nonexistent/nvidia9"}, unfenced));
	ck_assert(!devices_cgroup_denies({"/dev/null"}, unfenced)); // opens: not fenced
	ck_assert_str(paths(unfenced), "/dev/null");
}
END_TEST

Suite *isolation_suite()
{
	Suite *s = suite_create("isolation");
	TCase *tc = tcase_create("isolation");
	tcase_add_test(tc, commands_drop_groups_and_descriptors);
	tcase_add_test(tc, held_devices_resolve_vendor_indices_in_layout_order);
	tcase_add_test(tc, plugstack_arguments);
	tcase_add_test(tc, limits_from_slices);
	tcase_add_test(tc, job_limits_file_round_trip_and_bounds);
	tcase_add_test(tc, step_devices_never_exceed_the_jobs_allocation);
	tcase_add_test(tc, job_state_is_root_owned_and_follows_no_link);
	tcase_add_test(tc, commands_run_bounded);
	tcase_add_test(tc, commands_get_their_input_when_the_caller_has_no_stdin);
	tcase_add_test(tc, private_device_view_hides_only_the_hidden);
	tcase_add_test(tc, cgroup_check_reports_openable_nodes);
	suite_add_tcase(s, tc);
	return s;
}
