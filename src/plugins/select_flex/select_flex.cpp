/*
 * select/flex: select/cons_tres, taught that a vslice and a gpu can be the
 * same silicon. Every select_p_* call is handed to cons_tres (loaded as a
 * second plugin context, the way select/cray_aries wraps "other"); job_test
 * first hides, for the length of the call, the GRES units the job must not
 * get: slices of devices held whole, whole devices with a slice in use, and,
 * for slice jobs, the free slices outside the devices the placement policy
 * chose. cons_tres then picks as usual: nodes, cores, memory, backfill and
 * preemption stay its business. Placement decisions live in the core
 * (src/core/placement.*); this file only translates.
 *
 * Idle reclaim (lending: in flexslurm.yaml) is the core's LendingServer
 * (src/core/lending_server.*): its thread listens for the node agents'
 * reports and, every second, reads who holds what from the job records
 * and signals and requeues borrowers whose loans are taken back (never
 * from inside a select_p_* call). This file gives it SlurmController, its
 * hands on the job records, and shows a borrower (gres/vborrow) only the
 * borrow units whose slices are allocated and idle.
 */
#define FLEXSLURM_COMPAT_SELECT
#include "slurm_compat.h"

#include "core/io/channel.hpp"
#include "core/io/config.hpp"
#include "core/io/file_io.hpp"
#include "core/service/lending_server.hpp"
#include "core/model/loan_book.hpp"
#include "core/util/log.hpp"
#include "core/model/placement.hpp"
#include "core/model/report.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

extern "C" {
extern const char plugin_name[] =
        "select/flex: slice-aware select/cons_tres (flexslurm " FLEXSLURM_VERSION ")";
extern const char plugin_type[] = "select/flex";
extern const uint32_t plugin_id = flexslurm::compat::select_plugin_id;
extern const uint32_t plugin_version = SLURM_VERSION_NUMBER;
}

