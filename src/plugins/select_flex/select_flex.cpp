// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * select/flex: select/cons_tres, taught that a vslice and a gpu can be the
 * same silicon. Every select_p_* call is handed to cons_tres (cons_tres.*);
 * job_test first hides, for the length of the call, the GRES units the job
 * must not get: slices of devices held whole, whole devices with a slice in
 * use, and, for slice jobs, the free slices outside the devices the
 * placement policy chose (unit_masks.*). cons_tres then picks as usual:
 * nodes, cores, memory, backfill and preemption stay its business.
 * Placement decisions live in the core (src/core/model/placement.*); this
 * plugin only translates Slurm's GRES state (gres_view.*).
 *
 * Idle reclaim (lending: in flexslurm.yaml) is the core's LendingServer
 * (src/core/service/lending_server.*, lending_service.*): its thread
 * listens for the node agents' reports and, every second, reads who holds
 * what from the job records and signals and requeues borrowers whose loans
 * are taken back (never from inside a select_p_* call). SlurmController
 * (slurm_controller.*) is its hands on the job records; a borrower
 * (gres/vborrow) sees only the borrow units whose slices are allocated and
 * idle. flexslurm.yaml is loaded at init and reconfigure (settings.*).
 *
 * This file holds the entry points only, each through the one entry guard.
 */
#define FLEXSLURM_COMPAT_SELECT
#include "slurm_compat.h"

#include "plugins/common/entry_guard.hpp"
#include "plugins/select_flex/cons_tres.hpp"
#include "plugins/select_flex/lending_service.hpp"
#include "plugins/select_flex/settings.hpp"
#include "plugins/select_flex/unit_masks.hpp"
#include "plugins/select_flex/will_run.hpp"

#include "core/util/log.hpp"

#include <cstdio>
#include <ctime>
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
using namespace flexslurm::select_flex;

bool is_selected_plugin()
{
	return running_in_slurmctld() && !xstrcmp(slurm_conf.select_type, plugin_type);
}

// A guard's entry name about one job, e.g. "job_test JobId=12", built
// without allocating (before the guard runs).
class JobEntry
{
public:
	JobEntry(const char *before, const job_record_t *job, const char *after) noexcept
	{
		std::snprintf(text_, sizeof(text_), "%s%sJobId=%u%s", before, *before ? " " : "",
		              compat::job_id_of(job), after);
	}
	const char *c_str() const noexcept { return text_; }

private:
	char text_[128];
};

} // namespace

extern "C" {

int init(void)
{
	compat::use_slurm_log(plugin_type);
	return plugin::guarded(
	        "init",
	        [] {
		        if (!is_selected_plugin())
			        return SLURM_SUCCESS;
		        load_settings_at_start();
		        start_lending_service(settings());
		        return SLURM_SUCCESS;
	        },
	        SLURM_ERROR);
}

compat::fini_result fini(void)
{
	plugin::guarded_void("fini", [] {
		stop_lending_service();
		unload_delegate();
	});
	FLEXSLURM_FINI_RETURN;
}

int select_p_job_test(job_record_t *job_ptr, bitstr_t *bitmap, uint32_t min_nodes, uint32_t max_nodes,
                      uint32_t req_nodes, uint16_t mode, FLEXSLURM_JOB_TEST_TAIL_PARAMS)
{
	const JobEntry entry("job_test", job_ptr, "");
	return plugin::guarded(
	        entry.c_str(),
	        [&] {
		        if (!delegate())
			        return SLURM_ERROR;
		        auto test = [&] {
			        return ops.job_test(job_ptr, bitmap, min_nodes, max_nodes, req_nodes, mode,
			                            FLEXSLURM_JOB_TEST_TAIL_ARGS);
		        };
		        // A later start is planned only in WILL_RUN mode, without
		        // preemption (whose answer is "now") or TEST_NOW_ONLY.
		        const bool plan = mode == SELECT_MODE_WILL_RUN &&
		                          !(preemptee_candidates && list_count(preemptee_candidates)) &&
		                          !(job_ptr->bit_flags & TEST_NOW_ONLY) && bitmap;
		        if (plan)
			        return will_run_planned(job_ptr, bitmap, min_nodes, max_nodes,
			                                FLEXSLURM_WILL_RUN_WINDOW, test);
		        // The main scheduler's test of a job no candidate's devices
		        // can take now is answered without cons_tres's test.
		        const bool answer_unfit = mode == SELECT_MODE_RUN_NOW &&
		                                  !(preemptee_candidates && list_count(preemptee_candidates));
		        return test_with_units_hidden(job_ptr, bitmap, min_nodes, max_nodes, mode, test,
		                                      nullptr, nullptr, 0, answer_unfit);
	        },
	        SLURM_ERROR);
}

/* Everything else is cons_tres's, unchanged, per release. */
#include "select_delegates.inc"

int select_p_job_fini(job_record_t *job_ptr)
{
	const JobEntry lent("lending:", job_ptr, ": cannot record what it lent");
	return plugin::guarded(
	        "job_fini",
	        [&] {
		        plugin::guarded_void(lent.c_str(), [&] { record_lent_totals(job_ptr); });
		        return delegate() ? ops.job_fini(job_ptr) : SLURM_ERROR;
	        },
	        SLURM_ERROR);
}

int select_p_select_nodeinfo_set(job_record_t *job_ptr)
{
	const JobEntry masking("", job_ptr, ": cannot keep its GPUs off sliced devices");
	const JobEntry loan("lending:", job_ptr, ": cannot record its loan");
	return plugin::guarded(
	        "select_nodeinfo_set",
	        [&] {
		        if (!delegate())
			        return SLURM_ERROR;
		        std::vector<HiddenUnits> masks;
		        plugin::guarded_void(masking.c_str(), [&] {
			        if (job_ptr && (IS_JOB_RUNNING(job_ptr) || IS_JOB_SUSPENDED(job_ptr)))
				        masks = mask_for_allocation(job_ptr);
		        });
		        const int rc = ops.nodeinfo_set(job_ptr);
		        masks.clear();
		        if (rc == SLURM_SUCCESS)
			        plugin::guarded_void(loan.c_str(), [&] { record_loan(job_ptr); });
		        return rc;
	        },
	        SLURM_ERROR);
}

int select_p_reconfigure(void)
{
	return plugin::guarded(
	        "reconfigure",
	        [] {
		        // Slurm 22.05 to 23.02 reconfigure in place; 23.11 and later
		        // re-execute slurmctld, which reads everything in init().
		        plugin::guarded_void("reconfigure (the kept reading of running jobs)",
		                             [] { forget_running_ends(); });
		        plugin::guarded_void("reconfigure (keeping the last good settings)", [] {
			        if (is_selected_plugin() && reload_settings())
				        reload_lending_service(settings());
		        });
		        return delegate() ? ops.reconfigure() : SLURM_ERROR;
	        },
	        SLURM_ERROR);
}

} // extern "C"
