/*
 * SPANK plugin: device isolation at launch. In slurmstepd, before a task
 * drops its privileges, it (1) checks that the step's devices cgroup
 * (task/cgroup ConstrainDevices) denies every accelerator the job does not
 * hold, and (2) gives the task a private mount namespace whose device
 * directory shows only the job's accelerator nodes, the vendor control nodes
 * and everything that is not an accelerator. What counts as an accelerator
 * is the slice layout gres/vslice wrote on this node.
 *
 * srun, sbatch and salloc load this file too: it links no hwloc or libyaml,
 * and does nothing outside slurmstepd but parse its arguments.
 * Every message starts with "flexslurm: " and carries errno text.
 */
// spank.h declares the entry points (slurm_spank_init ...) outside its own
// extern "C" block: include it with C linkage.
extern "C" {
#include <slurm/spank.h>
}

#include "core/command.hpp"
#include "core/isolation.hpp"
#include "core/limits.hpp"
#include "core/node_name.hpp"
#include "core/placement.hpp"
#include "core/slice_layout.hpp"
#include "core/spank_config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace
{

using namespace flexslurm;

std::optional<SpankConfig> config;
int verbose_option = 0;
std::string mps_step_dir; // set while this step's MPS control daemon runs
long job_uid = -1, job_gid = -1;

int set_verbose(int, const char *, int)
{
	verbose_option = 1;
	return ESPANK_SUCCESS;
}

struct spank_option verbose_opt = {
        const_cast<char *>("vslice-verbose"),
        nullptr,
        const_cast<char *>("[flexslurm] print which accelerator device nodes each task "
                           "sees and whether the devices cgroup fences the others"),
        0,
        0,
        set_verbose};

// --vslice-split: the job's slices may come from several devices even when
// one could hold them (select/flex reads the job-control variable).
int split_option = 0;

int set_split(int, const char *, int)
{
	split_option = 1;
	return ESPANK_SUCCESS;
}

struct spank_option split_opt = {
        const_cast<char *>("vslice-split"),
        nullptr,
        const_cast<char *>("[flexslurm] allow the job's slices on a node to come from several "
                           "accelerators instead of waiting for one with enough free slices"),
        0,
        0,
        set_split};

// Local context (sbatch, salloc, srun), after the options: the job record
// keeps the job-control environment, where select/flex looks.
int request_split(spank_t sp) noexcept
{
	if (!split_option || spank_remote(sp))
		return 0;
	char name[64] = {};
	split_variable.copy(name, sizeof name - 1);
	if (spank_job_control_setenv(sp, name, "1", 1) != ESPANK_SUCCESS) {
		slurm_error("flexslurm: --vslice-split: cannot set %s for the job", name);
		return -1;
	}
	return 0;
}

std::string job_env(spank_t sp, const char *name)
{
	char buf[4096];
	if (spank_getenv(sp, name, buf, sizeof buf) != ESPANK_SUCCESS)
		return "";
	return buf;
}

// In a task, slurmstepd's error() reaches the job's output (batch) or srun's
// stderr, and slurmd's log.
void tell_user(const std::string &message)
{
	slurm_error("%s", message.c_str());
}

// The node's slice layout, read once per step: in slurmstepd before the
// tasks fork (slurm_spank_init_post_opt), which then inherit it. nullptr and
// `why` if it cannot be read.
std::optional<Result<SliceLayout>> step_layout_cache;

const SliceLayout *step_layout(std::string &why)
{
	if (!step_layout_cache) {
		const char *node = std::getenv("SLURMD_NODENAME"); // set by slurmstepd itself
		step_layout_cache =
		        SliceLayout::load(expand_node_name(config->layout_file, node ? node : ""));
	}
	if (!*step_layout_cache) {
		why = step_layout_cache->error();
		return nullptr;
	}
	return &**step_layout_cache;
}

int isolate(spank_t sp)
{
	const bool required = config->isolation == FailurePolicy::Required;
	std::string why;
	const SliceLayout *layout = step_layout(why);
	if (!layout) {
		const std::string msg = "flexslurm: cannot isolate devices: " + why;
		if (required) {
			tell_user(msg);
			return -1;
		}
		slurm_info("%s; task runs unisolated", msg.c_str());
		return 0;
	}
	std::string gpus = job_env(sp, "SLURM_STEP_GPUS");
	if (gpus.empty())
		gpus = job_env(sp, "SLURM_JOB_GPUS");
	const IsolationPlan plan = plan_isolation(
	        *layout, held_device_paths(*layout, job_env(sp, "SLURM_VSLICE_DEVICES"), gpus));

	std::vector<std::string> unfenced;
	if (!devices_cgroup_denies(plan.hidden, unfenced)) {
		const std::string msg =
		        "flexslurm: no cgroup device fencing: " + unfenced.front() + " (and " +
		        std::to_string(unfenced.size() - 1) +
		        " more) can be opened; configure task/cgroup with ConstrainDevices=yes";
		if (required) {
			tell_user(msg);
			return -1;
		}
		slurm_info("%s; task runs without cgroup fencing (private device view only)", msg.c_str());
		if (verbose_option)
			std::fprintf(stderr, "%s\n", msg.c_str());
	}

	if (plan.hidden.empty())
		return 0;
	std::string dir = plan.hidden.front().substr(0, plan.hidden.front().rfind('/'));
	// The device dir is the common parent of the device nodes in the layout
	// (e.g. /dev, with AMD's under /dev/dri).
	for (const std::string &p : plan.hidden)
		while (p.compare(0, dir.size() + 1, dir + "/") != 0 && dir.rfind('/') != std::string::npos)
			dir = dir.substr(0, dir.rfind('/'));
	auto view = enter_private_device_view(dir, plan.hidden);
	if (!view) {
		const std::string msg =
		        "flexslurm: cannot give the task a private " + dir + ": " + view.error();
		if (required) {
			tell_user(msg);
			return -1;
		}
		slurm_info("%s; task runs unisolated", msg.c_str());
		return 0;
	}
	if (verbose_option) {
		std::string shown;
		for (const auto &v : plan.visible)
			shown += " " + v;
		std::fprintf(stderr, "flexslurm: %s shows%s; %zu other accelerator node(s) hidden\n",
		             dir.c_str(), shown.empty() ? " no accelerator" : shown.c_str(),
		             plan.hidden.size());
	}
	return 0;
}

// The limits of the step's slices enforced by `backend`, from the layout
// and what gres/vslice wrote into the job's environment (it overwrote
// anything the user set). No layout: no limits (isolation reports why).
std::vector<DeviceLimit> step_limits(spank_t sp, LimitBackend backend)
{
	std::vector<DeviceLimit> out;
	std::string why;
	const SliceLayout *layout = step_layout(why);
	if (!layout)
		return out;
	const auto held = held_devices(*layout, job_env(sp, "SLURM_VSLICE_DEVICES"), "");
	for (const DeviceLimit &l : device_limits(held, job_env(sp, "SLURM_VSLICE_COUNTS")))
		if (config->limits_for(l.device->vendor) == backend)
			out.push_back(l);
	return out;
}

std::vector<std::string> mps_env(const std::string &dir)
{
	return {"CUDA_MPS_PIPE_DIRECTORY=" + dir + "/pipe", "CUDA_MPS_LOG_DIRECTORY=" + dir + "/log"};
}

// One MPS control daemon per step, for the step's NVIDIA slices, running as
// the job's user with pipe and log directories only that user can enter;
// the slice share goes in as the daemon's defaults, which clients cannot
// raise. Runs in slurmstepd before the step joins its device cgroup: host
// device numbering.
int start_mps(spank_t sp, const std::vector<DeviceLimit> &limits)
{
	uint32_t job = 0, step = 0, uid = 0, gid = 0;
	spank_get_item(sp, S_JOB_ID, &job);
	spank_get_item(sp, S_JOB_STEPID, &step);
	spank_get_item(sp, S_JOB_UID, &uid);
	spank_get_item(sp, S_JOB_GID, &gid);
	const std::string dir = config->mps_dir + "/" + std::to_string(job) + "." + std::to_string(step);
	std::error_code ec;
	std::filesystem::create_directories(config->mps_dir, ec);
	for (const std::string &d : {dir, dir + "/pipe", dir + "/log"}) {
		if (mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) {
			tell_user("flexslurm: mps: cannot create " + d + ": " + std::strerror(errno));
			return -1;
		}
		if (chown(d.c_str(), uid, gid) != 0) {
			tell_user("flexslurm: mps: cannot hand " + d +
			          " to the job's user: " + std::strerror(errno));
			return -1;
		}
	}
	std::string visible;
	for (const DeviceLimit &l : limits)
		visible += (visible.empty() ? "" : ",") + std::to_string(l.device->vendor_index);
	auto env = mps_env(dir);
	env.push_back("CUDA_VISIBLE_DEVICES=" + visible);
	env.push_back("CUDA_DEVICE_ORDER=PCI_BUS_ID");
	auto started = run_command({config->mps_control, "-d"}, env, "", 10000, uid, gid);
	if (!started || *started != 0) {
		tell_user("flexslurm: mps: " + config->mps_control +
		          " -d: " + (started ? "exit " + std::to_string(*started) : started.error()));
		return -1;
	}
	mps_step_dir = dir;
	job_uid = uid;
	job_gid = gid;
	auto set = run_command({config->mps_control}, env, mps_limit_commands(limits), 10000, uid, gid);
	if (!set || *set != 0) {
		tell_user("flexslurm: mps: setting the slice limits failed: " +
		          (set ? "exit " + std::to_string(*set) : set.error()));
		return -1;
	}
	slurm_verbose("flexslurm: mps control daemon for job %u step %u in %s", job, step, dir.c_str());
	return 0;
}

void stop_mps()
{
	if (mps_step_dir.empty())
		return;
	auto quit =
	        run_command({config->mps_control}, mps_env(mps_step_dir), "quit\n", 10000, job_uid, job_gid);
	if (!quit || *quit != 0)
		slurm_error("flexslurm: mps: stopping the control daemon in %s failed: %s",
		            mps_step_dir.c_str(),
		            quit ? ("exit " + std::to_string(*quit)).c_str() : quit.error().c_str());
	std::error_code ec;
	std::filesystem::remove_all(mps_step_dir, ec);
	mps_step_dir.clear();
}

} // namespace