namespace
{

using namespace flexslurm;

constexpr const char *config_file_name = "flexslurm.yaml";

std::mutex delegate_lock;
plugin_context_t *delegate_context = nullptr;
compat::select_ops_t ops{};
Config config = Config::defaults();

// cons_tres is loaded on first use: clients (sinfo, squeue) load every
// select plugin in PluginDir and most never call it.
bool delegate()
{
	std::lock_guard<std::mutex> guard(delegate_lock);
	if (delegate_context)
		return true;
	delegate_context = plugin_context_create(
	        "select", compat::wrapped_select_type, reinterpret_cast<void **>(&ops),
	        const_cast<const char **>(compat::select_ops_names), sizeof(compat::select_ops_names));
	if (!delegate_context)
		error("select/flex: cannot load %s, which select/flex wraps", compat::wrapped_select_type);
	return delegate_context != nullptr;
}

bool is_selected_plugin()
{
	return running_in_slurmctld() && !xstrcmp(slurm_conf.select_type, plugin_type);
}

// The settings in force, kept in StateSaveLocation: a slurmctld that
// re-executes itself for `scontrol reconfigure` (23.11 and later) starts
// afresh, and keeps these when flexslurm.yaml was broken meanwhile.
std::string last_good_path()
{
	return std::string(slurm_conf.state_save_location ? slurm_conf.state_save_location : ".") +
	       "/flexslurm_config.last_good";
}

// Reads flexslurm.yaml into `config`: nullopt, or the one line saying why
// the file is refused (`config` unchanged then).
std::optional<std::string> load_config()
{
	char *path_c = get_extra_conf_path(const_cast<char *>(config_file_name));
	const std::string path = path_c ? path_c : config_file_name;
	xfree(path_c);
	struct stat st {
	};
	std::string text = "version: 1\n";
	if (stat(path.c_str(), &st) != 0 && errno == ENOENT) {
		// slurmctld reads its own configuration directory, never a
		// conf-cache: a missing file is the built-in defaults
		// (refuse_missing_config).
		info("select/flex: %s: not found; placement best_fit everywhere", path.c_str());
		config = Config::defaults();
	} else {
		constexpr size_t max_config_bytes = 1 << 20; // as Config::from_file
		auto read = read_file_bounded(path, max_config_bytes);
		if (!read)
			return path + ": cannot read: " + read.error();
		auto loaded = Config::from_string(*read, path);
		if (!loaded)
			return loaded.error();
		config = *loaded;
		text = std::move(*read);
		info("select/flex: placement %s by default, %zu partition override(s)",
		     std::string(placement_name(config.default_placement)).c_str(),
		     config.partition_placement.size());
	}
	static std::string saved_text; // written again only when it changes
	if (text != saved_text) {
		if (auto saved = write_file_atomically(last_good_path(), text, 0600, true); saved)
			saved_text = text;
		else
			error("select/flex: %s: %s", last_good_path().c_str(), saved.error().c_str());
	}
	return std::nullopt;
}

// A slurmctld that `scontrol reconfigure` re-executed (23.11 and later).
bool reexecuted_for_reconfigure()
{
	return getenv("SLURMCTLD_RECONF") != nullptr;
}

// The settings saved by the last good load_config, if any.
std::optional<Config> last_good_config()
{
	auto text = read_file_bounded(last_good_path(), 1 << 20);
	if (!text)
		return std::nullopt;
	auto loaded = Config::from_string(*text, last_good_path());
	return loaded ? std::optional<Config>(*loaded) : std::nullopt;
}

// Logs a refused file once per distinct reason: select_p_reconfigure runs
// on every partition or node update too.
std::string last_refusal;
void refused_on_reconfigure(const std::string &why)
{
	if (why == last_refusal)
		return;
	last_refusal = why;
	error("select/flex: reconfigure: %s; keeping the last good settings", why.c_str());
}

// ---------------------------------------------------------------------------
// Slurm's GRES state <-> the core's view of a node's devices

uint32_t vslice_id()
{
	static const uint32_t id = gres_build_id(const_cast<char *>("vslice"));
	return id;
}

uint32_t vborrow_id()
{
	static const uint32_t id = gres_build_id(const_cast<char *>("vborrow"));
	return id;
}

uint32_t gpu_id()
{
	static const uint32_t id = gres_build_id(const_cast<char *>("gpu"));
	return id;
}

int unit_count(bitstr_t *bits)
{
	return bits ? static_cast<int>(bit_size(bits)) : 0;
}

std::vector<int> set_bits(bitstr_t *bits, int first, int count)
{
	std::vector<int> out;
	if (!bits)
		return out;
	for (int i = first; i < first + count && i < bit_size(bits); ++i)
		if (bit_test(bits, i))
			out.push_back(i);
	return out;
}

// gres/vslice registers one topology entry per device; gpu units are matched
// to devices in order within each type (gres.conf lists a node's GPUs in PCI
// order, as AutoDetect does), or in plain order when the types differ.
std::vector<DeviceView> devices_of(node_record_t *node)
{
	std::vector<DeviceView> devices;
	gres_node_state_t *vs = compat::node_gres(node, vslice_id());
	if (!vs || !vs->topo_gres_bitmap)
		return devices;
	for (int t = 0; t < vs->topo_cnt; ++t) {
		bitstr_t *units = vs->topo_gres_bitmap[t];
		if (!units)
			continue;
		DeviceView d;
		d.first_slice = static_cast<int>(bit_ffs(units));
		d.slices = bit_set_count(units);
		if (d.first_slice < 0)
			continue;
		d.type = vs->topo_type_name && vs->topo_type_name[t] ? vs->topo_type_name[t] : "";
		d.used_slices = set_bits(vs->gres_bit_alloc, d.first_slice, d.slices);
		devices.push_back(std::move(d));
	}

	gres_node_state_t *gs = compat::node_gres(node, gpu_id());
	if (!gs || !gs->gres_bit_alloc)
		return devices;
	const int gpu_units = static_cast<int>(bit_size(gs->gres_bit_alloc));
	std::vector<std::string> gpu_type(static_cast<size_t>(gpu_units));
	for (int t = 0; gs->topo_gres_bitmap && t < gs->topo_cnt; ++t)
		for (int u : set_bits(gs->topo_gres_bitmap[t], 0, gpu_units))
			gpu_type[static_cast<size_t>(u)] =
			        gs->topo_type_name && gs->topo_type_name[t] ? gs->topo_type_name[t] : "";
	bool types_match = true;
	for (const DeviceView &d : devices)
		types_match = types_match && std::count(gpu_type.begin(), gpu_type.end(), d.type) > 0;
	std::vector<bool> taken(static_cast<size_t>(gpu_units), false);
	for (DeviceView &d : devices) {
		for (int u = 0; u < gpu_units; ++u) {
			if (taken[static_cast<size_t>(u)] ||
			    (types_match && gpu_type[static_cast<size_t>(u)] != d.type))
				continue;
			taken[static_cast<size_t>(u)] = true;
			d.gpu_unit = u;
			d.whole_used = bit_test(gs->gres_bit_alloc, u);
			break;
		}
	}
	return devices;
}

struct JobAsk {
	bool slices = false;
	bool gpus = false;
	bool borrows = false;
	NodeRequest per_node;
};

JobAsk job_ask(job_record_t *job, uint32_t max_nodes)
{
	JobAsk ask;
	if (!job->gres_list_req)
		return ask;
	compat::list_iter it = list_iterator_create(job->gres_list_req);
	while (auto *state = static_cast<gres_state_t *>(list_next(it))) {
		auto *js = static_cast<gres_job_state_t *>(state->gres_data);
		if (state->plugin_id == gpu_id()) {
			ask.gpus = true;
		} else if (state->plugin_id == vborrow_id()) {
			ask.borrows = true;
		} else if (state->plugin_id == vslice_id()) {
			ask.slices = true;
			ask.per_node.type = js->type_name ? js->type_name : "";
			if (js->gres_per_node)
				ask.per_node.slices = static_cast<int>(js->gres_per_node);
			else if (js->gres_per_job && max_nodes == 1)
				ask.per_node.slices = static_cast<int>(js->gres_per_job);
			else
				ask.per_node.slices = -1; // spread over nodes by cons_tres
		}
	}
	list_iterator_destroy(it);
	ask.per_node.gpus = ask.gpus;
	if (ask.slices) {
		std::vector<std::string_view> env;
		for (uint32_t i = 0; job->spank_job_env && i < job->spank_job_env_size; ++i)
			if (job->spank_job_env[i])
				env.emplace_back(job->spank_job_env[i]);
		ask.per_node.split = split_from_env(env);
	}
	return ask;
}

// Hides units of one GRES on one node by counting them allocated, exactly as
// a job holding them would, and gives back exactly those units when it goes
// away: whatever the wrapped call allocated meanwhile stays (job_test
// allocates nothing; select_p_select_nodeinfo_set allocates the job).
class HiddenUnits
{
public:
	explicit HiddenUnits(gres_node_state_t *ns) : ns_(ns) {}
	HiddenUnits(const HiddenUnits &) = delete;
	HiddenUnits &operator=(const HiddenUnits &) = delete;
	HiddenUnits(HiddenUnits &&other) noexcept
	    : ns_(std::exchange(other.ns_, nullptr)), units_(std::move(other.units_))
	{
	}
	~HiddenUnits()
	{
		if (!ns_)
			return;
		for (int u : units_)
			count(u, false);
		xfree(ns_->gres_used); // a cached "in use" string, rebuilt on demand
	}

