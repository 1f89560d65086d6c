/*
 * SPANK plugin: device isolation at launch. In slurmstepd, before a task
 * drops its privileges, it (1) checks that the step's devices cgroup
 * (task/cgroup ConstrainDevices) denies every accelerator the job does not
 * hold, and (2) gives the task a private mount namespace whose device
 * directory shows only the job's accelerator nodes, the vendor control nodes
 * and everything that is not an accelerator. What counts as an accelerator
 * is the slice layout gres/vslice wrote on this node. In-device limits are
 * per job: the SPANK job prolog (root) writes them under job_dir and starts
 * the job's MPS daemon, each task reads them back, the job epilog removes
 * them (docs/spank.md).
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

#include "core/io/command.hpp"
#include "core/io/isolation.hpp"
#include "core/io/job_state.hpp"
#include "core/model/limits.hpp"
#include "core/util/node_name.hpp"
#include "core/model/placement.hpp"
#include "core/model/slice_layout.hpp"
#include "core/model/spank_config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

// job_dir= with %n for this node (several slurmd on one host).
std::string job_dir()
{
	const char *node = std::getenv("SLURMD_NODENAME"); // set by slurmd and slurmstepd
	return expand_node_name(config->job_dir, node ? node : "");
}

// The job's allocation on this node: the limits file its job prolog wrote
// as root from Slurm's prolog environment (which users cannot set).
// nullopt, and `why`, if there is none (the job holds no slices here).
std::optional<JobLimits> job_allocation(spank_t sp, std::string &why)
{
	uint32_t job = 0, uid = 0;
	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS) {
		why = "no job id or user";
		return std::nullopt;
	}
	auto text = read_root_file(job_paths(job_dir(), job).limits, job_limits_max_bytes);
	auto limits = text ? decode_job_limits(*text) : Result<JobLimits>::failure(text.error());
	if (!limits) {
		why = limits.error();
		return std::nullopt;
	}
	if (limits->job != job || limits->uid != uid) {
		why = "the file is another job's";
		return std::nullopt;
	}
	return *limits;
}

// The devices of this step: what Slurm's gres/vslice put in its
// SLURM_VSLICE_DEVICES, within the job's allocation here. A user can set
// the variable (another GRES plugin may keep a user's value): whatever it
// names beyond the allocation is left out (and said, if `tell`).
std::vector<const DeviceSlices *> step_slices(spank_t sp, const SliceLayout &layout,
                                              const std::optional<JobLimits> &allocation, bool tell)
{
	const std::string claimed = job_env(sp, "SLURM_VSLICE_DEVICES");
	auto held = step_devices(layout, allocation ? &*allocation : nullptr, claimed);
	if (tell && held.size() != held_devices(layout, claimed, "").size())
		tell_user("flexslurm: SLURM_VSLICE_DEVICES=" + claimed +
		          " names devices this job does not hold on this node: they stay hidden");
	return held;
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
	std::vector<std::string> held = gpu_unit_paths(*layout, gpus);
	std::string no_allocation; // the job holds no slices here
	const auto allocation = job_allocation(sp, no_allocation);
	for (const DeviceSlices *d : step_slices(sp, *layout, allocation, true))
		if (std::find(held.begin(), held.end(), d->device_path) == held.end())
			held.push_back(d->device_path);
	const IsolationPlan plan = plan_isolation(*layout, held);

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

std::vector<std::string> mps_env(const JobPaths &paths)
{
	return {"CUDA_MPS_PIPE_DIRECTORY=" + paths.mps_pipe, "CUDA_MPS_LOG_DIRECTORY=" + paths.mps_log};
}

std::string exit_text(const Result<int> &r)
{
	return r ? "exit " + std::to_string(*r) : r.error();
}

// Job prolog, as root, for every job on this node: the job's limits from
// the node's layout and the SLURM_VSLICE_* that Slurm's gres/vslice put in
// the prolog environment (the job's whole allocation here, host numbering;
// users cannot set them), written root-owned under job_dir; the job's MPS
// control daemon, root's, started with the job's share as its defaults and
// the job user's server started with them.
int job_prolog(spank_t sp)
{
	uint32_t job = 0, uid = 0, gid = 0;
	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &gid) != ESPANK_SUCCESS) {
		slurm_error("flexslurm: job prolog: no job id or user");
		return -1;
	}
	const char *devices = std::getenv("SLURM_VSLICE_DEVICES");
	if (!devices || !*devices)
		return 0; // no slices here: nothing to limit
	std::string why;
	const SliceLayout *layout = step_layout(why);
	if (!layout) {
		slurm_error("flexslurm: job %u: cannot compute its limits: %s", job, why.c_str());
		return -1;
	}
	const char *counts = std::getenv("SLURM_VSLICE_COUNTS");
	JobLimits limits;
	limits.job = job;
	limits.uid = uid;
	// A borrower (gres/vborrow) gets a slice's compute and only memory no
	// slice reserved.
	const char *borrowed = std::getenv(borrowed_variable_name);
	const SliceLayout &view = borrowed && *borrowed ? layout->borrow_view() : *layout;
	limits.devices = device_limits(held_devices(view, devices, ""), counts ? counts : "");
	std::vector<DeviceLimit> mps, preload;
	for (DeviceLimit &l : limits.devices) {
		l.backend = config->limits_for(l.vendor);
		if (l.backend != LimitBackend::None && l.memory_mib == 0)
			slurm_error(
			        "flexslurm: job %u: %s device %d has no known memory size, its slices get no "
			        "memory limit: set slicing.classes[].device_memory in flexslurm.yaml",
			        job, std::string(vendor_name(l.vendor)).c_str(), l.host_index);
		if (l.backend == LimitBackend::Mps)
			mps.push_back(l);
		else if (l.backend == LimitBackend::Preload)
			preload.push_back(l);
	}
	const JobPaths paths = job_paths(job_dir(), job);
	JobStateFiles files;
	files.limits = encode_job_limits(limits);
	if (!preload.empty())
		files.preload_conf = preload_config(preload, paths.preload_cache);
	files.mps = !mps.empty();
	std::string note;
	auto made = create_job_state(job_dir(), paths, files, uid, gid, note);
	if (!note.empty())
		slurm_error("flexslurm: job %u: %s", job, note.c_str());
	if (!made) {
		slurm_error("flexslurm: job %u: %s", job, made.error().c_str());
		return -1;
	}
	if (mps.empty())
		return 0;
	std::string visible;
	for (const DeviceLimit &l : mps)
		visible += (visible.empty() ? "" : ",") + std::to_string(l.host_index);
	auto env = mps_env(paths);
	env.push_back("CUDA_VISIBLE_DEVICES=" + visible);
	env.push_back("CUDA_DEVICE_ORDER=PCI_BUS_ID");
	auto started = run_command({config->mps_control, "-d"}, env, "", 10000);
	if (!started || *started != 0) {
		slurm_error("flexslurm: job %u: mps: %s -d: %s", job, config->mps_control.c_str(),
		            exit_text(started).c_str());
		return -1;
	}
	auto set = run_command({config->mps_control}, env, mps_limit_commands(mps, uid), 10000);
	if (!set || *set != 0) {
		slurm_error("flexslurm: job %u: mps: setting the slice limits failed: %s", job,
		            exit_text(set).c_str());
		return -1;
	}
	slurm_verbose("flexslurm: job %u: mps control daemon in %s", job, paths.mps_pipe.c_str());
	return 0;
}

// Job epilog, as root: stop the job's MPS daemon, remove its state.
int job_epilog(spank_t sp)
{
	uint32_t job = 0;
	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS)
		return 0;
	const JobPaths paths = job_paths(job_dir(), job);
	struct stat st {
	};
	if (lstat(paths.mps_pipe.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0) {
		auto quit = run_command({config->mps_control}, mps_env(paths), "quit\n", 10000);
		if (!quit || *quit != 0)
			slurm_error("flexslurm: job %u: mps: stopping the control daemon failed: %s", job,
			            exit_text(quit).c_str());
	}
	remove_job_state(paths);
	return 0;
}

// In each task (as the user, before exec): the backends' variables, from
// the job's root-owned limits file, for the devices of this step.
int task_limits(spank_t sp)
{
	bool any = false;
	for (LimitBackend b : config->limits)
		any = any || b != LimitBackend::None;
	// Whether the step holds slices: Slurm's gres/vslice says so; the
	// devices and their limits come from the job's allocation only.
	if (!any || job_env(sp, "SLURM_VSLICE_DEVICES").empty())
		return 0;
	uint32_t job = 0;
	spank_get_item(sp, S_JOB_ID, &job);
	const JobPaths paths = job_paths(job_dir(), job);
	std::string why;
	const SliceLayout *layout = step_layout(why);
	// No limits file: the job holds no slices here (its prolog writes one
	// for every job that does), whatever the step's variable says; the
	// isolation shows the task none of the slices' devices.
	struct stat st {
	};
	if (lstat(paths.limits.c_str(), &st) != 0 && errno == ENOENT)
		return 0;
	const auto limits = layout ? job_allocation(sp, why) : std::nullopt;
	if (!limits) {
		tell_user("flexslurm: limits: job " + std::to_string(job) + " has no limits on this node (" +
		          why + "): the task does not start");
		return -1;
	}
	const auto step = step_slices(sp, *layout, limits, false);
	auto set = [&](const std::string &name, const std::string &value) {
		spank_setenv(sp, name.c_str(), value.c_str(), 1);
	};
	if (!limits_for_step(*limits, LimitBackend::Mps, step).empty())
		for (const std::string &kv : mps_env(paths))
			set(kv.substr(0, kv.find('=')), kv.substr(kv.find('=') + 1));
	const auto preload = limits_for_step(*limits, LimitBackend::Preload, step);
	for (const EnvVar &v :
	     preload_environment(preload, config->preload, job_env(sp, "LD_PRELOAD"), paths.preload_cache))
		set(v.name, v.value);
	return 0;
}

// Slurm calls no slurm_spank_init in the job prolog and epilog context
// (slurmstepd spank prolog|epilog, 22.05 to 26.05): those entry points get
// the plugin's arguments and parse them themselves.
bool job_script_config(int ac, char **av, const char *what)
{
	if (config)
		return true;
	auto parsed = parse_plugstack_args(std::vector<std::string>(av, av + ac));
	if (!parsed) {
		slurm_error("flexslurm: job %s: %s", what, parsed.error().c_str());
		return false;
	}
	config = *parsed;
	return true;
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

// sbatch/salloc/srun after their options: --vslice-split reaches slurmctld.
int slurm_spank_init_post_opt(spank_t sp, int, char **)
{
	return request_split(sp) != 0 ? -1 : 0;
}

// In each task, as the user, before exec: the backends' variables.
int slurm_spank_task_init(spank_t sp, int, char **)
{
	if (!spank_remote(sp) || !config)
		return 0;
	try {
		return task_limits(sp);
	} catch (...) {
		tell_user("flexslurm: limits: unexpected failure");
		return -1;
	}
}

// slurmd's prolog and epilog run these as root for every job on the node
// (prep/script runs SPANK job scripts even without Prolog= in slurm.conf).
// A failing job prolog drains the node and requeues the job (Slurm).
int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	try {
		if (!job_script_config(ac, av, "prolog"))
			return -1;
		return job_prolog(sp);
	} catch (...) {
		slurm_error("flexslurm: job prolog: unexpected failure");
		return -1;
	}
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	try {
		if (!job_script_config(ac, av, "epilog"))
			return 0;
		return job_epilog(sp);
	} catch (...) {
		slurm_error("flexslurm: job epilog: unexpected failure");
		return 0;
	}
}

} // extern "C"
