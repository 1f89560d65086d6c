// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/borrow_rules.hpp"

#include "core/util/text.hpp"

namespace flexslurm
{

bool tres_asks_for(std::string_view tres, std::string_view gres_name)
{
	for (std::string_view item : split(tres, ',')) {
		for (std::string_view prefix : {"gres:", "gres/"})
			if (item.substr(0, prefix.size()) == prefix)
				item.remove_prefix(prefix.size());
		if (!item.empty() && item.substr(0, item.find(':')) == gres_name)
			return true;
	}
	return false;
}

BorrowVerdict judge_borrower(const BorrowRequest &r)
{
	BorrowVerdict v;
	if (!r.batch)
		v.refusal =
		        "vborrow: a borrower must be a batch job (sbatch): borrowed slices are taken back by requeueing the job, and Slurm requeues only batch jobs";
	else if (r.requeue && !*r.requeue)
		v.refusal =
		        "vborrow: a borrower must be requeueable: drop --no-requeue (borrowed slices are taken back by requeueing the job; its work resumes when it restarts)";
	else if (r.also_slices_or_gpus)
		v.refusal =
		        "vborrow: a borrower asks for vborrow only, not also for vslice or gpu: submit the borrowing part as a job of its own";
	else
		v.force_requeue = !r.requeue.has_value();
	return v;
}

} // namespace flexslurm
