// Isolation at launch: which nodes a job keeps, the plugstack arguments,
// and the private device directory itself (in a child, as root).
#include "suites.hpp"

#include "core/command.hpp"
#include "core/isolation.hpp"
#include "core/limits.hpp"
#include "core/spank_config.hpp"

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
	held = held_devices(l, "", "3"); // gres/gpu unit 3: the fourth device
	ck_assert_str(held.at(0)->device_path, "/d/dri/renderD129");
	ck_assert(held_devices(l, "x,,9", "17").empty());
	IsolationPlan plan = plan_isolation(l, held_devices(l, "0", "1"));
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
	                              "limits.nvidia=mps", "preload=/opt/hami/libvgpu.so", "mps_dir=/run/m"});
	ck_assert_msg(static_cast<bool>(ok), "%s", ok.error().c_str());
	ck_assert(ok->isolation == FailurePolicy::Optional);
	ck_assert_str(ok->layout_file, "/run/x/%n");
	ck_assert(ok->limits_for(Vendor::Nvidia) == LimitBackend::Mps);
	ck_assert(ok->limits_for(Vendor::Amd) == LimitBackend::Preload);
	ck_assert_str(ok->mps_dir, "/run/m");
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
	              "limits: preload needs preload=PATH (the interception library)");
	ck_assert_str(parse_plugstack_args({"colour=red"}).error(),
	              "unknown plugstack argument \"colour=red\" (allowed: isolation=required|optional, "
	              "layout=PATH, "
	              "limits[.VENDOR]=none|preload|mps, preload=PATH, mps_control=PATH, mps_dir=PATH)");
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
	ck_assert_str(mps_limit_commands(limits), "set_default_active_thread_percentage 25\n"
	                                          "set_default_device_pinned_mem_limit 0 3840M\n"
	                                          "set_default_device_pinned_mem_limit 1 11520M\n");
	auto env = preload_environment(limits, "/opt/libvgpu.so", "/usr/lib/other.so");
	std::string text;
	for (const auto &v : env)
		text += v.name + "=" + v.value + "\n";
	ck_assert_str(text, "LD_PRELOAD=/opt/libvgpu.so:/usr/lib/other.so\n"
	                    "CUDA_DEVICE_MEMORY_LIMIT_0=3840m\n"
	                    "CUDA_DEVICE_MEMORY_LIMIT_1=11520m\n"
	                    "CUDA_DEVICE_SM_LIMIT=25\n");
	// counts that gres/vslice could not have written give no limit
	ck_assert(device_limits(held, "9,x").empty());
	ck_assert(preload_environment({}, "/opt/libvgpu.so", "").empty());
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
	tcase_add_test(tc, commands_run_bounded);
	tcase_add_test(tc, private_device_view_hides_only_the_hidden);
	tcase_add_test(tc, cgroup_check_reports_openable_nodes);
	suite_add_tcase(s, tc);
	return s;
}
