/*
 * gres/vslice: each accelerator a node has is cut into slices, and each slice
 * is one unit of the GRES "vslice", bound to its physical device file so that
 * task/cgroup ConstrainDevices fences jobs per device.
 *
 * In slurmd, node_config_load discovers the node (hwloc, Slurm's gpu
 * records), builds the slice layout and saves it (inventory.layout_file)
 * for gres/vborrow, which comes after it in GresTypes, and for the SPANK
 * plugin. When flexslurm.yaml enables lending it also runs the reclaim
 * agent (core/service/agent.*).
 *
 * What both GRES plugins share is in src/plugins/gres_common; every
 * decision is made in src/core. Every entry point runs through
 * plugin::guarded: no C++ exception reaches Slurm.
 */
#include "plugins/gres_common/slice_gres.hpp"

#include "core/io/inventory.hpp"
#include "core/service/agent.hpp"
#include "core/service/agent_process.hpp"
#include "core/util/log.hpp"
#include "core/util/uids.hpp"
#include "plugins/common/entry_guard.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#define LOG_PREFIX "gres/vslice: "

extern "C" {
extern const char plugin_name[] = "gres/vslice: accelerator slices (flexslurm " FLEXSLURM_VERSION ")";
extern const char plugin_type[] = "gres/vslice";
extern const uint32_t plugin_version = SLURM_VERSION_NUMBER;
}