	void hide(int unit)
	{
		if (unit < 0 || unit >= bit_size(ns_->gres_bit_alloc) || bit_test(ns_->gres_bit_alloc, unit))
			return;
		count(unit, true);
		units_.push_back(unit);
	}

private:
	void count(int unit, bool add)
	{
		if (add)
			bit_set(ns_->gres_bit_alloc, unit);
		else
			bit_clear(ns_->gres_bit_alloc, unit);
		auto step = [add](uint64_t &v) { v = add ? v + 1 : (v ? v - 1 : 0); };
		step(ns_->gres_cnt_alloc);
		for (int t = 0; ns_->topo_gres_bitmap && t < ns_->topo_cnt; ++t) {
			if (!ns_->topo_gres_bitmap[t] || unit >= bit_size(ns_->topo_gres_bitmap[t]) ||
			    !bit_test(ns_->topo_gres_bitmap[t], unit))
				continue;
			step(ns_->topo_gres_cnt_alloc[t]);
			for (int k = 0; k < ns_->type_cnt; ++k)
				if (ns_->type_id[k] == ns_->topo_type_id[t])
					step(ns_->type_cnt_alloc[k]);
		}
	}

	gres_node_state_t *ns_;
	std::vector<int> units_;
};

std::vector<HiddenUnits> hide_units(job_record_t *job, bitstr_t *nodes, const JobAsk &ask)
{
	std::vector<HiddenUnits> hidden;
	const Placement policy =
	        config.placement_for(job->part_ptr && job->part_ptr->name ? job->part_ptr->name : "");
	for (int i = 0; nodes && i < bit_size(nodes); ++i) {
		if (!bit_test(nodes, i) || i >= node_record_count || !node_record_table_ptr[i])
			continue;
		node_record_t *node = node_record_table_ptr[i];
		const UnitMasks masks = masks_for(devices_of(node), ask.per_node, policy);
		auto hide = [&](uint32_t gres, const std::vector<int> &units) {
			gres_node_state_t *ns = compat::node_gres(node, gres);
			if (units.empty() || !ns || !ns->gres_bit_alloc)
				return;
			hidden.emplace_back(ns);
			for (int u : units)
				hidden.back().hide(u);
		};
		hide(vslice_id(), masks.slices);
		hide(gpu_id(), masks.gpus);
	}
	return hidden;
}

// Slurm picks the units of a GRES without topology (gres.conf gpu lines
// with neither Type= nor Cores=) itself, first free bit, when it allocates
// the job (select_p_select_nodeinfo_set), after job_test's masks are gone.
// For that step the gpu units of devices whose slices are in use, or that
// hold the slices this job was given, are hidden the same way.

// The units of `gres` that job_test selected for the job on node `index`.
bitstr_t *selected_units(job_record_t *job, uint32_t gres, int index)
{
	if (!job->gres_list_req)
		return nullptr;
	bitstr_t *bits = nullptr;
	compat::list_iter it = list_iterator_create(job->gres_list_req);
	while (auto *state = static_cast<gres_state_t *>(list_next(it))) {
		auto *js = static_cast<gres_job_state_t *>(state->gres_data);
		if (state->plugin_id == gres && js && js->gres_bit_select && index >= 0 &&
		    static_cast<uint32_t>(index) < js->total_node_cnt)
			bits = js->gres_bit_select[index];
	}
	list_iterator_destroy(it);
	return bits;
}

std::vector<HiddenUnits> mask_for_allocation(job_record_t *job)
{
	std::vector<HiddenUnits> masks;
	if (job->gres_list_alloc || !job->job_resrcs || !job->job_resrcs->node_bitmap)
		return masks; // not a new allocation (restart, resume): the job's units are known
	const JobAsk ask = job_ask(job, 1);
	if (!ask.gpus)
		return masks;
	bitstr_t *nodes = job->job_resrcs->node_bitmap;
	for (int i = 0; i < bit_size(nodes) && i < node_record_count; ++i) {
		if (!bit_test(nodes, i) || !node_record_table_ptr[i])
			continue;
		node_record_t *node = node_record_table_ptr[i];
		gres_node_state_t *gs = compat::node_gres(node, gpu_id());
		if (!gs || !gs->gres_bit_alloc || gs->topo_cnt)
			continue; // with topology cons_tres chose the units under job_test's masks
		bitstr_t *own_slices = selected_units(job, vslice_id(), i);
		HiddenUnits mask(gs);
		for (const DeviceView &d : devices_of(node)) {
			bool own = false;
			for (int k = d.first_slice;
			     own_slices && k < d.first_slice + d.slices && k < bit_size(own_slices); ++k)
				own = own || bit_test(own_slices, k);
			if (d.gpu_unit >= 0 && (!d.used_slices.empty() || own))
				mask.hide(d.gpu_unit);
		}
		masks.push_back(std::move(mask));
	}
	return masks;
}

// ---------------------------------------------------------------------------
// Idle reclaim: the core's LendingServer, on Slurm's job records

// Calls f(bit) for each set bit of `bits`, from its first to its last.
template <class F>
void for_each_set_bit(bitstr_t *bits, F &&f)
{
	if (!bits)
		return;
	const auto first = bit_ffs(bits);
	if (first < 0)
		return;
	const auto last = bit_fls(bits);
	for (auto i = first; i <= last; ++i)
		if (bit_test(bits, i))
			f(static_cast<int>(i));
}

// Calls f(node index, unit bits) for each node a job holds units of `gres` on.
template <class F>
void for_each_job_unit_set(job_record_t *job, uint32_t gres, F &&f)
{
	if (!job->gres_list_alloc || !job->job_resrcs || !job->job_resrcs->node_bitmap)
		return;
	compat::list_iter it = list_iterator_create(job->gres_list_alloc);
	while (auto *state = static_cast<gres_state_t *>(list_next(it))) {
		if (state->plugin_id != gres)
			continue;
		auto *js = static_cast<gres_job_state_t *>(state->gres_data);
		if (!js || !js->gres_bit_alloc)
			continue;
		uint32_t j = 0;
		for_each_set_bit(job->job_resrcs->node_bitmap, [&](int i) {
			if (j >= js->node_cnt)
				return;
			if (js->gres_bit_alloc[j] && i < node_record_count && node_record_table_ptr[i])
				f(i, js->gres_bit_alloc[j]);
			++j;
		});
	}
	list_iterator_destroy(it);
}

// Who holds which slice and which borrow unit, from the job records.
// Caller holds the job and node locks.
std::vector<NodeBooks> read_books()
{
	std::vector<NodeBooks> books;
	std::vector<int> at(static_cast<size_t>(std::max(node_record_count, 0)), -1); // node -> books
	for (int i = 0; i < node_record_count; ++i) {
		node_record_t *node = node_record_table_ptr[i];
		gres_node_state_t *vs = node ? compat::node_gres(node, vslice_id()) : nullptr;
		if (!vs)
			continue;
		NodeBooks nb;
		nb.node = node->name;
		if (!vs->gres_bit_alloc || !vs->topo_gres_bitmap || !vs->topo_cnt) {
			nb.known = false; // not registered since the controller started
			books.push_back(std::move(nb));
			continue;
		}
		const int units = unit_count(vs->gres_bit_alloc);
		nb.device_of_slice.assign(static_cast<size_t>(units), -1);
		for (int t = 0; t < vs->topo_cnt; ++t)
			for_each_set_bit(vs->topo_gres_bitmap[t], [&](int u) {
				if (u < units)
					nb.device_of_slice[static_cast<size_t>(u)] = t;
			});
		at[static_cast<size_t>(i)] = static_cast<int>(books.size());
		books.push_back(std::move(nb));
	}
	auto books_of = [&](int i) -> NodeBooks * {
		const int b = i >= 0 && static_cast<size_t>(i) < at.size() ? at[static_cast<size_t>(i)] : -1;
		return b < 0 ? nullptr : &books[static_cast<size_t>(b)];
	};
	compat::list_iter it = list_iterator_create(job_list);
	while (auto *job = static_cast<job_record_t *>(list_next(it))) {
		const bool running = IS_JOB_RUNNING(job) || IS_JOB_SUSPENDED(job);
		const bool completing = IS_JOB_COMPLETING(job);
		if (!running && !completing)
			continue;
		if (running && !completing)
			for_each_job_unit_set(job, vslice_id(), [&](int i, bitstr_t *bits) {
				NodeBooks *nb = books_of(i);
				if (!nb)
					return;
				SliceOwner owner{job->job_id,
				                 job->part_ptr && job->part_ptr->name ? job->part_ptr->name
				                                                      : "",
				                 std::nullopt};
				if (job->time_limit != INFINITE && job->end_time)
					owner.end = Instant(Seconds(job->end_time)); // wall clock
				for_each_set_bit(bits, [&](int u) { nb->owners[u] = owner; });
			});
		for_each_job_unit_set(job, vborrow_id(), [&](int i, bitstr_t *bits) {
			NodeBooks *nb = books_of(i);
			if (!nb)
				return;
			for_each_set_bit(bits, [&](int u) {
				nb->borrowers[u] = {job->job_id, completing || !running, job->restart_cnt};
			});
		});
	}
	list_iterator_destroy(it);
	return books;
}

// What a job record says about a borrower whose reclaim is in flight
// (LoanBook::judge decides from it). Caller holds the job lock.
std::optional<BorrowerRecord> borrower_record(uint32_t id)
{
	using Stage = BorrowerRecord::Stage;
	job_record_t *job = find_job_record(id);
	if (!job)
		return std::nullopt;
	BorrowerRecord r;
	r.run = job->restart_cnt;
	if (IS_JOB_COMPLETING(job))
		r.stage = Stage::Leaving;
	else if (IS_JOB_RUNNING(job) || IS_JOB_SUSPENDED(job))
		r.stage = Stage::Running;
	else if (IS_JOB_PENDING(job))
		r.stage = Stage::Pending;
	else
		r.stage = IS_JOB_FAILED(job) ? Stage::Failed : Stage::Ended;
	if (r.stage == Stage::Failed || r.stage == Stage::Ended)
		r.end = Instant(Seconds(job->end_time)); // wall clock
	return r;
}

void write_totals(job_record_t *job, const JobTotals &t)
{
	const std::string text = totals_comment(job->system_comment ? job->system_comment : "", t);
	if (!job->system_comment || text != job->system_comment) {
		xfree(job->system_comment);
		job->system_comment = xstrdup(text.c_str());
	}
}

std::vector<std::string> numeric_addresses(const std::string &host)
{
	std::vector<std::string> out;
	addrinfo hints{};
	hints.ai_socktype = SOCK_STREAM;
	addrinfo *res = nullptr;
	if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0)
		return out;
	for (addrinfo *a = res; a; a = a->ai_next) {
		char text[INET6_ADDRSTRLEN] = {};
		const void *src = a->ai_family == AF_INET
		                          ? static_cast<const void *>(
		                                    &reinterpret_cast<sockaddr_in *>(a->ai_addr)->sin_addr)
		                          : static_cast<const void *>(
		                                    &reinterpret_cast<sockaddr_in6 *>(a->ai_addr)->sin6_addr);
		if (inet_ntop(a->ai_family, src, text, sizeof(text)))
			out.emplace_back(text);
	}
	freeaddrinfo(res);
	return out;
}

