// SPDX-License-Identifier: GPL-2.0-or-later
// gres/vborrow takes gres/vslice's layout from the file vslice saved at
// this slurmd start: the GresTypes order that guarantees it, and the refusal
// of a layout left from an earlier start.
#include "suites.hpp"

#include "core/io/layout_handoff.hpp"
#include "core/io/inventory.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <string>

using namespace flexslurm;

namespace
{

// Every device present: minor = position, as a fake /dev would give.
std::optional<DeviceId> fake_probe(const std::string &path, std::string &)
{
	return DeviceId{195, static_cast<uint32_t>(path.back() - '0')};
}

SliceLayout two_devices()
{
	auto inv = Inventory::from_xml_file(std::string(TOPOLOGY_DIR) + "/cluster-nvidia-2gpu.xml");
	ck_assert_msg(static_cast<bool>(inv), "%s", inv.error().c_str());
	return SliceLayout::build(*inv, Config::defaults(), "/dev", fake_probe);
}

std::string temp_dir()
{
	char dir[] = "/tmp/flexslurm-handoff-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	return dir;
}

timespec seconds_from_now(time_t s)
{
	timespec t = file_clock_now();
	t.tv_sec += s;
	return t;
}

bool contains(const std::string &text, const std::string &part)
{
	return text.find(part) != std::string::npos;
}

} // namespace

START_TEST(vslice_before_vborrow_is_the_only_order)
{
	ck_assert_str(borrow_order_problem("gpu,vslice,vborrow"), "");
	ck_assert_str(borrow_order_problem("vslice,gpu,vborrow"), "");
	ck_assert_str(borrow_order_problem("gpu,vslice"), ""); // no vborrow: nothing to check
	ck_assert_str(borrow_order_problem(""), "");
	ck_assert_str(borrow_order_problem("gpu,VSlice,vborrow"), "");

	const std::string before = borrow_order_problem("gpu,vborrow,vslice");
	ck_assert_msg(contains(before, "GresTypes=gpu,vborrow,vslice names vborrow before vslice"), "%s",
	              before.c_str());
	ck_assert_msg(contains(before, "(GresTypes=...,vslice,vborrow)"), "%s", before.c_str());
	const std::string without = borrow_order_problem("gpu,vborrow");
	ck_assert_msg(contains(without, "GresTypes=gpu,vborrow names vborrow without vslice"), "%s",
	              without.c_str());
}
END_TEST

START_TEST(a_layout_saved_at_this_start_is_read_back)
{
	if (geteuid() != 0)
		return; // SliceLayout::load takes only root's files
	const std::string dir = temp_dir();
	const std::string path = dir + "/layout.n1";
	const timespec loaded = file_clock_now();
	const SliceLayout saved = two_devices();
	ck_assert(static_cast<bool>(saved.save(path)));
	auto back = load_layout_saved_since(path, loaded);
	ck_assert_msg(static_cast<bool>(back), "%s", back.error().c_str());
	ck_assert_str(back->serialize(), saved.serialize());
	ck_assert_int_eq(back->total_slices(), 8);
	unlink(path.c_str());
	rmdir(dir.c_str());
}
END_TEST

START_TEST(a_layout_left_from_an_earlier_start_is_refused)
{
	if (geteuid() != 0)
		return;
	const std::string dir = temp_dir();
	const std::string path = dir + "/layout.n1";
	ck_assert(static_cast<bool>(two_devices().save(path)));
	// gres/vborrow loaded after the file was written: vslice did not save
	// it in this start (it failed, or comes after vborrow).
	auto stale = load_layout_saved_since(path, seconds_from_now(2));
	ck_assert(!stale);
	ck_assert_str(stale.error(), path + ": left from an earlier start (not saved at this one)");
	unlink(path.c_str());

	auto missing = load_layout_saved_since(path, file_clock_now());
	ck_assert(!missing);
	ck_assert_str(missing.error(), path + ": No such file or directory");
	rmdir(dir.c_str());
}
END_TEST

START_TEST(the_layout_file_is_validated_as_any_input)
{
	if (geteuid() != 0)
		return;
	const std::string dir = temp_dir();
	const std::string path = dir + "/layout.n1";
	const timespec loaded = file_clock_now();
	ck_assert(static_cast<bool>(two_devices().save(path)));
	ck_assert_int_eq(chmod(path.c_str(), 0666), 0); // others may write it
	auto writable = load_layout_saved_since(path, loaded);
	ck_assert(!writable);
	ck_assert_msg(contains(writable.error(), "not a root-owned layout file that only root may write"),
	              "%s", writable.error().c_str());
	unlink(path.c_str());
	rmdir(dir.c_str());
}
END_TEST

Suite *layout_handoff_suite()
{
	Suite *s = suite_create("layout_handoff");
	TCase *tc = tcase_create("handoff");
	tcase_add_test(tc, vslice_before_vborrow_is_the_only_order);
	tcase_add_test(tc, a_layout_saved_at_this_start_is_read_back);
	tcase_add_test(tc, a_layout_left_from_an_earlier_start_is_refused);
	tcase_add_test(tc, the_layout_file_is_validated_as_any_input);
	suite_add_tcase(s, tc);
	return s;
}
