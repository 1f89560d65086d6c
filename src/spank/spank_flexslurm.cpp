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

#include "core/isolation.hpp"
#include "core/node_name.hpp"
#include "core/slice_layout.hpp"
#include "core/spank_config.hpp"

#include <cstdlib>
#include <cstring>
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

int isolate(spank_t sp)
{
	const char *node = std::getenv("SLURMD_NODENAME"); // set by slurmstepd itself
	const std::string layout_path = expand_node_name(config->layout_file, node ? node : "");
	const bool required = config->isolation == FailurePolicy::Required;

	auto layout = SliceLayout::load(layout_path);
	if (!layout) {
		const std::string msg = "flexslurm: cannot isolate devices: " + layout.error();
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
	const auto held = held_devices(*layout, job_env(sp, "SLURM_VSLICE_DEVICES"), gpus);
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

} // extern "C"
