// SPDX-License-Identifier: GPL-2.0-or-later
// The one bounded file reader (core/io/file_io.hpp): read_file's options and
// its exact error kinds, FileLines, and the texts its callers log.
#include "suites.hpp"
#include "telemetry_fakes.hpp"

#include "core/io/file_io.hpp"
#include "core/io/job_state.hpp"
#include "core/model/config.hpp"
#include "core/model/slice_layout.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

using namespace flexslurm;

namespace
{

const ReadOptions plain{100, false, false};
const ReadOptions root_only{100, false, true};

} // namespace

START_TEST(reads_a_whole_file)
{
	TempDir dir;
	write_file(dir.path() + "/f", "hello\n");
	chmod((dir.path() + "/f").c_str(), 0644);
	const FileRead read = read_file(dir.path() + "/f", root_only);
	ck_assert_msg(static_cast<bool>(read), "%s", read.why().c_str());
	ck_assert_str(read.text, "hello\n");
	ck_assert_str(read.why(), "");
	write_file(dir.path() + "/empty", "");
	ck_assert(read_file(dir.path() + "/empty", plain) &&
	          read_file(dir.path() + "/empty", plain).text.empty());
	// exactly at the limit is still good
	write_file(dir.path() + "/full", std::string(100, 'x'));
	ck_assert_uint_eq(read_file(dir.path() + "/full", plain).text.size(), 100);
}
END_TEST

START_TEST(missing_is_its_own_result)
{
	TempDir dir;
	const FileRead read = read_file(dir.path() + "/none", plain);
	ck_assert(!read);
	ck_assert_int_eq(static_cast<int>(read.error), static_cast<int>(ReadError::missing));
	ck_assert_int_eq(read.error_number, ENOENT);
	ck_assert_str(read.why(), "No such file or directory");
	// a missing directory on the way is missing too
	ck_assert(read_file(dir.path() + "/no/such", plain).error == ReadError::missing);
	// a path through a file is not: it cannot be opened
	write_file(dir.path() + "/f", "x");
	const FileRead through = read_file(dir.path() + "/f/x", plain);
	ck_assert(through.error == ReadError::cannot_open);
	ck_assert_int_eq(through.error_number, ENOTDIR);
}
END_TEST

START_TEST(too_big_is_refused)
{
	TempDir dir;
	write_file(dir.path() + "/big", std::string(101, 'x'));
	const FileRead read = read_file(dir.path() + "/big", plain);
	ck_assert(read.error == ReadError::too_large);
	ck_assert(read.text.empty());
	ck_assert_str(read.why(), "larger than 100 bytes");
	ck_assert_str(read_file_bounded(dir.path() + "/big", 100).error(), "larger than 100 bytes");
	// /proc files say size 0: the bound holds while reading
	const FileRead proc = read_file("/proc/self/status", {16, true, false});
	ck_assert(proc.error == ReadError::too_large);
	ck_assert(read_file("/proc/self/status", {1 << 20, true, false}));
}
END_TEST

START_TEST(read_nonempty_is_text_or_nothing)
{
	TempDir dir;
	write_file(dir.path() + "/f", "0x1002\n");
	write_file(dir.path() + "/empty", "");
	write_file(dir.path() + "/big", std::string(101, 'x'));
	ck_assert(symlink((dir.path() + "/f").c_str(), (dir.path() + "/link").c_str()) == 0);
	ck_assert_str(read_nonempty(dir.path() + "/f", 100).value_or("?"), "0x1002\n");
	ck_assert(!read_nonempty(dir.path() + "/empty", 100));
	ck_assert(!read_nonempty(dir.path() + "/big", 100));
	ck_assert(!read_nonempty(dir.path() + "/none", 100));
	ck_assert(!read_nonempty(dir.path() + "/link", 100)); // links are not followed
	ck_assert(!read_nonempty(dir.path(), 100));
}
END_TEST

START_TEST(fifo_and_directory_are_not_read)
{
	TempDir dir;
	const std::string fifo = dir.path() + "/fifo";
	ck_assert_int_eq(mkfifo(fifo.c_str(), 0600), 0);
	// no writer: a blocking open would hang here
	const FileRead read = read_file(fifo, plain);
	ck_assert(read.error == ReadError::not_regular);
	ck_assert_str(read.why(), "not a regular file");
	ck_assert(read_file(dir.path(), plain).error == ReadError::not_regular);
	FileLines lines(fifo, plain, 10);
	std::string_view line;
	ck_assert(!lines.next(line));
	ck_assert(lines.status().error == ReadError::not_regular);
}
END_TEST

START_TEST(symlinks_only_when_followed)
{
	TempDir dir;
	write_file(dir.path() + "/target", "t");
	ck_assert_int_eq(symlink((dir.path() + "/target").c_str(), (dir.path() + "/link").c_str()), 0);
	const FileRead read = read_file(dir.path() + "/link", plain);
	ck_assert(read.error == ReadError::cannot_open);
	ck_assert_int_eq(read.error_number, ELOOP);
	const FileRead followed = read_file(dir.path() + "/link", {100, true, false});
	ck_assert_msg(static_cast<bool>(followed), "%s", followed.why().c_str());
	ck_assert_str(followed.text, "t");
	// a dangling link, followed, is missing
	ck_assert_int_eq(symlink((dir.path() + "/gone").c_str(), (dir.path() + "/dangling").c_str()), 0);
	ck_assert(read_file(dir.path() + "/dangling", {100, true, false}).error == ReadError::missing);
}
END_TEST