// The LendingServer's hands on slurmctld.
class SlurmController final : public LendingController
{
public:
	bool in_control() override { return compat::controller_in_control(); }

	std::optional<ControllerView> read(const std::vector<uint32_t> &check_alive,
	                                   const std::vector<uint32_t> &reclaimed) override
	{
		compat::JobReadLock locks;
		if (!job_list || !node_record_table_ptr)
			return std::nullopt; // the controller is still reading its state
		ControllerView view;
		view.nodes = read_books();
		for (int i = 0; i < node_record_count; ++i)
			if (node_record_t *n = node_record_table_ptr[i])
				view.hosts[n->name] = n->comm_name ? n->comm_name : n->name;
		for (uint32_t id : check_alive) {
			job_record_t *job = find_job_record(id);
			if (job && (!IS_JOB_FINISHED(job) || IS_JOB_COMPLETING(job)))
				view.alive.push_back(id);
		}
		for (uint32_t id : reclaimed)
			if (auto r = borrower_record(id))
				view.borrowers.emplace(id, *r);
		return view;
	}

	void locked(const std::function<void()> &body) override
	{
		compat::JobWriteLock locks;
		body();
	}

	std::optional<JobFacts> job(uint32_t id) override
	{
		job_record_t *job = find_job_record(id);
		if (!job)
			return std::nullopt;
		return JobFacts{IS_JOB_RUNNING(job), job->warn_signal != 0,
		                static_cast<int64_t>(job->start_time)};
	}

