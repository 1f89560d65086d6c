// SPDX-License-Identifier: GPL-2.0-or-later
// The one log throttle (core/util/throttle.hpp): per key, a burst a window,
// then one line a window with the count; quiet keys are forgotten; past the
// key cap, new keys share one budget. And ProblemLog's once-per-problem.
#include "log_capture.hpp"
#include "suites.hpp"

#include "core/util/throttle.hpp"

#include <string>
#include <vector>

using namespace flexslurm;

namespace
{

Instant at(int64_t s)
{
	return Instant(Seconds(s));
}

} // namespace

START_TEST(burst_then_one_line_a_window_with_the_count)
{
	LogThrottle t(Seconds(60), 3, 100);
	for (int i = 0; i < 3; ++i) {
		const auto pass = t.admit("peer", at(1000 + i));
		ck_assert(pass && pass->held == 0 && pass->key == "peer");
	}
	for (int i = 0; i < 20; ++i)
		ck_assert(!t.admit("peer", at(1010 + i)));
	ck_assert(t.admit("other", at(1010))); // keys are separate
	const auto later = t.admit("peer", at(1062));
	ck_assert(later && later->held == 20 && later->since == Seconds(60));
	ck_assert(!t.admit("peer", at(1063))); // still throttled: 20 >= the burst
	const auto calm = t.admit("peer", at(1130));
	ck_assert(calm && calm->held == 1);
	ck_assert(t.admit("peer", at(1131))); // below the burst: line by line again
}
END_TEST

START_TEST(expire_reports_held_lines_and_forgets)
{
	LogThrottle t(Seconds(60), 1, 100);
	ck_assert(t.admit("a", at(0)));
	ck_assert(!t.admit("a", at(5)));
	ck_assert(!t.admit("a", at(6)));
	ck_assert(t.admit("b", at(30)));
	std::vector<std::pair<std::string, uint64_t>> reported;
	t.expire(at(59), [&](const std::string &k, uint64_t n) { reported.emplace_back(k, n); });
	ck_assert(reported.empty() && t.size() == 2);
	t.expire(at(60), [&](const std::string &k, uint64_t n) { reported.emplace_back(k, n); });
	ck_assert_uint_eq(reported.size(), 1);
	ck_assert(reported[0].first == "a" && reported[0].second == 2);
	ck_assert_uint_eq(t.size(), 1);
	const auto again = t.admit("a", at(61));
	ck_assert(again && again->held == 0);
}
END_TEST

START_TEST(past_the_cap_new_keys_share_one_budget)
{
	LogThrottle t(Seconds(60), 1, 2, "others");
	ck_assert(t.admit("a", at(0)));
	ck_assert(t.admit("b", at(0)));
	const auto c = t.admit("c", at(10));
	ck_assert(c && c->key == "others");
	ck_assert(!t.admit("d", at(11)));     // the shared budget is spent
	const auto e = t.admit("e", at(200)); // a and b are two windows quiet: forgotten
	ck_assert(e && e->key == "e");
}
END_TEST

START_TEST(problem_log_errors_once_per_problem)
{
	record_log();
	ProblemLog p;
	p.report("f", "f: broken");
	p.report("f", "f: broken");
	p.report("f", "f: worse");
	p.clear("f");
	p.report("f", "f: worse");
	set_log_sink(nullptr);
	const auto lines = logged_lines();
	ck_assert_uint_eq(lines.size(), 4);
	ck_assert(lines[0].level == LogLevel::Error && lines[1].level == LogLevel::Debug);
	ck_assert(lines[2].level == LogLevel::Error && lines[2].message == "f: worse");
	ck_assert(lines[3].level == LogLevel::Error);
}
END_TEST

Suite *throttle_suite()
{
	Suite *s = suite_create("throttle");
	TCase *tc = tcase_create("throttle");
	tcase_add_test(tc, burst_then_one_line_a_window_with_the_count);
	tcase_add_test(tc, expire_reports_held_lines_and_forgets);
	tcase_add_test(tc, past_the_cap_new_keys_share_one_budget);
	tcase_add_test(tc, problem_log_errors_once_per_problem);
	suite_add_tcase(s, tc);
	return s;
}
