// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/job_cgroup.hpp"

#include "core/io/file_io.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <limits>

namespace flexslurm
{
namespace
{

constexpr size_t max_proc_file = 64 * 1024;

std::optional<uint32_t> job_component(std::string_view component) noexcept
{
	uint32_t job = 0;
	if (component.substr(0, 4) != "job_" ||
	    !parse_number<uint32_t>(component.substr(4), job, 1, std::numeric_limits<uint32_t>::max()))
		return std::nullopt;
	return job;
}

std::vector<std::string_view> path_components(std::string_view path)
{
	std::vector<std::string_view> out;
	size_t start = 0;
	while (start <= path.size()) {
		size_t end = path.find('/', start);
		if (end == std::string_view::npos)
			end = path.size();
		if (end > start)
			out.push_back(path.substr(start, end - start));
		start = end + 1;
	}
	return out;
}

// One path component against a pattern component with at most one '*' (any characters, or none).
bool component_matches(std::string_view pattern, std::string_view component) noexcept
{
	const size_t star = pattern.find('*');
	if (star == std::string_view::npos)
		return pattern == component;
	const std::string_view head = pattern.substr(0, star), tail = pattern.substr(star + 1);
	return component.size() >= head.size() + tail.size() && component.substr(0, head.size()) == head &&
	       component.substr(component.size() - tail.size()) == tail;
}

// The number of leading components of `path` that `anchor` names, or 0.
size_t anchored(const std::vector<std::string_view> &path, std::string_view anchor)
{
	const auto want = path_components(anchor);
	if (want.empty() || want.size() > path.size())
		return 0;
	for (size_t i = 0; i < want.size(); ++i)
		if (!component_matches(want[i], path[i]))
			return 0;
	return want.size();
}

bool is_uid_component(std::string_view c) noexcept
{
	uint32_t uid = 0;
	return c.substr(0, 4) == "uid_" &&
	       parse_number<uint32_t>(c.substr(4), uid, 0, std::numeric_limits<uint32_t>::max());
}

// A job's cgroup is "<v1 root>/uid_U/job_J/..." on a v1 controller line and "<v2 scope>/job_J/..." on
// the v2 line, anchored at the root: what a user makes in a cgroup tree delegated to them (under
// user.slice, or in the name=systemd hierarchy) is not Slurm's, whatever it is called.
std::optional<uint32_t> job_of_cgroup_path(std::string_view path, bool v2, const SlurmMarks &marks)
{
	const auto components = path_components(path);
	for (const std::string &anchor : v2 ? marks.v2_scopes : marks.v1_roots) {
		size_t at = anchored(components, anchor);
		if (!at)
			continue;
		if (!v2) {
			if (at >= components.size() || !is_uid_component(components[at]))
				continue;
			++at;
		}
		if (at < components.size())
			if (auto job = job_component(components[at]))
				return job;
	}
	return std::nullopt;
}

} // namespace

SlurmMarks SlurmMarks::for_node(const std::string &node, const std::string &stepd_path)
{
	SlurmMarks m;
	m.stepd_path = stepd_path;
	if (!stepd_path.empty()) {
		char real[PATH_MAX];
		if (realpath(stepd_path.c_str(), real))
			m.stepd_path = real;
	}
	const std::string any = node.empty() ? "*" : node;
	m.v1_roots = {"/slurm", "/slurm_" + any};
	m.v2_scopes = {"/system.slice/slurmstepd.scope", "/system.slice/" + any + "_slurmstepd.scope"};
	return m;
}

void SlurmMarks::learn_from_slurmd_cgroup(std::string_view self_cgroup_text)
{
	for (const std::string_view line : split(self_cgroup_text, '\n')) {
		if (line.substr(0, 3) != "0::")
			continue;
		const std::string_view path = line.substr(3);
		const auto components = path_components(path);
		if (components.size() < 2 || components.back() != "slurmd" ||
		    !component_matches("*slurmstepd.scope", components[components.size() - 2]) ||
		    path.find('*') != std::string_view::npos)
			continue;
		std::string scope;
		for (size_t i = 0; i + 1 < components.size(); ++i)
			scope += "/" + std::string(components[i]);
		if (std::find(v2_scopes.begin(), v2_scopes.end(), scope) == v2_scopes.end())
			v2_scopes.push_back(scope);
	}
}

SlurmMarks SlurmMarks::for_this_slurmd(const std::string &node, const std::string &stepd_path,
                                       const std::string &proc_root)
{
	SlurmMarks m = for_node(node, stepd_path);
	if (auto self = read_file_bounded(proc_root + "/self/cgroup", max_proc_file))
		m.learn_from_slurmd_cgroup(*self);
	return m;
}

std::optional<uint32_t> job_of_cgroup_text(std::string_view text, const SlurmMarks &marks) noexcept
{
	// One line per hierarchy, "ID:controllers:path"; v1 hierarchies may put
	// the process in different cgroups, which must not name different jobs.
	// Named v1 hierarchies (name=systemd) are never Slurm's.
	try {
		std::optional<uint32_t> found;
		for (const std::string_view line : split(text, '\n')) {
			const size_t first = line.find(':');
			const size_t second =
			        first == std::string_view::npos ? first : line.find(':', first + 1);
			if (second == std::string_view::npos)
				continue;
			const std::string_view controllers = line.substr(first + 1, second - first - 1);
			const bool v2 = controllers.empty() && line.substr(0, first) == "0";
			if (!v2 &&
			    (controllers.empty() || controllers.find("name=") != std::string_view::npos))
				continue;
			const auto job = job_of_cgroup_path(line.substr(second + 1), v2, marks);
			if (!job)
				continue;
			if (found && *found != *job)
				return std::nullopt;
			found = job;
		}
		return found;
	} catch (...) {
		return std::nullopt; // out of memory
	}
}

} // namespace flexslurm
