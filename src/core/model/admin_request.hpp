// SPDX-License-Identifier: GPL-2.0-or-later
// An admin's request to the lending listener in slurmctld
// (flexslurm-lending), a text of its own beside the node reports.
#pragma once

#include "core/util/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flexslurm
{

// An admin's request on the same channel (flexslurm-lending): the
// controller's lending status, or take a borrower's loans back now (with
// the usual grace), or the devices' identities the node agents reported
// (device_ids.hpp's table; the flexslurm slice map's UUID and PCI bus id).
// Only root and SlurmUser credentials are obeyed.
struct AdminRequest {
	enum class Kind { Status, Reclaim, Devices };
	Kind kind = Kind::Status;
	uint32_t job = 0; // Reclaim: the borrower
};
std::string encode_admin(const AdminRequest &r);
// nullopt: the text is not an admin request at all (a node report, say);
// an error value: it is one, malformed.
std::optional<Result<AdminRequest>> parse_admin(std::string_view text);

} // namespace flexslurm