	std::string signal_checkpoint(uint32_t id) override
	{
		job_record_t *job = find_job_record(id);
		if (!job)
			return "no job record";
		const uint16_t flags = job->warn_flags & (KILL_JOB_BATCH | KILL_FULL_JOB);
		const int rc = job_signal(job, job->warn_signal, flags, 0, false);
		return rc == SLURM_SUCCESS
		               ? ""
		               : "signal " + std::to_string(job->warn_signal) + ": " + slurm_strerror(rc);
	}

	std::string requeue(uint32_t id) override
	{
		job_record_t *job = find_job_record(id);
		if (!job)
			return "no job record";
		const int rc = compat::requeue_job(job);
		return rc == SLURM_SUCCESS ? "" : slurm_strerror(rc);
	}

	// Slurm requeues a finished batch job as it does a running one.
	std::string requeue_ended(uint32_t id) override { return requeue(id); }

	void kill(uint32_t id) override
	{
		if (job_record_t *job = find_job_record(id))
			job_signal(job, SIGKILL, 0, 0, false);
	}

	void record_totals(uint32_t id, const JobTotals &totals) override
	{
		if (job_record_t *job = find_job_record(id))
			write_totals(job, totals);
	}

	void kick_scheduler() override { queue_job_scheduler(); }

	std::vector<std::string> resolve(const std::string &host) override { return numeric_addresses(host); }
};

