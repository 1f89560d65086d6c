// SPDX-License-Identifier: GPL-2.0-or-later
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
#include "core/io/kfd_topology.hpp"
#include "core/model/job_env.hpp"
#include "core/model/limits.hpp"
#include "core/model/slice_layout.hpp"
#include "core/model/spank_config.hpp"
#include "core/util/log.hpp"
#include "core/util/node_name.hpp"
#include "plugins/common/entry_guard.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace
{

using namespace flexslurm;
using plugin::guarded;

// The core's messages (and the entry guard's) go to Slurm's log, each
// starting with "flexslurm: ". Wired when the plugin is loaded, before any
// entry point runs.
void spank_log_sink(LogLevel level, const char *message)
{
	// By LogLevel: Error, Info, Verbose, Debug.
	static void (*const slurm_log[])(const char *, ...) = {slurm_error, slurm_info, slurm_verbose,
	                                                       slurm_debug};
	slurm_log[static_cast<int>(level)]("flexslurm: %s", message);
}
[[maybe_unused]] const bool log_sink_wired = (set_log_sink(spank_log_sink), true);

std::optional<SpankConfig> config;
// --vslice-verbose; --vslice-split: the job's slices may come from several
// devices even when one could hold them (select/flex reads the job-control variable).
int verbose_option = 0, split_option = 0;

int set_option(int val, const char *, int)
{
	(val == 1 ? verbose_option : split_option) = 1;
	return ESPANK_SUCCESS;
}

struct spank_option verbose_opt = {
        const_cast<char *>("vslice-verbose"),
        nullptr,
        const_cast<char *>(
                "[flexslurm] print which accelerator device nodes each task sees and whether the devices cgroup fences the others"),
        0,
        1,
        set_option};

struct spank_option split_opt = {
        const_cast<char *>("vslice-split"),
        nullptr,
        const_cast<char *>(
                "[flexslurm] allow the job's slices on a node to come from several accelerators instead of waiting for one with enough free slices"),
        0,
        2,
        set_option};

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

// The node's slice layout, read once per process (a task reads it in its
// first entry point). nullptr and `why` if it cannot be read.
std::optional<Result<SliceLayout>> layout_cache;

const SliceLayout *step_layout(std::string &why)
{
	if (!layout_cache) {
		const char *node = std::getenv("SLURMD_NODENAME"); // set by slurmstepd itself
		layout_cache = SliceLayout::load(expand_node_name(config->layout_file, node ? node : ""));
	}
	if (!*layout_cache) {
		why = layout_cache->error();
		return nullptr;
	}
	return &**layout_cache;
}

// job_dir= with %n for this node (several slurmd on one host).
std::string job_dir()
{
	const char *node = std::getenv("SLURMD_NODENAME"); // set by slurmd and slurmstepd
	return expand_node_name(config->job_dir, node ? node : "");
}

// What a task's entry points need (task_init_privileged as root, then
// task_init as the user, in the task's own process), derived once per task.
struct Task {
	uint32_t job = 0;
	const SliceLayout *layout = nullptr; // nullptr: `layout_error`
	std::string layout_error;
	// The job's allocation on this node: the limits file its job prolog
	// wrote as root from Slurm's prolog environment (which users cannot
	// set). nullopt, and `no_allocation`, if there is none.
	std::optional<JobLimits> allocation;
	std::string no_allocation;
	// The step's SLURM_VSLICE_DEVICES (and SLURM_VSLICE_VENDORS), the only slice variables read from a
	// step: a user can set it (another GRES plugin may keep a user's value),
	// so it only narrows the allocation. `claim_error`: it is malformed.
	std::string claim_text, claim_error;
	size_t claimed = 0;                        // the layout's devices it names
	std::vector<const DeviceSlices *> devices; // step_devices(): those within the allocation
};

const Task &this_task(spank_t sp)
{
	static Task task;
	static pid_t task_pid = 0;
	if (task_pid == getpid())
		return task;
	task = Task{};
	task_pid = getpid();
	task.layout = step_layout(task.layout_error);
	task.claim_text = job_env(sp, devices_variable_name);
	const std::string claim_vendors = job_env(sp, vendors_variable_name);
	auto claim = SliceEnv::decode([&](const char *name) -> std::optional<std::string> {
		if (std::string_view(name) == devices_variable_name)
			return task.claim_text;
		if (std::string_view(name) == vendors_variable_name)
			return claim_vendors;
		return std::nullopt;
	});
	if (!claim)
		task.claim_error = claim.error();
	uint32_t uid = 0;
	if (!task.layout)
		task.no_allocation = task.layout_error;
	else if (spank_get_item(sp, S_JOB_ID, &task.job) != ESPANK_SUCCESS ||
	         spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS)
		task.no_allocation = "no job id or user";
	else if (auto limits = read_job_limits(job_paths(job_dir(), task.job), task.job, uid); !limits)
		task.no_allocation = limits.error();
	else
		task.allocation = *limits;
	if (!task.layout || !claim)
		return task;
	for (const DeviceSlices *d : task.layout->devices_named(claim->devices, claim->vendors))
		task.claimed += d ? 1 : 0;
	task.devices = step_devices(*task.layout, task.allocation ? &*task.allocation : nullptr, *claim);
	return task;
}

int isolate(spank_t sp)
{
	const bool required = config->isolation == FailurePolicy::Required;
	const Task &task = this_task(sp);
	if (!task.layout) {
		const std::string msg = "flexslurm: cannot isolate devices: " + task.layout_error;
		if (required) {
			tell_user(msg);
			return -1;
		}
		slurm_info("%s; task runs unisolated", msg.c_str());
		return 0;
	}
	if (!task.claim_error.empty())
		tell_user("flexslurm: " + task.claim_error + ": the step's slices stay hidden");
	else if (task.devices.size() != task.claimed)
		tell_user("flexslurm: SLURM_VSLICE_DEVICES=" + task.claim_text +
		          " names devices this job does not hold on this node: they stay hidden");
	std::string gpus = job_env(sp, "SLURM_STEP_GPUS");
	if (gpus.empty())
		gpus = job_env(sp, "SLURM_JOB_GPUS");
	const IsolationPlan plan =
	        plan_isolation(*task.layout, held_device_paths(*task.layout, task.devices, gpus));

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
	const std::string dir = plan.device_dir();
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

// The prolog's part of cu_mask and vnpu: each cu_mask device's CU list, from
// KFD's topology (kfd_topology=, root's) and the slices the job holds; one
// log line for each device the chosen backend cannot limit.
void limit_in_device(const SliceLayout &layout, const SliceEnv &slices, JobLimits &limits)
{
	bool cu_mask = false;
	for (const DeviceLimit &l : limits.devices) {
		cu_mask = cu_mask || l.backend == LimitBackend::CuMask;
		if (l.backend != LimitBackend::Vnpu)
			continue;
		for (const DeviceSlices &d : layout.devices())
			if (l.is(d) && !is_vnpu_node(d.device_path))
				slurm_info(
				        "flexslurm: job %u: ascend device %d (%s) is a whole NPU, not a vNPU: its slices are scheduled and fenced, not limited",
				        limits.job, d.vendor_index, d.device_path.c_str());
	}
	if (!cu_mask)
		return;
	const char *node = std::getenv("SLURMD_NODENAME"); // set by slurmd
	auto gpus = read_kfd_gpus(expand_node_name(config->kfd_topology, node ? node : ""));
	const std::vector<KfdGpu> none;
	for (const std::string &problem :
	     assign_cu_masks(limits, layout, slices, gpus ? *gpus : none, gpus ? "" : gpus.error()))
		slurm_error("flexslurm: job %u: limits.amd=cu_mask: %s", limits.job, problem.c_str());
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
	// The prolog's environment is slurmd's, from Slurm's gres/vslice.
	const auto slices = SliceEnv::decode([](const char *name) -> std::optional<std::string> {
		const char *v = std::getenv(name);
		return v ? std::optional<std::string>(v) : std::nullopt;
	});
	if (slices && slices->devices.empty())
		return 0; // no slices here: nothing to limit
	std::string why = slices ? "" : slices.error();
	const SliceLayout *layout = slices ? step_layout(why) : nullptr;
	if (!layout) {
		slurm_error("flexslurm: job %u: cannot compute its limits: %s", job, why.c_str());
		return -1;
	}
	JobStateFiles files;
	files.limits = job_limits(*layout, *slices, job, uid, *config);
	limit_in_device(*layout, *slices, files.limits);
	std::vector<DeviceLimit> mps, preload;
	for (const DeviceLimit &l : files.limits.devices) {
		if ((l.backend == LimitBackend::Mps || l.backend == LimitBackend::Preload) &&
		    l.memory_mib == 0)
			slurm_error(
			        "flexslurm: job %u: %s device %d has no known memory size, its slices get no memory limit: set slicing.classes[].device_memory in flexslurm.yaml",
			        job, std::string(vendor_name(l.vendor)).c_str(), l.host_index);
		if (l.backend == LimitBackend::Mps)
			mps.push_back(l);
		else if (l.backend == LimitBackend::Preload)
			preload.push_back(l);
	}
	const JobPaths paths = job_paths(job_dir(), job);
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
	if (!any || this_task(sp).claim_text.empty())
		return 0;
	const Task &task = this_task(sp);
	const JobPaths paths = job_paths(job_dir(), task.job);
	// No limits file: the job holds no slices here (its prolog writes one
	// for every job that does), whatever the step's variable says; the
	// isolation shows the task none of the slices' devices.
	struct stat st {
	};
	if (lstat(paths.limits.c_str(), &st) != 0 && errno == ENOENT)
		return 0;
	if (!task.allocation) {
		tell_user("flexslurm: limits: job " + std::to_string(task.job) +
		          " has no limits on this node (" + task.no_allocation +
		          "): the task does not start");
		return -1;
	}
	auto set = [&](const std::string &name, const std::string &value) {
		spank_setenv(sp, name.c_str(), value.c_str(), 1);
	};
	if (!limits_for_step(*task.allocation, LimitBackend::Mps, task.devices).empty())
		for (const std::string &kv : mps_env(paths))
			set(kv.substr(0, kv.find('=')), kv.substr(kv.find('=') + 1));
	// HSA_CU_MASK: ROCr reads it when the process starts the runtime; the job's
	// slices' CUs, numbered as the step sees its AMD devices.
	const std::string cu_mask =
	        hsa_cu_mask_of(limits_for_step(*task.allocation, LimitBackend::CuMask, task.devices));
	if (!cu_mask.empty())
		set("HSA_CU_MASK", cu_mask);
	const auto preload = limits_for_step(*task.allocation, LimitBackend::Preload, task.devices);
	for (const EnvVar &v :
	     preload_environment(preload, config->preload, job_env(sp, "LD_PRELOAD"), paths.preload_cache))
		set(v.name, v.value);
	return 0;
}

// The plugin's arguments, from slurm_spank_init, or from the job prolog and
// epilog entry points themselves: Slurm calls no slurm_spank_init in that
// context (slurmstepd spank prolog|epilog, 22.05 to 26.05). Empty, or why not.
std::string load_config(int ac, char **av)
{
	auto parsed = parse_plugstack_args(std::vector<std::string>(av, av + ac));
	if (!parsed)
		return parsed.error();
	config = *parsed;
	return "";
}

int init(spank_t sp, int ac, char **av)
{
	if (const std::string why = load_config(ac, av); !why.empty()) {
		slurm_error("flexslurm: %s", why.c_str());
		// slurmd itself must stay up (a required plugin failing here
		// would stop it); every launch and submission that loads this
		// configuration fails instead.
		return spank_context() == S_CTX_SLURMD ? 0 : -1;
	}
	for (spank_option *opt : {&verbose_opt, &split_opt})
		if (spank_option_register(sp, opt) != ESPANK_SUCCESS) {
			slurm_error("flexslurm: cannot register --%s", opt->name);
			return -1;
		}
	return 0;
}

// Job prolog and epilog: the arguments, unless slurm_spank_init read them.
bool job_script_config(int ac, char **av, const char *what)
{
	if (config)
		return true;
	const std::string why = load_config(ac, av);
	if (!why.empty())
		slurm_error("flexslurm: job %s: %s", what, why.c_str());
	return why.empty();
}

} // namespace

// Every entry point runs through the guard: an exception is logged as
// "flexslurm: <what failed>: <why>" and the entry returns its failure value.
extern "C" {

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	return guarded(
	        "slurm_spank_init", [&] { return init(sp, ac, av); }, -1);
}

// In each task, as root, before privileges drop: the device isolation.
int slurm_spank_task_init_privileged(spank_t sp, int, char **)
{
	const int on_failure = config && config->isolation == FailurePolicy::Optional ? 0 : -1;
	return guarded(
	        "device isolation failed", [&] { return spank_remote(sp) && config ? isolate(sp) : 0; },
	        on_failure);
}

// sbatch/salloc/srun after their options: --vslice-split reaches slurmctld.
int slurm_spank_init_post_opt(spank_t sp, int, char **)
{
	return guarded(
	        "--vslice-split", [&] { return request_split(sp) != 0 ? -1 : 0; }, -1);
}

// In each task, as the user, before exec: the backends' variables.
int slurm_spank_task_init(spank_t sp, int, char **)
{
	return guarded(
	        "limits", [&] { return spank_remote(sp) && config ? task_limits(sp) : 0; }, -1);
}

// slurmd's prolog and epilog run these as root for every job on the node
// (prep/script runs SPANK job scripts even without Prolog= in slurm.conf).
// A failing job prolog drains the node and requeues the job (Slurm).
int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
	return guarded(
	        "job prolog", [&] { return job_script_config(ac, av, "prolog") ? job_prolog(sp) : -1; }, -1);
}

int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	return guarded(
	        "job epilog", [&] { return job_script_config(ac, av, "epilog") ? job_epilog(sp) : 0; }, 0);
}

} // extern "C"
