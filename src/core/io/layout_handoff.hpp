// SPDX-License-Identifier: GPL-2.0-or-later
// gres/vborrow's units are gres/vslice's slices, one to one. gres/vborrow
// does not discover the node again: it reads the layout that gres/vslice
// saved (inventory.layout_file) a moment before in the same slurmd start.
// slurmd calls the GRES plugins' node_config_load in GresTypes order, so
// that order is part of the contract, checked here rather than assumed.
#pragma once

#include "core/model/slice_layout.hpp"
#include "core/util/result.hpp"

#include <ctime>
#include <string>
#include <string_view>

namespace flexslurm
{

// "" when GresTypes (slurm.conf) names vslice before vborrow; otherwise
// what is wrong, naming GresTypes and the order to write.
std::string borrow_order_problem(std::string_view gres_types);

// The clock the kernel stamps a file's modification time with
// (CLOCK_REALTIME_COARSE): a file written after this call is never stamped
// earlier than what it returns.
timespec file_clock_now();

// The layout at `path`, if it was written at or after `not_before`
// (file_clock_now() taken before gres/vslice could have saved it); a file
// left from an earlier start, or none, is refused with the reason.
Result<SliceLayout> load_layout_saved_since(const std::string &path, timespec not_before);

} // namespace flexslurm