extern "C" {

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	try {
		auto parsed = parse_plugstack_args(std::vector<std::string>(av, av + ac));
		if (!parsed) {
			slurm_error("flexslurm: %s", parsed.error().c_str());
			// slurmd itself must stay up (a required plugin failing
			// here would stop it); every launch and submission that
			// loads this configuration fails instead.
			return spank_context() == S_CTX_SLURMD ? 0 : -1;
		}
		config = *parsed;
		if (spank_option_register(sp, &verbose_opt) != ESPANK_SUCCESS) {
			slurm_error("flexslurm: cannot register --%s", verbose_opt.name);
			return -1;
		}
		if (spank_option_register(sp, &split_opt) != ESPANK_SUCCESS) {
			slurm_error("flexslurm: cannot register --%s", split_opt.name);
			return -1;
		}
		return 0;
	} catch (...) {
		slurm_error("flexslurm: slurm_spank_init: unexpected failure");
		return -1;
	}
}

int slurm_spank_task_init_privileged(spank_t sp, int, char **)
{
	if (!spank_remote(sp) || !config)
		return 0;
	try {
		return isolate(sp);
	} catch (const std::exception &e) {
		tell_user(std::string("flexslurm: device isolation failed: ") + e.what());
	} catch (...) {
		tell_user("flexslurm: device isolation failed");
	}
	return config->isolation == FailurePolicy::Required ? -1 : 0;
}