namespace
{

using namespace flexslurm;
using plugin::guarded;
using plugin::guarded_void;

// Filled by node_config_load in slurmd and by recv_stepd in slurmstepd.
plugin::SliceGres vslice("vslice", false);
plugin::SliceGres &this_gres()
{
	return vslice;
}
// In slurmd, when lending is enabled: the process that serves the node
// owns it (never joined from a fork's copy).
ProcessLocal<NodeAgent> agent;
// slurmd 22.05 without -D loads the plugin before it daemonizes: the agent
// waits for the daemon (started in it, right after its fork).
struct DeferredAgent {
	Config config;
	std::string node;
	pid_t creator_session = 0;
};
std::optional<DeferredAgent> deferred_agent;
// The first load's process; a later load in another process runs in the
// daemon (reconfigure).
pid_t first_load_pid = 0;

std::unique_ptr<TelemetryBackend> telemetry_for(const Config &config, const std::string &node,
                                                const SlurmMarks &marks)
{
	const SliceLayout &layout = *vslice.layout();
	const auto &devices = layout.devices();
	switch (config.channel.telemetry) {
	case TelemetrySource::File:
		return make_file_backend(layout, expand_node_name(config.channel.telemetry_dir, node));
	case TelemetrySource::None:
		return nullptr;
	case TelemetrySource::Auto:
		return make_auto_backend(layout, VendorLibraries{}, "/proc", marks);
	case TelemetrySource::Nvml:
		break;
	}
	const bool nvidia = std::any_of(devices.begin(), devices.end(),
	                                [](const DeviceSlices &d) { return d.vendor == Vendor::Nvidia; });
	if (!nvidia)
		return make_unsupported_backend(devices.empty() ? Vendor::Nvidia : devices.front().vendor);
	auto nvml = make_nvml_backend(layout, "libnvidia-ml.so.1", "/proc", marks);
	if (nvml)
		return std::move(*nvml);
	error(LOG_PREFIX "lending.telemetry: NVML: %s; this node's slices count as busy (never lent)",
	      nvml.error().c_str());
	return make_unsupported_backend(Vendor::Nvidia);
}

void start_agent(const Config &config, const std::string &node)
{
	agent.reset();
	deferred_agent.reset();
	if (!config.channel.enabled)
		return;
	// Slurm's own processes and job cgroups, as a user cannot forge them.
	SlurmMarks marks = SlurmMarks::for_this_slurmd(node, compat::slurmd_stepd_path());
	if (const std::string prepend = expand_node_name(compat::cgroup_prepend(), node);
	    !prepend.empty() && prepend.front() == '/')
		marks.v1_roots.push_back(prepend);
	auto backend = telemetry_for(config, node, marks);
	if (!backend) {
		info(LOG_PREFIX "lending.telemetry is none: nothing on %s is lent", node.c_str());
		return;
	}
	AgentSettings s;
	s.node = node;
	s.controllers = compat::controller_hosts();
	s.port = config.channel.port;
	char *addr = slurm_conf_get_address(node.c_str());
	s.bind_address = addr ? addr : "";
	xfree(addr);
	s.controller_uids = root_and_slurm_user(slurm_conf.slurm_user_id);
	s.interval = config.channel.report_interval;
	AgentIo io = AgentIo::production(
	        MungeEndpoint{munge_socket_of(slurm_conf.authinfo ? slurm_conf.authinfo : "")});
	io.kill_job = [marks](uint32_t job, uint64_t ordered_at) {
		return kill_job_processes(job, "/proc", marks, ordered_at);
	};
	agent.reset(std::make_unique<NodeAgent>(s, *vslice.layout(), std::move(backend), std::move(io)));
	agent.get()->start();
	info(LOG_PREFIX "reclaim agent: reporting to port %u every %lds (slurmd pid %ld)", s.port,
	     static_cast<long>(s.interval.count()), static_cast<long>(getpid()));
}

// In every process slurmd forks while an agent waits for the daemon: only
// xdaemon()'s grandchild, still single-threaded, starts it.
void start_deferred_agent_in_daemon() noexcept
{
	if (!deferred_agent || !is_daemon_of(deferred_agent->creator_session, getpid(), getsid(0)))
		return;
	guarded_void("reclaim agent", [] {
		const DeferredAgent d = std::move(*deferred_agent);
		deferred_agent.reset();
		start_agent(d.config, d.node);
	});
}

void place_agent(const Config &config, const std::string &node)
{
	if (!first_load_pid)
		first_load_pid = getpid();
	SlurmdMode mode;
	mode.in_slurmd = running_in_slurmd();
	mode.print_only = compat::slurmd_prints_only();
	mode.daemonizes_later = compat::slurmd_daemonizes_after_gres_load() && first_load_pid == getpid();
	switch (agent_start(mode)) {
	case AgentStart::Never:
		agent.reset();
		deferred_agent.reset();
		return;
	case AgentStart::Now:
		start_agent(config, node);
		return;
	case AgentStart::AfterDaemonizing:
		break;
	}
	agent.reset();
	if (!config.channel.enabled) {
		deferred_agent.reset();
		return;
	}
	static bool fork_hook = false;
	if (!fork_hook) {
		if (const int rc = pthread_atfork(nullptr, nullptr, start_deferred_agent_in_daemon);
		    rc != 0) {
			error(LOG_PREFIX "reclaim agent: pthread_atfork: %s; nothing on %s is lent",
			      std::strerror(rc), node.c_str());
			return;
		}
		fork_hook = true;
	}
	deferred_agent = DeferredAgent{config, node, getsid(0)};
	debug(LOG_PREFIX "reclaim agent: starts in the daemon once slurmd has forked into it");
}

// Discovery and the layout, once per slurmd start: gres/vborrow and the
// SPANK plugin read the layout saved here.
int load_node_config(compat::list_ptr gres_conf_list, node_config_load_t *node_conf)
{
	const auto started = std::chrono::steady_clock::now();
	std::optional<Config> config = plugin::load_node_config_file();
	if (!config)
		return SLURM_ERROR;
	const std::string node = compat::slurmd_node_name();
	const std::string xml = expand_node_name(config->topology_xml, node);
	auto inventory = xml.empty() ? Inventory::from_live_system() : Inventory::from_xml_file(xml);
	if (!inventory) {
		error("flexslurm: %s: inventory.topology_xml: %s", config->source.c_str(),
		      inventory.error().c_str());
		return SLURM_ERROR;
	}
	// Which file is which device: Slurm's own gpu records where they exist
	// (gres.conf, AutoDetect), hwloc for the rest.
	std::vector<std::string> problems;
	if (std::string order =
	            gres_types_order_problem(slurm_conf.gres_plugins ? slurm_conf.gres_plugins : "");
	    !order.empty())
		problems.push_back(order);
	const auto units = gpu_units_of(plugin::gres_records(gres_conf_list), problems);
	for (const std::string &p : problems)
		error(LOG_PREFIX "%s", p.c_str());
	const auto found = identify_devices(*inventory, expand_node_name(config->device_dir, node), units,
	                                    read_nvidia_gpus(expand_node_name(config->nvidia_proc_dir, node)),
	                                    config->exclude);
	for (const std::string &line : found.report)
		info(LOG_PREFIX "%s", line.c_str());
	vslice.adopt(SliceLayout::build(found, *config));
	const SliceLayout &layout = *vslice.layout();
	const std::string layout_file = expand_node_name(config->layout_file, node);
	if (auto saved = layout.save(layout_file); !saved)
		error(LOG_PREFIX "%s: the SPANK plugin cannot isolate devices on this node",
		      saved.error().c_str());
	const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
	        std::chrono::steady_clock::now() - started);
	info(LOG_PREFIX "discovery and slice layout: %zu devices, %d slices in %lld ms; saved to %s",
	     layout.devices().size(), layout.total_slices(), static_cast<long long>(ms.count()),
	     layout_file.c_str());
	vslice.publish(gres_conf_list, node_conf);
	for (const DeviceSlices &d : layout.devices())
		info(LOG_PREFIX "%s %s: %d slices (index %d-%d), %d%% compute and %" PRIu64 " MiB each",
		     std::string(vendor_name(d.vendor)).c_str(), d.device_path.c_str(), d.slices,
		     d.first_slice, d.first_slice + d.slices - 1, d.compute_percent,
		     d.slice_memory_bytes >> 20);
	place_agent(*config, node);
	return SLURM_SUCCESS;
}

} // namespace

extern "C" {

int init(void)
{
	return guarded(
	        "init",
	        [] {
		        compat::use_slurm_log(plugin_type);
		        debug("%s: loaded", plugin_type);
		        return static_cast<int>(SLURM_SUCCESS);
	        },
	        static_cast<int>(SLURM_ERROR));
}

compat::fini_result fini(void)
{
	guarded_void("fini", [] {
		agent.reset();
		deferred_agent.reset();
		vslice.clear();
	});
	FLEXSLURM_FINI_RETURN;
}

int gres_p_node_config_load(compat::list_ptr gres_conf_list, node_config_load_t *node_conf)
{
	return guarded(
	        "node_config_load", [&] { return load_node_config(gres_conf_list, node_conf); },
	        static_cast<int>(SLURM_ERROR));
}

#include "plugins/gres_common/gres_entry_points.inc"

} // extern "C"
