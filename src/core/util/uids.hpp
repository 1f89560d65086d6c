// SPDX-License-Identifier: GPL-2.0-or-later
// Who may command flexslurm (lending admin requests, the controller's sealed
// orders): root and SlurmUser, checked in one place.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <vector>

namespace flexslurm
{

// The uids trusted as the controller or an admin: root and SlurmUser.
inline std::vector<uid_t> root_and_slurm_user(uid_t slurm_user)
{
	return slurm_user == 0 ? std::vector<uid_t>{0} : std::vector<uid_t>{0, slurm_user};
}

inline bool uid_allowed(const std::vector<uid_t> &allowed, uid_t uid) noexcept
{
	return std::find(allowed.begin(), allowed.end(), uid) != allowed.end();
}

} // namespace flexslurm