// Remote context, as root, before the step's tasks exist: start MPS.
int slurm_spank_init_post_opt(spank_t sp, int, char **)
{
	if (request_split(sp) != 0)
		return -1;
	if (!spank_remote(sp) || !config)
		return 0;
	try {
		const auto mps = step_limits(sp, LimitBackend::Mps);
		return mps.empty() ? 0 : start_mps(sp, mps);
	} catch (...) {
		tell_user("flexslurm: mps: unexpected failure");
		return -1;
	}
}

// In each task, as the user, before exec: the backends' variables.
int slurm_spank_task_init(spank_t sp, int, char **)
{
	if (!spank_remote(sp) || !config)
		return 0;
	try {
		if (!mps_step_dir.empty())
			for (const std::string &kv : mps_env(mps_step_dir)) {
				const auto eq = kv.find('=');
				spank_setenv(sp, kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), 1);
			}
		const auto preload = step_limits(sp, LimitBackend::Preload);
		for (const EnvVar &v :
		     preload_environment(preload, config->preload, job_env(sp, "LD_PRELOAD")))
			spank_setenv(sp, v.name.c_str(), v.value.c_str(), 1);
		return 0;
	} catch (...) {
		tell_user("flexslurm: limits: unexpected failure");
		return -1;
	}
}

// Remote context, as root, when the step ends.
int slurm_spank_exit(spank_t sp, int, char **)
{
	if (!spank_remote(sp) || !config)
		return 0;
	try {
		stop_mps();
	} catch (...) {
		slurm_error("flexslurm: mps: unexpected failure while stopping");
	}
	return 0;
}

} // extern "C"
