// SPDX-License-Identifier: GPL-2.0-or-later
// The LoanBook's snapshot and state file (loan_book_state.cpp): a snapshot
// shares the rows of the nodes that did not change since the last one and
// rebuilds the others; the state file's fields are read in their order,
// each checked.
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

// Two nodes of 4 slices on 2 devices, slice 0 of each owned by a job.
std::vector<NodeBooks> two_nodes()
{
	std::vector<NodeBooks> out;
	for (const char *name : {"n1", "n2"}) {
		NodeBooks nb;
		nb.node = name;
		nb.device_of_slice = {0, 0, 1, 1};
		nb.owner(0) = SliceOwner{name[1] == '1' ? 101u : 102u, "gpu", std::nullopt};
		out.push_back(nb);
	}
	return out;
}

Report idle_report(const std::string &node)
{
	Report r;
	r.node = node;
	for (int d = 0; d < 2; ++d) {
		DeviceReport dr;
		dr.device = d;
		dr.busy_percent = 0;
		dr.lendable_memory_mib = 1024;
		r.devices.push_back(dr);
	}
	return r;
}

const BookSnapshot::NodeRows *rows_of(const BookSnapshot &s, const std::string &node)
{
	for (const auto &n : s.nodes)
		if (n->node == node)
			return n.get();
	return nullptr;
}

} // namespace

START_TEST(snapshot_shares_the_rows_of_unchanged_nodes)
{
	LoanBook book(quick_policy(), Seconds(30), Seconds(5));
	const auto records = two_nodes();
	book.sync(at(1), records);
	book.tick(at(1));
	const BookSnapshot first = book.snapshot(at(1));
	ck_assert_uint_eq(first.nodes.size(), 2);

	// Nothing changed: every node's rows are shared, the content the same.
	book.sync(at(2), records);
	book.tick(at(2));
	const BookSnapshot second = book.snapshot(at(2));
	ck_assert_ptr_eq(rows_of(first, "n1"), rows_of(second, "n1"));
	ck_assert_ptr_eq(rows_of(first, "n2"), rows_of(second, "n2"));
	ck_assert(second.same_content(first));

	// n1's owner reports idle: only n1's rows are taken again.
	book.report(at(3), idle_report("n1"));
	const BookSnapshot third = book.snapshot(at(3));
	ck_assert_ptr_ne(rows_of(second, "n1"), rows_of(third, "n1"));
	ck_assert_ptr_eq(rows_of(second, "n2"), rows_of(third, "n2"));
	ck_assert(!third.same_content(second));
	ck_assert_str(third.state_text(), book.fresh_snapshot(at(3)).state_text());
	ck_assert(rows_of(third, "n1")->rows.at(0).m.idle_since == at(3));

	// n1 lends slice 0 once idle for the window; n2 still shares.
	book.report(at(13), idle_report("n1"));
	book.tick(at(13));
	ck_assert(book.lendable_units("n1", at(13)) == std::vector<int>{0});
	book.lent(at(13), "n1", 0, 500);
	const BookSnapshot fourth = book.snapshot(at(13));
	ck_assert_int_eq(static_cast<int>(rows_of(fourth, "n1")->rows.at(0).m.state),
	                 static_cast<int>(SliceState::Lent));
	ck_assert_ptr_eq(rows_of(third, "n2"), rows_of(fourth, "n2"));
	ck_assert_str(fourth.state_text(), book.fresh_snapshot(at(13)).state_text());

	// A node gone from the records leaves the snapshot.
	book.sync(at(14), {records[0]});
	ck_assert_ptr_null(rows_of(book.snapshot(at(14)), "n2"));
}
END_TEST

START_TEST(state_fields_are_read_in_their_order)
{
	const std::string head = "flexslurm-lending 1\nsaved 100\n";
	const std::string slice =
	        "slice n1 0 0 state=lent owner=7 borrower=9 lends=1 gone=0 overdue=0 streak=1 end=900 idle=50 lent=60 cool=- reason=- deadline=-\n";
	const std::string reclaim =
	        "reclaim 9 reason=admin t0=90 deadline=110 signalled=1 requeued=- nodes=n1,n2 run=2 again=1\n";
	LoanBook book(quick_policy(), Seconds(30), Seconds(5));
	std::string why;
	ck_assert_msg(book.restore(head + slice + reclaim + "end\n", why), "%s", why.c_str());
	ck_assert_str(book.serialize(at(100)), head + slice + reclaim + "end\n");
	ck_assert_uint_eq(book.reclaim_borrowers().size(), 1);

	const auto refused = [&](const std::string &text, const std::string &expected) {
		LoanBook b(quick_policy(), Seconds(30), Seconds(5));
		std::string reason;
		ck_assert_msg(!b.restore(text, reason), "accepted: %s", text.c_str());
		ck_assert_msg(reason.find(expected) != std::string::npos, "%s: %s", expected.c_str(),
		              reason.c_str());
	};
	auto swapped = slice;
	swapped.replace(swapped.find("owner=7 borrower=9"), 18, "borrower=9 owner=7");
	refused(head + swapped + "end\n", "line 3: malformed slice");
	auto no_lent = slice;
	no_lent.replace(no_lent.find("lent=60"), 7, "lent=-");
	refused(head + no_lent + "end\n", "malformed slice");
	auto streak = slice;
	streak.replace(streak.find("streak=1"), 8, "streak=1000001");
	refused(head + streak + "end\n", "malformed slice");
	auto backwards = reclaim;
	backwards.replace(backwards.find("deadline=110"), 12, "deadline=80");
	refused(head + backwards + "end\n", "line 3: malformed reclaim");
	auto again = reclaim;
	again.replace(again.find("again=1"), 7, "again=4");
	refused(head + again + "end\n", "malformed reclaim");
	auto reason = reclaim;
	reason.replace(reason.find("reason=admin"), 12, "reason=-");
	refused(head + reason + "end\n", "malformed reclaim");
}
END_TEST

Suite *loan_book_state_suite()
{
	Suite *s = suite_create("loan_book_state");
	TCase *tc = tcase_create("loan_book_state");
	tcase_add_test(tc, snapshot_shares_the_rows_of_unchanged_nodes);
	tcase_add_test(tc, state_fields_are_read_in_their_order);
	suite_add_tcase(s, tc);
	return s;
}
