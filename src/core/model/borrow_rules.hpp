// SPDX-License-Identifier: GPL-2.0-or-later
// Who may borrow. A borrower's slices are taken back by requeueing it, which
// Slurm can do only for a batch job that allows requeue; anything else would
// be killed at reclaim and lose its work. So such a job is refused when it is
// submitted, with a message saying what to change.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace flexslurm
{

// The GRES names a Slurm TRES request string asks for ("gres:vborrow:2",
// "gres/gpu:a100:1,gres/vslice:2", "gpu:1"), in order.
bool tres_asks_for(std::string_view tres, std::string_view gres_name);

struct BorrowRequest {
	bool batch = false;
	std::optional<bool> requeue; // unset: the cluster's JobRequeue applies
	bool also_slices_or_gpus = false;
};

struct BorrowVerdict {
	std::optional<std::string> refusal; // set: refuse with this message
	bool force_requeue = false;         // requeue was left unset: turn it on
};

BorrowVerdict judge_borrower(const BorrowRequest &r);

} // namespace flexslurm
