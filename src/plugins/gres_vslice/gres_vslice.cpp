/*
 * gres/vslice: each accelerator a node has is cut into slices, and each slice
 * is one unit of the GRES "vslice", bound to its physical device file so that
 * task/cgroup ConstrainDevices fences jobs per device.
 *
 * Built a second time as gres/vborrow (FLEXSLURM_GRES_BORROW): as many borrow
 * units per device as slices, unit u shadowing slice u, for jobs that borrow
 * idle slices (select/flex decides which units may be allocated). A
 * borrower's environment carries the slice's compute share and only memory
 * no slice reserved. gres/vslice in slurmd also runs the reclaim agent
 * (src/core/agent.*) when flexslurm.yaml enables lending.
 *
 * This file only translates between Slurm's structures and the core (slice
 * layout, job environment); every decision is made in src/core. No C++
 * exception may reach Slurm: every entry point catches all.
 */
#define FLEXSLURM_COMPAT_GRES
#include "slurm_compat.h"

#include "core/service/agent.hpp"
#include "core/service/agent_process.hpp"
#include "core/io/config.hpp"
#include "core/io/device_identity.hpp"
#include "core/io/inventory.hpp"
#include "core/model/job_env.hpp"
#include "core/util/log.hpp"
#include "core/model/slice_layout.hpp"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#ifdef FLEXSLURM_GRES_BORROW
#define FLEXSLURM_GRES_NAME "vborrow"
#define FLEXSLURM_GRES_WHAT "idle slices to borrow"
#else
#define FLEXSLURM_GRES_NAME "vslice"
#define FLEXSLURM_GRES_WHAT "accelerator slices"
#endif
#define LOG_PREFIX "gres/" FLEXSLURM_GRES_NAME ": "

extern "C" {
extern const char plugin_name[] =
        "gres/" FLEXSLURM_GRES_NAME ": " FLEXSLURM_GRES_WHAT " (flexslurm " FLEXSLURM_VERSION ")";
extern const char plugin_type[] = "gres/" FLEXSLURM_GRES_NAME;
extern const uint32_t plugin_version = SLURM_VERSION_NUMBER;
}

