// SPDX-License-Identifier: GPL-2.0-or-later
// Who may borrow (core/model/borrow_rules), as job_submit/flex asks at every
// submission and modification: which GRES a Slurm TRES string asks for, and
// the verdict on a borrower (refused with a message, or requeue turned on).
#include "suites.hpp"

#include "core/model/borrow_rules.hpp"

#include <string>

using namespace flexslurm;

namespace
{

bool has(const std::string &text, const char *part)
{
	return text.find(part) != std::string::npos;
}

BorrowRequest request(bool batch, std::optional<bool> requeue, bool also_slices_or_gpus)
{
	BorrowRequest r;
	r.batch = batch;
	r.requeue = requeue;
	r.also_slices_or_gpus = also_slices_or_gpus;
	return r;
}

} // namespace

// Slurm 22.05 writes "gres:NAME[:TYPE]:COUNT", 23.02 and later
// "gres/NAME[:TYPE]:COUNT"; a request may list several, comma-separated.
START_TEST(tres_names_in_every_release_form)
{
	ck_assert(tres_asks_for("gres:vborrow:2", "vborrow"));
	ck_assert(tres_asks_for("gres/vborrow:2", "vborrow"));
	ck_assert(tres_asks_for("gres/vborrow", "vborrow"));
	ck_assert(tres_asks_for("vborrow:1", "vborrow"));
	ck_assert(tres_asks_for("gres/gpu:a100:1,gres/vslice:2", "vslice"));
	ck_assert(tres_asks_for("gres/gpu:a100:1,gres/vslice:2", "gpu"));
	ck_assert(tres_asks_for("gres:vslice:t4:2", "vslice"));
	ck_assert(tres_asks_for("cpu=4,gres/vborrow:1", "vborrow"));
}
END_TEST

// Only the GRES name counts, whole: a type, a count or a longer name with
// the same start is not the name asked for.
START_TEST(tres_names_match_whole)
{
	ck_assert(!tres_asks_for("gres/vslice:2", "vborrow"));
	ck_assert(!tres_asks_for("gres/gpu:vborrow:1", "vborrow")); // a gpu of type "vborrow"
	ck_assert(!tres_asks_for("gres/vborrowx:1", "vborrow"));
	ck_assert(!tres_asks_for("gres/vbor:1", "vborrow"));
	ck_assert(!tres_asks_for("gres/gpus:1", "gpu"));
	ck_assert(!tres_asks_for("cpu=4", "gpu"));
	ck_assert(!tres_asks_for("", "vborrow"));
	ck_assert(!tres_asks_for(",,", "vborrow"));
}
END_TEST

// A batch job that allows requeue and asks only for vborrow is let through
// unchanged.
START_TEST(requeueable_batch_borrower_passes)
{
	const BorrowVerdict v = judge_borrower(request(true, true, false));
	ck_assert(!v.refusal);
	ck_assert(!v.force_requeue);
}
END_TEST

// Requeue left to the cluster's default (JobRequeue may be 0): turned on,
// since the borrower is taken back by requeue.
START_TEST(unset_requeue_is_turned_on)
{
	const BorrowVerdict v = judge_borrower(request(true, std::nullopt, false));
	ck_assert(!v.refusal);
	ck_assert(v.force_requeue);
}
END_TEST

// srun/salloc: Slurm requeues only batch jobs. The message says what to
// use instead, whatever else the job asks.
START_TEST(non_batch_borrower_is_refused)
{
	for (std::optional<bool> requeue :
	     {std::optional<bool>(), std::optional<bool>(true), std::optional<bool>(false)}) {
		const BorrowVerdict v = judge_borrower(request(false, requeue, true));
		ck_assert(v.refusal.has_value());
		ck_assert(has(*v.refusal, "vborrow: a borrower must be a batch job (sbatch)"));
		ck_assert(!v.force_requeue);
	}
}
END_TEST

// --no-requeue: refused with the option to drop, before the mixed request.
START_TEST(no_requeue_borrower_is_refused)
{
	for (bool mixed : {false, true}) {
		const BorrowVerdict v = judge_borrower(request(true, false, mixed));
		ck_assert(v.refusal.has_value());
		ck_assert(has(*v.refusal, "vborrow: a borrower must be requeueable: drop --no-requeue"));
		ck_assert(!v.force_requeue);
	}
}
END_TEST

// vborrow with vslice or gpu in one job: requeueing it would take back what
// it holds of its own too.
START_TEST(borrower_asking_for_more_is_refused)
{
	for (std::optional<bool> requeue : {std::optional<bool>(), std::optional<bool>(true)}) {
		const BorrowVerdict v = judge_borrower(request(true, requeue, true));
		ck_assert(v.refusal.has_value());
		ck_assert(has(*v.refusal,
		              "vborrow: a borrower asks for vborrow only, not also for vslice or gpu"));
		ck_assert(has(*v.refusal, "submit the borrowing part as a job of its own"));
		ck_assert(!v.force_requeue);
	}
}
END_TEST

// Each refusal is one line, so that Slurm shows it whole to the user.
START_TEST(refusals_are_one_line)
{
	for (const BorrowRequest &r :
	     {request(false, std::nullopt, false), request(true, false, false), request(true, true, true)}) {
		const BorrowVerdict v = judge_borrower(r);
		ck_assert(v.refusal.has_value());
		ck_assert(!has(*v.refusal, "\n"));
	}
}
END_TEST

Suite *borrow_rules_suite()
{
	Suite *s = suite_create("borrow_rules");
	TCase *tc = tcase_create("borrow_rules");
	tcase_add_test(tc, tres_names_in_every_release_form);
	tcase_add_test(tc, tres_names_match_whole);
	tcase_add_test(tc, requeueable_batch_borrower_passes);
	tcase_add_test(tc, unset_requeue_is_turned_on);
	tcase_add_test(tc, non_batch_borrower_is_refused);
	tcase_add_test(tc, no_requeue_borrower_is_refused);
	tcase_add_test(tc, borrower_asking_for_more_is_refused);
	tcase_add_test(tc, refusals_are_one_line);
	suite_add_tcase(s, tc);
	return s;
}
