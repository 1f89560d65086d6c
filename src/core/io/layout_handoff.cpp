// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/layout_handoff.hpp"

#include "core/util/text.hpp"

#include <strings.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <tuple>

namespace flexslurm
{

std::string borrow_order_problem(std::string_view gres_types)
{
	const int vslice = list_position(gres_types, "vslice");
	const int vborrow = list_position(gres_types, "vborrow");
	if (vborrow < 0 || (vslice >= 0 && vslice < vborrow))
		return "";
	const std::string types = "GresTypes=" + std::string(gres_types);
	if (vslice < 0)
		return types +
		       " names vborrow without vslice: gres/vborrow lends gres/vslice's slices and reads the layout gres/vslice saves; write GresTypes=...,vslice,vborrow";
	return types +
	       " names vborrow before vslice: gres/vborrow reads the layout gres/vslice saves just before it; write vslice first (GresTypes=...,vslice,vborrow)";
}

timespec file_clock_now()
{
	timespec now{};
	clock_gettime(CLOCK_REALTIME_COARSE, &now);
	return now;
}

Result<SliceLayout> load_layout_saved_since(const std::string &path, timespec not_before)
{
	struct stat st {
	};
	if (stat(path.c_str(), &st) != 0)
		return Result<SliceLayout>::failure(path + ": " + std::strerror(errno));
	if (std::tie(st.st_mtim.tv_sec, st.st_mtim.tv_nsec) < std::tie(not_before.tv_sec, not_before.tv_nsec))
		return Result<SliceLayout>::failure(path +
		                                    ": left from an earlier start (not saved at this one)");
	return SliceLayout::load(path);
}

} // namespace flexslurm
