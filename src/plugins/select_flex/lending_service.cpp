// SPDX-License-Identifier: GPL-2.0-or-later
#include "plugins/select_flex/lending_service.hpp"

#include "plugins/select_flex/gres_view.hpp"
#include "plugins/select_flex/settings.hpp"
#include "plugins/select_flex/slurm_controller.hpp"

#include "core/io/channel.hpp"
#include "core/service/lending_server.hpp"
#include "core/util/uids.hpp"

#include <atomic>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

namespace flexslurm::select_flex
{

namespace
{

SlurmController controller; // declared before `lending`, which uses it
std::unique_ptr<LendingServer> lending;

// lending.enabled as last loaded: false after a reconfigure turned lending
// off, while the server finishes what it started (nothing new is lent).
std::atomic<bool> lending_enabled{false};

// The lending settings the server runs with: Slurm calls the plugin's
// reconfigure on every partition and node update too.
Config lending_settings;

ServerSettings lending_server_settings(const Config &cfg)
{
	ServerSettings s;
	s.policy = cfg.lending;
	s.telemetry_timeout = cfg.channel.telemetry_timeout;
	s.hard_stop_after = cfg.channel.hard_stop_after;
	s.report_interval = cfg.channel.report_interval;
	s.port = cfg.channel.port;
	s.state_dir = state_save_dir();
	s.admin_uids = root_and_slurm_user(slurm_conf.slurm_user_id);
	s.metrics_dir = cfg.metrics.controller_textfile_dir;
	s.slice_holders = !cfg.metrics.node_textfile_dir.empty() || !cfg.metrics.dcgm_job_mapping_dir.empty();
	return s;
}

void start_lending(const Config &cfg)
{
	try {
		const MungeEndpoint munge{munge_socket_of(slurm_conf.authinfo ? slurm_conf.authinfo : "")};
		lending = std::make_unique<LendingServer>(lending_server_settings(cfg), controller,
		                                          ServerIo::production(munge));
		lending->start();
	} catch (...) {
		error("select/flex: lending: cannot start; nothing will be lent");
		lending.reset();
	}
}

bool same_lending(const Config &a, const Config &b)
{
	const LendingPolicy &p = a.lending, &q = b.lending;
	const LendingChannel &c = a.channel, &d = b.channel;
	return std::tie(p.idle_below_percent, p.idle_window, p.busy_above_percent, p.busy_samples, p.min_loan,
	                p.max_loan, p.cooldown, p.grace, p.never_lend_partitions, p.whole_devices,
	                p.free_slices, c.enabled, c.port, c.telemetry_timeout, c.hard_stop_after) ==
	       std::tie(q.idle_below_percent, q.idle_window, q.busy_above_percent, q.busy_samples, q.min_loan,
	                q.max_loan, q.cooldown, q.grace, q.never_lend_partitions, q.whole_devices,
	                q.free_slices, d.enabled, d.port, d.telemetry_timeout, d.hard_stop_after);
}

} // namespace

void start_lending_service(const Config &cfg)
{
	lending_enabled = cfg.channel.enabled;
	lending_settings = cfg;
	if (cfg.channel.enabled)
		start_lending(cfg);
}

void reload_lending_service(const Config &cfg)
{
	if (same_lending(cfg, lending_settings))
		return;
	lending_settings = cfg;
	const bool was = lending_enabled.exchange(cfg.channel.enabled);
	if (!cfg.channel.enabled) {
		if (was)
			info("select/flex: lending: turned off by reconfigure: nothing new is lent; loans in place run until taken back");
		return;
	}
	if (!lending) {
		start_lending(cfg);
		return;
	}
	lending->reconfigure(lending_server_settings(cfg));
}

void stop_lending_service()
{
	lending.reset();
}

std::set<int> lendable_units(const std::string &node, const std::function<bool(int)> &allocated_now)
{
	return lending && lending_enabled ? lending->lendable(node, allocated_now) : std::set<int>{};
}

void record_loan(job_record_t *job)
{
	if (!lending || !job || !(IS_JOB_RUNNING(job) || IS_JOB_SUSPENDED(job)))
		return;
	std::vector<std::pair<std::string, int>> units;
	for_each_job_unit_set(job, vborrow_id(), [&](int i, bitstr_t *bits) {
		for_each_set_bit(bits, [&](int u) { units.emplace_back(node_record_table_ptr[i]->name, u); });
	});
	lending->committed(job->job_id, units);
}

void record_lent_totals(job_record_t *job)
{
	if (!lending || !job)
		return;
	const auto totals = lending->ended(job->job_id);
	if (totals && write_totals(job, *totals))
		return;
	// Slurm has sent the job's end record to slurmdbd already, and sends no
	// SystemComment with it: a borrower's totals go as an update of that record.
	if (job->system_comment && has_totals(job->system_comment))
		compat::store_system_comment(job);
}

} // namespace flexslurm::select_flex
