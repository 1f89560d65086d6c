// SPDX-License-Identifier: GPL-2.0-or-later
// The one C boundary: every extern "C" entry point of every flexslurm plugin
// runs its body through guarded() (or guarded_void()), so no exception ever
// reaches Slurm. A caught exception is logged through the core's log sink
// (each plugin wires that sink to Slurm's log API at load, and the sink puts
// the plugin's own prefix, e.g. "select/flex: ", before every line) as
// "<entry>: <what>", and the entry returns the value given for failure.
// Slurm-free: it compiles in the SPANK plugin and the tests alike.
#pragma once

#include "core/util/log.hpp"

#include <exception>
#include <string>
#include <type_traits>

namespace flexslurm::plugin
{

// `entry` names the entry point (and the job where there is one), e.g.
// "job_test JobId=12"; the log sink adds the plugin's prefix.
template <class F, class R = std::invoke_result_t<F &>>
R guarded(const char *entry, F &&body, R on_failure) noexcept
{
	try {
		return body();
	} catch (const std::exception &e) {
		try {
			log_error(std::string(entry) + ": " + e.what());
		} catch (...) {
		}
	} catch (...) {
		try {
			log_error(std::string(entry) + ": unexpected failure");
		} catch (...) {
		}
	}
	return on_failure;
}

template <class F>
void guarded_void(const char *entry, F &&body) noexcept
{
	guarded(
	        entry,
	        [&] {
		        body();
		        return 0;
	        },
	        0);
}

} // namespace flexslurm::plugin
