// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/kfd_topology.hpp"

#include "core/io/file_io.hpp"

#include <algorithm>

namespace flexslurm
{

Result<std::vector<KfdGpu>> read_kfd_gpus(const std::string &dir, const KfdDirReader &list,
                                          const KfdFileReader &read)
{
	std::string why;
	auto names = list(dir, why);
	if (!names)
		return Result<std::vector<KfdGpu>>::failure("cannot list " + dir + ": " + why);
	std::sort(names->begin(), names->end());
	std::vector<KfdGpu> out;
	for (const std::string &entry : *names) {
		if (entry.empty() || entry[0] == '.' || entry.find('/') != std::string::npos)
			continue;
		if (auto text = read(dir + "/" + entry + "/properties"))
			if (auto gpu = parse_kfd_properties(*text))
				out.push_back(std::move(*gpu));
		if (out.size() >= 256)
			break;
	}
	return out;
}

Result<std::vector<KfdGpu>> read_kfd_gpus(const std::string &dir)
{
	auto list = [](const std::string &d, std::string &why) -> std::optional<std::vector<std::string>> {
		auto names = list_directory(d, 1024);
		if (!names) {
			why = names.error();
			return std::nullopt;
		}
		return std::move(*names);
	};
	// sysfs reports size 4096; the properties text is well under it.
	auto read = [](const std::string &path) { return read_nonempty(path, 16384); };
	return read_kfd_gpus(dir, list, read);
}

} // namespace flexslurm
