// SPDX-License-Identifier: GPL-2.0-or-later
#include "plugins/select_flex/cons_tres.hpp"

#include <mutex>

namespace flexslurm::select_flex
{

compat::select_ops_t ops{};

namespace
{
std::mutex delegate_lock;
plugin_context_t *delegate_context = nullptr;
} // namespace

bool delegate()
{
	std::lock_guard<std::mutex> guard(delegate_lock);
	if (delegate_context)
		return true;
	delegate_context = plugin_context_create(
	        "select", compat::wrapped_select_type, reinterpret_cast<void **>(&ops),
	        const_cast<const char **>(compat::select_ops_names), sizeof(compat::select_ops_names));
	if (!delegate_context)
		error("select/flex: cannot load %s, which select/flex wraps", compat::wrapped_select_type);
	return delegate_context != nullptr;
}

void unload_delegate()
{
	std::lock_guard<std::mutex> guard(delegate_lock);
	if (delegate_context)
		plugin_context_destroy(delegate_context);
	delegate_context = nullptr;
}

} // namespace flexslurm::select_flex
