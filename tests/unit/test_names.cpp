// SPDX-License-Identifier: GPL-2.0-or-later
// The one enum <-> name mechanism (core/util/names.hpp), and the tables the
// core reads through it: every name parses back to its value.
#include "suites.hpp"

#include "core/model/config.hpp"
#include "core/model/lending.hpp"
#include "core/model/placement.hpp"
#include "core/model/report_intake.hpp"
#include "core/model/spank_config.hpp"
#include "core/model/vendor.hpp"
#include "core/util/names.hpp"

#include <cstdint>
#include <string>

using namespace flexslurm;

namespace
{

enum class Color { Red, Green, Blue };
constexpr NameTable<Color> colors[] = {{Color::Red, "red"}, {Color::Green, "green"}};
constexpr std::pair<Color, uint16_t> codes[] = {{Color::Red, 7}};

} // namespace

START_TEST(names_both_ways)
{
	static_assert(name_of(colors, Color::Green) == "green");
	ck_assert(name_of(colors, Color::Blue) == "unknown");
	ck_assert(name_of(colors, Color::Blue, "?") == "?");
	ck_assert(value_of(colors, "red") == Color::Red);
	ck_assert(!value_of(colors, "Red"));
	ck_assert(!value_of(colors, ""));
	ck_assert_uint_eq(name_of(codes, Color::Red, uint16_t{0}), 7);
	ck_assert_uint_eq(name_of(codes, Color::Green, uint16_t{0}), 0);
	ck_assert(names_allowed(colors) == std::string("red or green"));
	ck_assert(telemetry_sources_allowed() == std::string("auto, nvml, file or none"));
}
END_TEST

START_TEST(core_tables_round_trip)
{
	for (Vendor v : {Vendor::Nvidia, Vendor::Amd, Vendor::Ascend})
		ck_assert(parse_vendor(vendor_name(v)) == v);
	for (Placement p : {Placement::BestFit, Placement::Spread})
		ck_assert(parse_placement(placement_name(p)) == p);
	for (LimitBackend b : {LimitBackend::None, LimitBackend::Preload, LimitBackend::Mps})
		ck_assert(parse_limit_backend(limit_backend_name(b)) == b);
	for (TelemetrySource t :
	     {TelemetrySource::Auto, TelemetrySource::Nvml, TelemetrySource::File, TelemetrySource::None})
		ck_assert(parse_telemetry_source(std::string_view(
		                  "auto\0nvml\0file\0none" + 5 * static_cast<int>(t), 4)) == t);
	for (SliceState s : {SliceState::Free, SliceState::OwnedBusy, SliceState::Idle, SliceState::Lent,
	                     SliceState::Reclaiming})
		ck_assert(state_from_name(state_name(s)) == s);
	ck_assert(drop_reason_name(DropReason::WrongAddress) == "wrong-address");
	ck_assert(vendor_name(Vendor::Ascend) == "ascend");
	ck_assert(!parse_vendor("NVIDIA"));
}
END_TEST

Suite *names_suite()
{
	Suite *s = suite_create("names");
	TCase *tc = tcase_create("names");
	tcase_add_test(tc, names_both_ways);
	tcase_add_test(tc, core_tables_round_trip);
	suite_add_tcase(s, tc);
	return s;
}
