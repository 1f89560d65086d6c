// SPDX-License-Identifier: GPL-2.0-or-later
// The core's text helpers (core/util/text.hpp): number parsing in both
// spellings, splitting, trimming, case, list positions and the escaper that
// every message showing untrusted text goes through.
#include "suites.hpp"

#include "core/util/text.hpp"

#include <cstdint>
#include <string>

using namespace flexslurm;

START_TEST(numbers_any_and_canonical)
{
	int v = 7;
	ck_assert(parse_number("42", v, 0, 100) && v == 42);
	ck_assert(!parse_number("101", v, 0, 100) && v == 42);
	ck_assert(!parse_number("", v, 0, 100));
	ck_assert(!parse_number("4x", v, 0, 100));
	ck_assert(parse_number("007", v, 0, 100) && v == 7);
	ck_assert(!parse_number("007", v, 0, 100, Digits::Canonical));
	ck_assert(parse_number("0", v, 0, 100, Digits::Canonical) && v == 0);
	int64_t s = 0;
	ck_assert(parse_number("-5", s, INT64_MIN, INT64_MAX, Digits::Canonical) && s == -5);
	ck_assert(!parse_number("-0", s, INT64_MIN, INT64_MAX, Digits::Canonical));
	ck_assert(!parse_number("-05", s, INT64_MIN, INT64_MAX, Digits::Canonical));
	ck_assert(!parse_number("+5", s, INT64_MIN, INT64_MAX, Digits::Canonical));
	ck_assert(!parse_number("-", s, INT64_MIN, INT64_MAX, Digits::Canonical));
	uint64_t u = 0;
	ck_assert(parse_number("18446744073709551615", u) && u == UINT64_MAX);
	ck_assert(!parse_number("18446744073709551616", u));
	ck_assert(!parse_number("-1", u));
}
END_TEST

START_TEST(split_words_trim_lower)
{
	const auto parts = split("a,,b", ',');
	ck_assert_uint_eq(parts.size(), 3);
	ck_assert(parts[1].empty() && parts[2] == "b");
	ck_assert_uint_eq(split("", ',').size(), 1);
	const auto w = words("  busy\t55 \r");
	ck_assert_uint_eq(w.size(), 2);
	ck_assert(w[0] == "busy" && w[1] == "55");
	ck_assert_uint_eq(words("a\tb", " ").size(), 1); // a state line splits on spaces only
	ck_assert(words("   ").empty());
	ck_assert(trim(" \t x y \r\n") == "x y");
	ck_assert(trim("  ").empty());
	ck_assert(lower("VSlice-A100") == std::string("vslice-a100"));
	ck_assert(iequals("GPU", "gpu") && !iequals("gpu", "gpus"));
}
END_TEST

START_TEST(list_positions_ignore_case_and_blanks)
{
	ck_assert_int_eq(list_position("gpu, VSlice,vborrow", "vslice"), 1);
	ck_assert_int_eq(list_position("gpu,vslice", "vborrow"), -1);
	ck_assert_int_eq(list_position("", "gpu"), -1);
	ck_assert_int_eq(list_position("vslice,vslice", "vslice"), 0);
}
END_TEST

START_TEST(shown_escapes_what_could_forge_a_line)
{
	ck_assert(shown("a\nb\x1b") == std::string("a\\nb\\x1b"));
	ck_assert(shown("caf\xc3\xa9", {.keep_high_bytes = true}) == std::string("caf\xc3\xa9"));
	ck_assert(shown("caf\xc3\xa9") == std::string("caf\\xc3\\xa9"));
	ck_assert(quoted("say \"hi\"\\") == std::string("\"say \\\"hi\\\"\\\\\""));
	ck_assert(quoted(std::string(40, 'x')) == std::string(("\"" + std::string(32, 'x') + "...\"")));
	ck_assert_uint_eq(quoted(std::string(40, 'x'), std::string_view::npos).size(), 42);
	ck_assert(shown("0\n1", {.quote = true, .replacement = '?'}) == std::string("\"0?1\""));
}
END_TEST

Suite *text_suite()
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("text");
	tcase_add_test(tc, numbers_any_and_canonical);
	tcase_add_test(tc, split_words_trim_lower);
	tcase_add_test(tc, list_positions_ignore_case_and_blanks);
	tcase_add_test(tc, shown_escapes_what_could_forge_a_line);
	suite_add_tcase(s, tc);
	return s;
}