namespace
{

using namespace flexslurm;

constexpr const char *config_file_name = "flexslurm.yaml";
constexpr const char *gres_name = FLEXSLURM_GRES_NAME;
#ifdef FLEXSLURM_GRES_BORROW
constexpr bool borrow_units = true;
#else
constexpr bool borrow_units = false;
#endif

// Filled by node_config_load in slurmd and by recv_stepd in slurmstepd.
std::optional<SliceLayout> layout;
compat::list_ptr gres_devices = nullptr;
// gres/vslice in slurmd, when lending is enabled: the process that serves
// the node owns it (never joined from a fork's copy).
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

template <class F>
auto guarded(const char *where, F &&f, decltype(f()) on_failure) noexcept -> decltype(f())
{
	try {
		return f();
	} catch (const std::exception &e) {
		error(LOG_PREFIX "%s: %s", where, e.what());
	} catch (...) {
		error(LOG_PREFIX "%s: unexpected failure", where);
	}
	return on_failure;
}

template <class F>
void guarded_void(const char *where, F &&f) noexcept
{
	guarded(
	        where,
	        [&] {
		        f();
		        return 0;
	        },
	        0);
}

// Slurm's device list: one entry per slice, all slices of a device naming
// the same file, so task/cgroup allows the device if any slice is held.
void rebuild_gres_devices()
{
	FREE_NULL_LIST(gres_devices);
	gres_devices = list_create(destroy_gres_device);
	for (const DeviceSlices &d : layout->devices()) {
		for (int i = 0; i < d.slices; ++i) {
			auto *dev = static_cast<gres_device_t *>(xmalloc(sizeof(gres_device_t)));
			dev->index = d.first_slice + i;
			dev->dev_num = d.vendor_index;
			dev->dev_desc.type = DEV_TYPE_CHAR;
			dev->dev_desc.major = d.device_id.major;
			dev->dev_desc.minor = d.device_id.minor;
			dev->path = xstrdup(d.device_path.c_str());
			list_append(gres_devices, dev);
		}
	}
}

std::string cpu_list(const std::vector<unsigned> &cpus)
{
	std::string out;
	for (unsigned c : cpus)
		out += (out.empty() ? "" : ",") + std::to_string(c);
	return out;
}

int is_vslice_record(void *x, void *)
{
	auto *rec = static_cast<gres_slurmd_conf_t *>(x);
	return xstrcasecmp(rec->name, gres_name) == 0 ? 1 : 0;
}

int is_vslice_record_with_file(void *x, void *key)
{
	return is_vslice_record(x, key) && static_cast<gres_slurmd_conf_t *>(x)->file ? 1 : 0;
}

// Slurm's gres.conf/AutoDetect records as the core reads them.
std::vector<GresRecord> gres_records(compat::list_ptr gres_conf_list)
{
	std::vector<GresRecord> out;
	compat::list_iter it = list_iterator_create(gres_conf_list);
	while (auto *rec = static_cast<gres_slurmd_conf_t *>(list_next(it))) {
		if (out.size() >= 4096)
			break;
		GresRecord r;
		r.name = rec->name ? rec->name : "";
		r.type = rec->type_name ? rec->type_name : "";
		r.file = rec->file ? rec->file : "";
		r.unique_id = rec->unique_id ? rec->unique_id : "";
		r.multiple_files = (rec->config_flags & GRES_CONF_HAS_MULT) != 0;
		r.count = rec->count;
		out.push_back(std::move(r));
	}
	list_iterator_destroy(it);
	return out;
}

// Replaces whatever slurm.conf/gres.conf said about vslice on this node by
// one record per discovered device, holding its slices. slurmctld compares the count with
// slurm.conf's Gres= and drains the node, with its usual reason, when fewer
// slices were found than configured.
void publish_slices(compat::list_ptr gres_conf_list, node_config_load_t *node_conf)
{
	if (list_find_first(gres_conf_list, is_vslice_record_with_file, nullptr))
		info("%s: File= lines for %s in gres.conf are ignored: slices come from discovery (%s)",
		     plugin_type, gres_name, config_file_name);
	list_delete_all(gres_conf_list, is_vslice_record, nullptr);

	for (const DeviceSlices &d : layout->devices()) {
		char *abs_cpus = nullptr;
		bitstr_t *mac_cpus = nullptr;
		const bool cpus_fit = !d.cpus.empty() && d.cpus.back() < node_conf->cpu_cnt;
		if (cpus_fit) {
			mac_cpus = bit_alloc(node_conf->cpu_cnt);
			for (unsigned c : d.cpus)
				bit_set(mac_cpus, static_cast<bitoff_t>(c));
			std::string mac = cpu_list(d.cpus);
			if (!node_conf->xcpuinfo_mac_to_abs ||
			    node_conf->xcpuinfo_mac_to_abs(const_cast<char *>(mac.c_str()), &abs_cpus) !=
			            SLURM_SUCCESS) {
				FREE_NULL_BITMAP(mac_cpus);
				xfree(abs_cpus);
			}
		} else if (!d.cpus.empty()) {
			verbose(LOG_PREFIX "%s: topology CPUs do not fit the node's %u CPUs; no CPU "
			                   "affinity",
			        d.device_path.c_str(), node_conf->cpu_cnt);
		}
		// One record per device, Count = its slices: slurmctld then keeps
		// each device as one topology entry, which is how select/flex
		// tells which slices share a device.
		compat::add_device_record(gres_conf_list, gres_name, static_cast<uint64_t>(d.slices),
		                          node_conf->cpu_cnt, abs_cpus, mac_cpus, d.device_path.c_str(),
		                          d.model.c_str());
		if (borrow_units)
			info("gres/vborrow: %s %s: %d borrow units (index %d-%d), %" PRIu64
			     " MiB of unreserved memory each%s",
			     std::string(vendor_name(d.vendor)).c_str(), d.device_path.c_str(), d.slices,
			     d.first_slice, d.first_slice + d.slices - 1, d.borrow_memory_bytes >> 20,
			     d.borrow_memory_bytes ? ""
			                           : " (slices reserve all memory: nothing is lent here)");
		else
			info(LOG_PREFIX "%s %s: %d slices (index %d-%d), %d%% compute and %" PRIu64
			                " MiB each",
			     std::string(vendor_name(d.vendor)).c_str(), d.device_path.c_str(), d.slices,
			     d.first_slice, d.first_slice + d.slices - 1, d.compute_percent,
			     d.slice_memory_bytes >> 20);
		xfree(abs_cpus);
		FREE_NULL_BITMAP(mac_cpus);
	}
}

std::unique_ptr<TelemetryBackend> telemetry_for(const Config &config, const std::string &node,
                                                const SlurmMarks &marks)
{
	const auto &devices = layout->devices();
	switch (config.channel.telemetry) {
	case TelemetrySource::File:
		return make_file_backend(*layout, expand_node_name(config.channel.telemetry_dir, node));
	case TelemetrySource::None:
		return nullptr;
	case TelemetrySource::Nvml:
	case TelemetrySource::Auto:
		break;
	}
	const bool nvidia = std::any_of(devices.begin(), devices.end(),
	                                [](const DeviceSlices &d) { return d.vendor == Vendor::Nvidia; });
	if (!nvidia)
		return make_unsupported_backend(devices.empty() ? Vendor::Nvidia : devices.front().vendor);
	auto nvml = make_nvml_backend(*layout, "libnvidia-ml.so.1", "/proc", marks);
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
	s.controller_uids = {0, slurm_conf.slurm_user_id};
	s.interval = config.channel.report_interval;
	AgentIo io = AgentIo::production(
	        MungeEndpoint{munge_socket_of(slurm_conf.authinfo ? slurm_conf.authinfo : "")});
	io.kill_job = [marks](uint32_t job, uint64_t ordered_at) {
		return kill_job_processes(job, "/proc", marks, ordered_at);
	};
	agent.reset(std::make_unique<NodeAgent>(s, *layout, std::move(backend), std::move(io)));
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

int load_node_config(compat::list_ptr gres_conf_list, node_config_load_t *node_conf)
{
	char *path_c = get_extra_conf_path(const_cast<char *>(config_file_name));
	const std::string path = path_c ? path_c : config_file_name;
	xfree(path_c);

	Config config = Config::defaults();
	struct stat st {
	};
	if (stat(path.c_str(), &st) != 0 && errno == ENOENT) {
		// slurmd's conf-cache holds slurm.conf when it runs configless.
		if (auto refusal = refuse_missing_config(path, in_conf_cache(path))) {
			error("flexslurm: %s", refusal->c_str());
			return SLURM_ERROR;
		}
		info(LOG_PREFIX "%s: not found; using built-in defaults (%d slices per device)", path.c_str(),
		     config.default_rule.slices);
	} else {
		auto loaded = Config::from_file(path);
		if (!loaded) {
			error("flexslurm: %s", loaded.error().c_str());
			return SLURM_ERROR;
		}
		config = *loaded;
	}

	const std::string node = compat::slurmd_node_name();
	const std::string xml = expand_node_name(config.topology_xml, node);
	auto inventory = xml.empty() ? Inventory::from_live_system() : Inventory::from_xml_file(xml);
	if (!inventory) {
		error("flexslurm: %s: inventory.topology_xml: %s", config.source.c_str(),
		      inventory.error().c_str());
		return SLURM_ERROR;
	}
	// Which file is which device: Slurm's own gpu records where they exist
	// (gres.conf, AutoDetect), hwloc for the rest.
	std::vector<std::string> problems;
	if (std::string order =
	            gres_types_order_problem(slurm_conf.gres_plugins ? slurm_conf.gres_plugins : "");
	    !order.empty() && !borrow_units)
		problems.push_back(order);
	const auto units = gpu_units_of(gres_records(gres_conf_list), problems);
	for (const std::string &p : problems)
		error(LOG_PREFIX "%s", p.c_str());
	const auto found = identify_devices(*inventory, expand_node_name(config.device_dir, node), units,
	                                    read_nvidia_gpus(expand_node_name(config.nvidia_proc_dir, node)),
	                                    config.exclude);
	if (!borrow_units)
		for (const std::string &line : found.report)
			info(LOG_PREFIX "%s", line.c_str());
	layout = SliceLayout::build(found, config);
	// For the SPANK plugin in slurmstepd, which must not load hwloc.
	if (auto saved = layout->save(expand_node_name(config.layout_file, node)); !saved)
		error(LOG_PREFIX "%s: the SPANK plugin cannot isolate devices on this node",
		      saved.error().c_str());
	rebuild_gres_devices();
	publish_slices(gres_conf_list, node_conf);
	if (!borrow_units)
		place_agent(config, node);
	return SLURM_SUCCESS;
}

std::vector<int> held_slices(bitstr_t *bits)
{
	std::vector<int> held;
	if (!bits)
		return held;
	for (bitoff_t i = bit_ffs(bits); i >= 0 && i < bit_size(bits); ++i)
		if (bit_test(bits, i))
			held.push_back(static_cast<int>(i));
	return held;
}

void set_env(char ***env, bitstr_t *bits, gres_internal_flags_t flags, DeviceNumbering numbering)
{
	if (!layout)
		return;
	const auto held = held_slices(bits);
	if (held.empty()) {
		// gres/vborrow comes after gres/vslice in GresTypes and must not
		// clear what vslice set for a job that holds slices.
		if (!borrow_units && !(flags & GRES_INTERNAL_FLAG_PROTECT_ENV))
			for (const std::string &name : owned_variable_names())
				unsetenvp(*env, name.c_str());
		return;
	}
	// A borrower gets the slice's compute share and only memory that no
	// slice reserved, through the same variables (and limit backends).
	const SliceLayout &view = borrow_units ? layout->borrow_view() : *layout;
	for (const EnvVar &v : slice_environment(view, held, numbering))
		env_array_overwrite(env, v.name.c_str(), v.value.c_str());
	// The SPANK job prolog computes a borrower's limits from the borrow
	// view (memory no slice reserved), not a slice's.
	if (borrow_units)
		env_array_overwrite(env, borrowed_variable_name, "1");
}

DeviceNumbering job_numbering()
{
	return gres_use_local_device_index() ? DeviceNumbering::Local : DeviceNumbering::Physical;
}

} // namespace

extern "C" {

int init(void)
{
	compat::log_prefix = plugin_type;
	set_log_sink(compat::slurm_log_sink);
	debug("%s: loaded", plugin_type);
	return SLURM_SUCCESS;
}

compat::fini_result fini(void)
{
	agent.reset();
	deferred_agent.reset();
	FREE_NULL_LIST(gres_devices);
	layout.reset();
	FLEXSLURM_FINI_RETURN;
}

int gres_p_node_config_load(compat::list_ptr gres_conf_list, node_config_load_t *node_conf)
{
	return guarded(
	        "node_config_load", [&] { return load_node_config(gres_conf_list, node_conf); },
	        static_cast<int>(SLURM_ERROR));
}

void gres_p_job_set_env(char ***job_env_ptr, bitstr_t *gres_bit_alloc, uint64_t, gres_internal_flags_t flags)
{
	guarded_void("job_set_env", [&] { set_env(job_env_ptr, gres_bit_alloc, flags, job_numbering()); });
}

void gres_p_step_set_env(char ***step_env_ptr, bitstr_t *gres_bit_alloc, uint64_t,
                         gres_internal_flags_t flags)
{
	guarded_void("step_set_env", [&] { set_env(step_env_ptr, gres_bit_alloc, flags, job_numbering()); });
}

// Per-task GPU binding is not offered for slices: every task of a step
// sees all of the step's slices, as with the step environment.
void gres_p_task_set_env(char ***step_env_ptr, bitstr_t *gres_bit_alloc, uint64_t, bitstr_t *,
                         gres_internal_flags_t flags)
{
	guarded_void("task_set_env", [&] { set_env(step_env_ptr, gres_bit_alloc, flags, job_numbering()); });
}

void gres_p_send_stepd(buf_t *buffer)
{
	guarded_void("send_stepd", [&] {
		const std::string text = layout ? layout->serialize() : std::string();
		packstr(const_cast<char *>(text.c_str()), buffer);
	});
}

void gres_p_recv_stepd(buf_t *buffer)
{
	guarded_void("recv_stepd", [&] {
		char *text = nullptr;
		uint32_t len = 0;
		if (unpackstr_xmalloc(&text, &len, buffer) != SLURM_SUCCESS) {
			error(LOG_PREFIX "recv_stepd: cannot unpack the slice layout");
			return;
		}
		const std::string s = text ? text : "";
		xfree(text);
		if (s.empty()) {
			layout.reset();
			FREE_NULL_LIST(gres_devices);
			return;
		}
		auto parsed = SliceLayout::deserialize(s);
		if (!parsed) {
			error(LOG_PREFIX "recv_stepd: %s", parsed.error().c_str());
			return;
		}
		layout = std::move(*parsed);
		rebuild_gres_devices();
	});
}

FLEXSLURM_GRES_INFO_GETTERS

compat::list_ptr gres_p_get_devices(void)
{
	return gres_devices;
}

void gres_p_step_hardware_init(bitstr_t *, char *) {}

void gres_p_step_hardware_fini(void) {}

compat::prep_info_t *FLEXSLURM_GRES_PREP_BUILD_ENV(gres_job_state_t *gres_js)
{
	return guarded(
	        "epilog_build_env",
	        [&]() -> compat::prep_info_t * {
		        auto *ei = static_cast<compat::prep_info_t *>(xmalloc(sizeof(compat::prep_info_t)));
		        ei->node_cnt = gres_js->node_cnt;
		        ei->gres_bit_alloc =
		                static_cast<bitstr_t **>(xcalloc(ei->node_cnt, sizeof(bitstr_t *)));
		        ei->gres_cnt_node_alloc =
		                static_cast<uint64_t *>(xcalloc(ei->node_cnt, sizeof(uint64_t)));
		        for (uint32_t i = 0; i < ei->node_cnt; i++) {
			        if (gres_js->gres_bit_alloc && gres_js->gres_bit_alloc[i]) {
				        ei->gres_bit_alloc[i] = bit_copy(gres_js->gres_bit_alloc[i]);
				        if (gres_js->gres_cnt_node_alloc)
					        ei->gres_cnt_node_alloc[i] = gres_js->gres_cnt_node_alloc[i];
			        }
		        }
		        return ei;
	        },
	        nullptr);
}

// Prolog and epilog run outside the job's device cgroup: host numbering.
void FLEXSLURM_GRES_PREP_SET_ENV(char ***epilog_env_ptr, compat::prep_info_t *gres_ei, int node_inx)
{
	guarded_void("epilog_set_env", [&] {
		if (!gres_ei || node_inx < 0 || static_cast<uint32_t>(node_inx) >= gres_ei->node_cnt ||
		    !gres_ei->gres_bit_alloc)
			return;
		set_env(epilog_env_ptr, gres_ei->gres_bit_alloc[node_inx], GRES_INTERNAL_FLAG_NONE,
		        DeviceNumbering::Physical);
	});
}

} // extern "C"
