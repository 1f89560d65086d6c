// SPDX-License-Identifier: GPL-2.0-or-later
// What the LoanBook's files share (loan_book.cpp, loan_book_reclaims.cpp,
// loan_book_state.cpp): how times and jobs are written, and the limits the
// state file and the reclaims keep. Internal to the book, but for job_text,
// which the lending server's log lines use too.
#pragma once

#include "core/model/lending.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flexslurm::book_text
{

inline constexpr size_t history_limit = 200;
// Requeues one reclaim may issue after the job record contradicted an
// earlier one; a borrower that cannot be requeued counts as this many.
inline constexpr int requeue_again_limit = 3;
inline constexpr std::string_view state_header = "flexslurm-lending 1";

inline int64_t unix_of(Instant t)
{
	return t.time_since_epoch().count();
}

inline std::string time_text(std::optional<Instant> t)
{
	return t ? std::to_string(unix_of(*t)) : "-";
}

inline std::string job_text(uint32_t job)
{
	return job ? "JobId=" + std::to_string(job) : "-";
}

// Whose slice a loan is, after "<node> slice <u>": " of JobId=N", or
// " (free)" for a free slice lent (lending.free_slices).
inline std::string of_lender(uint32_t owner)
{
	return owner ? " of " + job_text(owner) : std::string(" (free)");
}

// The OWNER column of the status: the owner, "free" for a free slice lent.
inline std::string lender_text(uint32_t owner, uint32_t borrower)
{
	return owner || !borrower ? job_text(owner) : std::string("free");
}

} // namespace flexslurm::book_text