SlurmController slurm_controller;
std::unique_ptr<LendingServer> lending;

ServerSettings lending_server_settings(const Config &cfg)
{
	ServerSettings s;
	s.policy = cfg.lending;
	s.telemetry_timeout = cfg.channel.telemetry_timeout;
	s.hard_stop_after = cfg.channel.hard_stop_after;
	s.report_interval = cfg.channel.report_interval;
	s.port = cfg.channel.port;
	s.state_dir = slurm_conf.state_save_location ? slurm_conf.state_save_location : ".";
	s.admin_uids = {0, slurm_conf.slurm_user_id};
	return s;
}

// lending.enabled as last loaded: false after a reconfigure turned lending
// off, while the server finishes what it started (nothing new is lent).
std::atomic<bool> lending_enabled{false};

void start_lending()
{
	try {
		const MungeEndpoint munge{munge_socket_of(slurm_conf.authinfo ? slurm_conf.authinfo : "")};
		lending = std::make_unique<LendingServer>(lending_server_settings(config), slurm_controller,
		                                          ServerIo::production(munge));
		lending->start();
	} catch (...) {
		error("select/flex: lending: cannot start; nothing will be lent");
		lending.reset();
	}
}

// The lending settings the server runs with: Slurm calls the plugin's
// reconfigure on every partition and node update too.
Config lending_settings;

