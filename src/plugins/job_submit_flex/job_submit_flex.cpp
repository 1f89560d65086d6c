// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * job_submit/flex: a job that borrows idle slices (--gres=vborrow:N) must be
 * one Slurm can requeue, because requeue is how a lender gets its slice
 * back. Anything else is refused at submission with a message the user can
 * act on; a borrower that left requeue unset gets it turned on. The rules
 * live in the core (src/core/model/borrow_rules.*); this file only translates.
 */
#define FLEXSLURM_COMPAT_JOB_SUBMIT
#include "slurm_compat.h"

#include "plugins/common/entry_guard.hpp"

#include "core/model/borrow_rules.hpp"
#include "core/util/log.hpp"

#include <string>

extern "C" {
extern const char plugin_name[] = "job_submit/flex: borrower checks (flexslurm " FLEXSLURM_VERSION ")";
extern const char plugin_type[] = "job_submit/flex";
extern const uint32_t plugin_version = SLURM_VERSION_NUMBER;
}

namespace
{

using namespace flexslurm;

bool asks_for(const char *tres, const char *name)
{
	return tres && tres_asks_for(tres, name);
}

// Any of the job's GRES requests (per job, node, socket, task).
bool request_asks_for(const char *per_job, const char *per_node, const char *per_socket, const char *per_task,
                      const char *name)
{
	return asks_for(per_job, name) || asks_for(per_node, name) || asks_for(per_socket, name) ||
	       asks_for(per_task, name);
}

bool desc_asks_for(const job_desc_msg_t *d, const char *name)
{
	return request_asks_for(d->tres_per_job, d->tres_per_node, d->tres_per_socket, d->tres_per_task,
	                        name);
}

bool job_asks_for(const job_record_t *j, const char *name)
{
	return request_asks_for(j->tres_per_job, j->tres_per_node, j->tres_per_socket, j->tres_per_task,
	                        name);
}

int refuse(const std::string &why, int rc, char **err_msg)
{
	info("job_submit/flex: refused: %s", why.c_str());
	if (err_msg)
		*err_msg = xstrdup(why.c_str());
	return rc;
}

int check(job_desc_msg_t *d, const job_record_t *existing, char **err_msg)
{
	const bool borrows = desc_asks_for(d, "vborrow") || (existing && job_asks_for(existing, "vborrow"));
	if (!borrows)
		return SLURM_SUCCESS;
	BorrowRequest r;
	r.batch = existing ? existing->batch_flag != 0 : d->script != nullptr;
	if (d->requeue != NO_VAL16)
		r.requeue = d->requeue != 0;
	else if (existing && existing->details)
		r.requeue = existing->details->requeue != 0;
	r.also_slices_or_gpus =
	        desc_asks_for(d, "vslice") || desc_asks_for(d, "gpu") ||
	        (existing && (job_asks_for(existing, "vslice") || job_asks_for(existing, "gpu")));
	const BorrowVerdict v = judge_borrower(r);
	if (v.refusal)
		return refuse(*v.refusal, r.batch ? ESLURM_DISABLED : ESLURM_BATCH_ONLY, err_msg);
	if (v.force_requeue)
		d->requeue = 1;
	return SLURM_SUCCESS;
}

// The entry's whole body, through the entry guard. A failure refuses the
// job and tells the user so (the log says why).
template <class F>
int guarded_check(const char *entry, F &&body, char **err_msg) noexcept
{
	bool answered = false;
	const int rc = plugin::guarded(
	        entry,
	        [&] {
		        const int r = body();
		        answered = true;
		        return r;
	        },
	        SLURM_ERROR);
	if (!answered && err_msg) {
		xfree(*err_msg);
		*err_msg = xstrdup("job_submit/flex: internal error, please report it");
	}
	return rc;
}

} // namespace

extern "C" {

int init(void)
{
	compat::use_slurm_log(plugin_type);
	return plugin::guarded(
	        "init", [] { return SLURM_SUCCESS; }, SLURM_ERROR);
}

flexslurm::compat::fini_result fini(void)
{
	plugin::guarded_void("fini", [] {});
	FLEXSLURM_FINI_RETURN;
}

int job_submit(job_desc_msg_t *job_desc, uint32_t, char **err_msg)
{
	return guarded_check(
	        "job_submit", [&] { return check(job_desc, nullptr, err_msg); }, err_msg);
}

int job_modify(FLEXSLURM_JOB_MODIFY_PARAMS)
{
	(void)submit_uid;
	char **msg = FLEXSLURM_JOB_MODIFY_ERR_MSG;
	return guarded_check(
	        "job_modify", [&] { return check(job_desc, job_ptr, msg); }, msg);
}

} // extern "C"