START_TEST(root_private_is_checked_when_asked)
{
	TempDir dir;
	const std::string f = dir.path() + "/f";
	write_file(f, "x");
	chmod(f.c_str(), 0664); // group-writable
	ck_assert(read_file(f, plain));
	const FileRead writable = read_file(f, root_only);
	ck_assert(writable.error == ReadError::not_root_private);
	ck_assert(writable.text.empty());
	ck_assert_str(writable.why(), "not owned by root or writable by others");
	chmod(f.c_str(), 0646); // world-writable
	ck_assert(read_file(f, root_only).error == ReadError::not_root_private);
	chmod(f.c_str(), 0644);
	ck_assert(read_file(f, root_only));
	if (geteuid() == 0) { // owned by another user
		ck_assert_int_eq(chown(f.c_str(), 65534, 65534), 0);
		ck_assert(read_file(f, root_only).error == ReadError::not_root_private);
		ck_assert(read_file(f, plain));
	}
	struct stat st {
	};
	st.st_uid = 0;
	st.st_mode = S_IFDIR | 0755;
	ck_assert(root_private(st));
	st.st_mode = S_IFDIR | 0775;
	ck_assert(!root_private(st));
	st.st_mode = S_IFDIR | 0755;
	st.st_uid = 1;
	ck_assert(!root_private(st));
}
END_TEST

START_TEST(lines_one_at_a_time)
{
	TempDir dir;
	const std::string f = dir.path() + "/lines";
	write_file(f, "a\n\nccc\nlast");
	FileLines lines(f, {100, false, false}, 4);
	std::string_view line;
	std::vector<std::string> got;
	while (lines.next(line))
		got.emplace_back(line);
	ck_assert(lines.status().error == ReadError::none);
	ck_assert(got == (std::vector<std::string>{"a", "", "ccc", "last"}));

	write_file(f, "ok\ntoolong\n");
	FileLines long_line(f, {100, false, false}, 4);
	ck_assert(long_line.next(line) && line == "ok");
	ck_assert(!long_line.next(line));
	ck_assert(long_line.status().error == ReadError::line_too_long);
	ck_assert_str(long_line.status().why(), "a line longer than 4 bytes");

	FileLines big(f, {5, false, false}, 100);
	ck_assert(!big.next(line));
	ck_assert(big.status().error == ReadError::too_large);

	FileLines missing(dir.path() + "/none", {100, false, false}, 100);
	ck_assert(missing.status().error == ReadError::missing);
	ck_assert(!missing.next(line));
}
END_TEST

// The callers' own texts, mapped from the error kinds.
START_TEST(callers_keep_their_texts)
{
	TempDir dir;
	const std::string f = dir.path() + "/f";
	ck_assert_str(read_root_file(f, 100).error(), "cannot open " + f + ": No such file or directory");
	write_file(f, std::string(200, 'x'));
	chmod(f.c_str(), 0644);
	ck_assert_str(read_root_file(f, 100).error(), f + " is larger than 100 bytes");
	chmod(f.c_str(), 0664);
	ck_assert_str(read_root_file(f, 1000).error(),
	              f + " is not a file of root's that only root may write");
	ck_assert_str(SliceLayout::load(f).error(),
	              f + ": not a root-owned layout file that only root may write");
	ck_assert_str(SliceLayout::load(dir.path() + "/none").error(),
	              dir.path() + "/none: No such file or directory");
	const std::string fifo = dir.path() + "/fifo";
	ck_assert_int_eq(mkfifo(fifo.c_str(), 0600), 0);
	ck_assert_str(SliceLayout::load(fifo).error(),
	              fifo + ": not a root-owned layout file that only root may write");
	ck_assert_str(Config::from_file(fifo).error(), fifo + ": cannot read: not a regular file");
	write_file(f, std::string(Config::max_file_bytes + 1, '#'));
	ck_assert_str(Config::from_file(f).error(), f + ": larger than 1 MiB, not a flexslurm config");
}
END_TEST

Suite *file_io_suite()
{
	Suite *s = suite_create("file_io");
	TCase *tc = tcase_create("file_io");
	tcase_add_test(tc, reads_a_whole_file);
	tcase_add_test(tc, missing_is_its_own_result);
	tcase_add_test(tc, too_big_is_refused);
	tcase_add_test(tc, read_nonempty_is_text_or_nothing);
	tcase_add_test(tc, fifo_and_directory_are_not_read);
	tcase_add_test(tc, symlinks_only_when_followed);
	tcase_add_test(tc, root_private_is_checked_when_asked);
	tcase_add_test(tc, lines_one_at_a_time);
	tcase_add_test(tc, callers_keep_their_texts);
	suite_add_tcase(s, tc);
	return s;
}