bool same_lending(const Config &a, const Config &b)
{
	const LendingPolicy &p = a.lending, &q = b.lending;
	const LendingChannel &c = a.channel, &d = b.channel;
	return std::tie(p.idle_below_percent, p.idle_window, p.busy_above_percent, p.busy_samples, p.min_loan,
	                p.max_loan, p.cooldown, p.grace, p.never_lend_partitions, c.enabled, c.port,
	                c.telemetry_timeout, c.hard_stop_after) ==
	       std::tie(q.idle_below_percent, q.idle_window, q.busy_above_percent, q.busy_samples, q.min_loan,
	                q.max_loan, q.cooldown, q.grace, q.never_lend_partitions, d.enabled, d.port,
	                d.telemetry_timeout, d.hard_stop_after);
}

// select_p_reconfigure, under the controller's locks: the lending settings
// of the flexslurm.yaml just loaded take effect (the server's thread is
// never joined here: it may be waiting for these very locks).
void reload_lending()
{
	if (same_lending(config, lending_settings))
		return;
	lending_settings = config;
	const bool was = lending_enabled.exchange(config.channel.enabled);
	if (!config.channel.enabled) {
		if (was)
			info("select/flex: lending: turned off by reconfigure: nothing new is lent; loans in place run until taken back");
		return;
	}
	if (!lending) {
		start_lending();
		return;
	}
	lending->reconfigure(lending_server_settings(config));
}

// A borrower sees only borrow units whose slices are lendable now.
std::vector<HiddenUnits> hide_unlendable(bitstr_t *nodes)
{
	std::vector<HiddenUnits> hidden;
	for (int i = 0; nodes && i < bit_size(nodes); ++i) {
		if (!bit_test(nodes, i) || i >= node_record_count || !node_record_table_ptr[i])
			continue;
		node_record_t *node = node_record_table_ptr[i];
		gres_node_state_t *ns = compat::node_gres(node, vborrow_id());
		if (!ns || !ns->gres_bit_alloc)
			continue;
		const std::set<int> ok =
		        lending && lending_enabled ? lending->lendable(node->name) : std::set<int>{};
		hidden.emplace_back(ns);
		for (int u = 0; u < bit_size(ns->gres_bit_alloc); ++u)
			if (!ok.count(u))
				hidden.back().hide(u);
	}
	return hidden;
}

} // namespace

