// The LoanBook's sync with the controller's records filled in place
// (NodeBooks::begin_fill ... end_fill): a node's records keep their
// generation while they do not change, and the book skips such a node
// unless one of its slices changed since it last read the records through.
#include "suites.hpp"

#include "core/model/loan_book.hpp"

#include <string>
#include <vector>

using namespace flexslurm;

namespace
{

Instant at(long s)
{
	return Instant(Seconds(s));
}

LendingPolicy quick_policy()
{
	LendingPolicy p;
	p.idle_window = Seconds(10);
	p.min_loan = Seconds(5);
	p.grace = Seconds(20);
	return p;
}

// One node of 4 slices on 2 devices: slice 0 owned by `owner`, borrow unit
// 0 held by `borrower` (0: none).
void fill(NodeBooks &nb, const std::string &name, uint32_t owner, uint32_t borrower, uint64_t &generations)
{
	nb.begin_fill(name, true, {0, 0, 1, 1});
	if (owner)
		nb.set_owner(0, owner, "gpu", std::nullopt);
	if (borrower)
		nb.set_borrower(0, BorrowHolding{borrower, false, 0});
	nb.end_fill(generations);
}

Report report(const std::string &node, double busy)
{
	Report r;
	r.node = node;
	for (int d = 0; d < 2; ++d) {
		DeviceReport dr;
		dr.device = d;
		dr.busy_percent = busy;
		dr.lendable_memory_mib = 1024;
		r.devices.push_back(dr);
	}
	return r;
}

} // namespace

START_TEST(a_fill_numbers_only_changes)
{
	uint64_t generations = 0;
	NodeBooks nb;
	fill(nb, "n1", 101, 200, generations);
	ck_assert_uint_eq(nb.generation, 1);
	fill(nb, "n1", 101, 200, generations); // the same records
	ck_assert_uint_eq(nb.generation, 1);
	fill(nb, "n1", 101, 0, generations); // the borrower left
	ck_assert_uint_eq(nb.generation, 2);
	ck_assert_uint_eq(nb.borrowers.at(0).job, 0);
	fill(nb, "n1", 101, 0, generations);
	ck_assert_uint_eq(nb.generation, 2);
	fill(nb, "n2", 101, 0, generations); // another node in this place
	ck_assert_uint_eq(nb.generation, 3);
	nb.begin_fill("n2", true, {0, 0, 1, 1});
	nb.set_owner(0, 101, "debug", std::nullopt); // another partition
	nb.end_fill(generations);
	ck_assert_uint_eq(nb.generation, 4);
	nb.begin_fill("n2", true, {0, 1, 1, 1}); // the devices changed
	nb.set_owner(0, 101, "debug", std::nullopt);
	nb.end_fill(generations);
	ck_assert_uint_eq(nb.generation, 5);
	ck_assert_int_eq(nb.device_of_slice.at(1), 1);
}
END_TEST

START_TEST(unchanged_records_are_skipped_until_a_slice_changes)
{
	LoanBook book(quick_policy(), Seconds(30), Seconds(5));
	uint64_t generations = 0;
	std::vector<NodeBooks> view(1);
	fill(view[0], "n1", 101, 0, generations);
	for (long t = 1; t <= 3; ++t) { // busy: the streak stops at busy_samples
		book.sync(at(t), view);
		book.report(at(t), report("n1", 100));
		book.tick(at(t));
	}
	ck_assert(book.status(at(3)).find("JobId=101") != std::string::npos);
	// The book trusts the generation: records that changed without a new
	// one (which a controller never hands over) show it skips the node.
	view[0].owners.at(0) = SliceOwner{};
	book.sync(at(4), view);
	ck_assert(book.status(at(4)).find("JobId=101") != std::string::npos);
	// A slice changed (the owner went idle): the node is read through.
	book.report(at(4), report("n1", 0));
	book.sync(at(5), view);
	ck_assert(book.status(at(5)).find("JobId=101") == std::string::npos);
}
END_TEST

START_TEST(a_loan_the_records_never_show_ends_though_they_did_not_change)
{
	LoanBook book(quick_policy(), Seconds(30), Seconds(5));
	uint64_t generations = 0;
	std::vector<NodeBooks> view(1);
	fill(view[0], "n1", 101, 0, generations);
	book.sync(at(1), view);
	book.tick(at(1));
	book.sync(at(2), view);
	// Slurm started a borrower that never shows in the records (it failed
	// to start): the same records, the same generation, and still the
	// book must drop the loan.
	book.lent(at(2), "n1", 0, 300);
	ck_assert(book.status(at(2)).find("JobId=101 JobId=300") != std::string::npos);
	book.sync(at(3), view);
	ck_assert_uint_eq(view[0].generation, 1);
	ck_assert(book.status(at(3)).find("JobId=101 JobId=300") == std::string::npos);
}
END_TEST

START_TEST(a_reclaim_takes_in_the_nodes_whose_records_did_not_change)
{
	LoanBook book(quick_policy(), Seconds(30), Seconds(5));
	uint64_t generations = 0;
	std::vector<NodeBooks> view(2);
	fill(view[0], "n1", 101, 300, generations);
	fill(view[1], "n2", 102, 300, generations);
	for (long t = 1; t <= 3; ++t) {
		book.sync(at(t), view);
		book.report(at(t), report("n1", 0));
		book.report(at(t), report("n2", 0));
		book.tick(at(t));
	}
	// n1's lender wakes up: the reclaim starts from n1; n2's records and
	// slices stay as they were, and its processes must stop too.
	book.report(at(4), report("n1", 100));
	book.report(at(5), report("n1", 100));
	const TickActions actions = book.tick(at(5));
	ck_assert_uint_eq(actions.signal.size(), 1);
	book.sync(at(6), view);
	for (const char *node : {"n1", "n2"}) {
		const Orders o = book.orders_for(node, 1, at(6));
		ck_assert_msg(o.stops.size() == 1 && o.stops[0].job == 300, "%s: no stop order", node);
	}
}
END_TEST

Suite *loan_book_sync_suite()
{
	Suite *s = suite_create("loan_book_sync");
	TCase *tc = tcase_create("loan_book_sync");
	tcase_add_test(tc, a_fill_numbers_only_changes);
	tcase_add_test(tc, unchanged_records_are_skipped_until_a_slice_changes);
	tcase_add_test(tc, a_loan_the_records_never_show_ends_though_they_did_not_change);
	tcase_add_test(tc, a_reclaim_takes_in_the_nodes_whose_records_did_not_change);
	suite_add_tcase(s, tc);
	return s;
}
