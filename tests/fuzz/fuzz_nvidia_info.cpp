// SPDX-License-Identifier: GPL-2.0-or-later
// The NVIDIA driver's /proc/driver/nvidia/gpus/<bus>/information, read by
// device_identity (through an injected reader: input = directory entries,
// \x01, then one file text per entry, \x01-separated), and gres.conf's
// File= ranges (expand_device_files). What comes out goes into the slice
// layout file, tab-separated and line-based: no control characters, and a
// minor number 0..2^20-1.
#include "fuzz_common.hpp"

#include "core/io/device_identity.hpp"

#include <map>

using namespace flexslurm;

namespace
{
bool clean(const std::string &s)
{
	for (char c : s)
		if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
			return false;
	return true;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	std::string_view rest = fuzz::text(data, size);
	const std::string_view whole = rest;
	if (const auto info = parse_nvidia_information(whole)) {
		FUZZ_CHECK(info->minor >= 0 && info->minor < (1 << 20), std::string(whole));
		FUZZ_CHECK(!info->pci_bus_id.empty(), std::string(whole));
		FUZZ_CHECK(clean(info->pci_bus_id) && clean(info->uuid) && clean(info->model),
		           std::string(whole));
	}
	std::vector<std::string> entries;
	std::string_view names = fuzz::next_part(rest);
	while (!names.empty() && entries.size() < 300)
		entries.emplace_back(fuzz::next_part(names, ','));
	std::map<std::string, std::string> files;
	for (const std::string &e : entries)
		files["/proc/driver/nvidia/gpus/" + e + "/information"] = std::string(fuzz::next_part(rest));
	const auto gpus = read_nvidia_gpus(
	        "/proc/driver/nvidia/gpus", [&](const std::string &) { return entries; },
	        [&](const std::string &path) -> std::optional<std::string> {
		        const auto it = files.find(path);
		        if (it == files.end())
			        return std::nullopt;
		        return it->second;
	        });
	FUZZ_CHECK(gpus.size() <= 256, std::to_string(gpus.size()));

	if (size <= 256) {
		const auto files_of = expand_device_files(whole);
		if (files_of) {
			FUZZ_CHECK(!files_of->empty() && files_of->size() <= max_expanded_files,
			           std::string(whole));
		}
	}
	return 0;
}