extern "C" {

int init(void)
{
	compat::log_prefix = plugin_type;
	set_log_sink(compat::slurm_log_sink);
	if (!is_selected_plugin())
		return SLURM_SUCCESS;
	std::optional<std::string> refused;
	try {
		refused = load_config();
	} catch (...) {
		refused = std::string(config_file_name) + ": unexpected failure reading it";
	}
	if (refused) {
		std::optional<Config> kept;
		if (reexecuted_for_reconfigure())
			kept = last_good_config();
		// A refused init would make Slurm retry the load and log the
		// reason twice before its own fatal: one line, then stop.
		if (!kept)
			fatal("select/flex: refusing to start: %s", refused->c_str());
		config = *kept;
		refused_on_reconfigure(*refused);
	}
	lending_enabled = config.channel.enabled;
	lending_settings = config;
	if (config.channel.enabled)
		start_lending();
	return SLURM_SUCCESS;
}

compat::fini_result fini(void)
{
	lending.reset();
	std::lock_guard<std::mutex> guard(delegate_lock);
	if (delegate_context)
		plugin_context_destroy(delegate_context);
	delegate_context = nullptr;
	FLEXSLURM_FINI_RETURN;
}

int select_p_job_test(job_record_t *job_ptr, bitstr_t *bitmap, uint32_t min_nodes, uint32_t max_nodes,
                      uint32_t req_nodes, uint16_t mode, FLEXSLURM_JOB_TEST_TAIL_PARAMS)
{
	if (!delegate())
		return SLURM_ERROR;
	std::vector<HiddenUnits> hidden;
	try {
		const JobAsk ask = job_ask(job_ptr, max_nodes);
		if (ask.slices && ask.gpus && ask.per_node.slices < 0) {
			// Without a per-node slice count nothing keeps its own
			// slices off the devices it gets whole.
			debug("select/flex: JobId=%u asks for GPUs and slices spread over nodes: refused",
			      compat::job_id_of(job_ptr));
			return ESLURM_INVALID_GRES;
		}
		if (ask.borrows) {
			// A borrower is taken back by requeue: one that cannot be
			// requeued never starts (job_submit/flex refuses it earlier,
			// with a message to the user).
			if (!job_ptr->batch_flag || !job_ptr->details || !job_ptr->details->requeue ||
			    ask.slices || ask.gpus) {
				debug("select/flex: JobId=%u borrows but is not a requeueable batch job "
				      "asking only "
				      "vborrow: not placed",
				      compat::job_id_of(job_ptr));
				return ESLURM_INVALID_GRES;
			}
			if (mode != SELECT_MODE_TEST_ONLY)
				hidden = hide_unlendable(bitmap);
		}
		if (ask.slices || ask.gpus)
			hidden = hide_units(job_ptr, bitmap, ask);
	} catch (const std::exception &e) {
		error("select/flex: job_test JobId=%u: %s", compat::job_id_of(job_ptr), e.what());
		return SLURM_ERROR;
	} catch (...) {
		error("select/flex: job_test JobId=%u: unexpected failure", compat::job_id_of(job_ptr));
		return SLURM_ERROR;
	}
	return ops.job_test(job_ptr, bitmap, min_nodes, max_nodes, req_nodes, mode,
	                    FLEXSLURM_JOB_TEST_TAIL_ARGS);
	// `hidden` restores every node's GRES state here, after cons_tres chose.
}

/* Everything else is cons_tres's, unchanged, per release. */
#include "select_delegates.inc"

int select_p_job_fini(job_record_t *job_ptr)
{
	try {
		if (lending && job_ptr)
			if (const auto totals = lending->ended(job_ptr->job_id))
				write_totals(job_ptr, *totals);
	} catch (...) {
		error("select/flex: lending: JobId=%u: cannot record what it lent",
		      compat::job_id_of(job_ptr));
	}
	return delegate() ? ops.job_fini(job_ptr) : SLURM_ERROR;
}

int select_p_select_nodeinfo_set(job_record_t *job_ptr)
{
	if (!delegate())
		return SLURM_ERROR;
	std::vector<HiddenUnits> masks;
	try {
		if (job_ptr && (IS_JOB_RUNNING(job_ptr) || IS_JOB_SUSPENDED(job_ptr)))
			masks = mask_for_allocation(job_ptr);
	} catch (...) {
		error("select/flex: JobId=%u: cannot keep its GPUs off sliced devices",
		      compat::job_id_of(job_ptr));
	}
	const int rc = ops.nodeinfo_set(job_ptr);
	masks.clear();
	try {
		if (rc == SLURM_SUCCESS && lending && job_ptr &&
		    (IS_JOB_RUNNING(job_ptr) || IS_JOB_SUSPENDED(job_ptr))) {
			std::vector<std::pair<std::string, int>> units;
			for_each_job_unit_set(job_ptr, vborrow_id(), [&](int i, bitstr_t *bits) {
				for_each_set_bit(bits, [&](int u) {
					units.emplace_back(node_record_table_ptr[i]->name, u);
				});
			});
			lending->committed(job_ptr->job_id, units);
		}
	} catch (...) {
		error("select/flex: lending: JobId=%u: cannot record its loan", compat::job_id_of(job_ptr));
	}
	return rc;
}

int select_p_reconfigure(void)
{
	try {
		if (is_selected_plugin()) {
			// Slurm 22.05 to 23.02 reconfigure in place; 23.11 and later
			// re-execute slurmctld, which reads everything in init().
			if (auto refused = load_config()) {
				refused_on_reconfigure(*refused);
			} else {
				last_refusal.clear();
				reload_lending();
			}
		}
	} catch (...) {
		error("select/flex: reconfigure: unexpected failure; keeping the last good settings");
	}
	return delegate() ? ops.reconfigure() : SLURM_ERROR;
}
} // extern "C"
