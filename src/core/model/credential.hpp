// SPDX-License-Identifier: GPL-2.0-or-later
// What a message's credential says of its sender, and the function that
// opens one (Munge in production, core/io/munge.hpp; fakes in tests).
#pragma once

#include "core/util/result.hpp"

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>

namespace flexslurm
{

// What a credential says of one message: the payload and who sealed it.
struct Sealed {
	std::string payload;
	uid_t uid = 0;
	gid_t gid = 0;
	bool replayed = false;
};
using Opener = std::function<Result<Sealed>(std::string_view credential)>;

} // namespace flexslurm
