// SPDX-License-Identifier: GPL-2.0-or-later
// select/cons_tres, which select/flex wraps: loaded as a second plugin
// context (the way select/cray_aries wraps "other") on first use, and every
// select_p_* call handed to it through pass_on().
#pragma once

#ifndef FLEXSLURM_COMPAT_SELECT
#define FLEXSLURM_COMPAT_SELECT
#endif
#include "slurm_compat.h"

#include "plugins/common/entry_guard.hpp"

#include <type_traits>
#include <utility>

namespace flexslurm::select_flex
{

// cons_tres's entry points, once delegate() returned true.
extern compat::select_ops_t ops;

// Loads cons_tres if not loaded yet: false (logged) if it cannot be.
// Clients (sinfo, squeue) load every select plugin in PluginDir and most
// never call it, hence not at init.
bool delegate();
// fini(): unloads it.
void unload_delegate();

// The whole of an entry point that cons_tres answers unchanged: `entry`
// names it for the guard's log line, `op` is its member of the ops table.
template <class R, class... P, class... A>
R pass_on(const char *entry, R (*compat::select_ops_t::*op)(P...), std::type_identity_t<R> on_failure,
          A &&...args) noexcept
{
	return plugin::guarded(
	        entry, [&]() -> R { return delegate() ? (ops.*op)(std::forward<A>(args)...) : on_failure; },
	        on_failure);
}

} // namespace flexslurm::select_flex
