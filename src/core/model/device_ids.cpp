// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/device_ids.hpp"

#include "core/model/report.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <cstdint>
#include <set>

namespace flexslurm
{

namespace
{

bool lower_hex(char c) noexcept
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// `text` has exactly the shape of `pattern`: 'x' a lowercase hex digit,
// any other character itself.
bool shaped_like(std::string_view text, std::string_view pattern) noexcept
{
	if (text.size() != pattern.size())
		return false;
	for (size_t i = 0; i < text.size(); ++i)
		if (pattern[i] == 'x' ? !lower_hex(text[i]) : text[i] != pattern[i])
			return false;
	return true;
}

constexpr std::string_view table_header = "DEVICES";

std::string row_text(const std::string &node, const DeviceIdentity &d)
{
	return node + " " + std::to_string(d.device) + " " + (d.uuid.empty() ? "-" : d.uuid) + " " +
	       (d.pci_bus_id.empty() ? "-" : d.pci_bus_id) + "\n";
}

} // namespace

bool valid_device_uuid(std::string_view uuid) noexcept
{
	return shaped_like(uuid, "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
}

bool valid_pci_bus_id(std::string_view id) noexcept
{
	if (!shaped_like(id, "xxxx:xx:xx.x"))
		return false;
	const int device = (id[8] >= 'a' ? id[8] - 'a' + 10 : id[8] - '0') * 16 +
	                   (id[9] >= 'a' ? id[9] - 'a' + 10 : id[9] - '0');
	return device <= 0x1f && id[11] >= '0' && id[11] <= '7';
}

DeviceIdentity sendable_identity(int device, std::string_view uuid, std::string_view pci_bus_id)
{
	DeviceIdentity d;
	d.device = device;
	if (valid_device_uuid(uuid))
		d.uuid = std::string(uuid);
	if (valid_pci_bus_id(pci_bus_id))
		d.pci_bus_id = std::string(pci_bus_id);
	return d;
}

std::string encode_device_table(const std::vector<NodeDeviceIds> &nodes, size_t max_bytes)
{
	std::string out = std::string(table_header) + "\n";
	size_t all = 0, shown = 0;
	bool full = false;
	for (const NodeDeviceIds &n : nodes)
		for (const DeviceIdentity &d : n.devices) {
			++all;
			if (full)
				continue;
			std::string row = row_text(n.node, d);
			// Room for the last line ("truncated N of M\n", at most 48 bytes).
			if (out.size() + row.size() + 48 > max_bytes) {
				full = true;
				continue;
			}
			out += row;
			++shown;
		}
	if (full)
		return out + "truncated " + std::to_string(shown) + " of " + std::to_string(all) + "\n";
	return out + "end\n";
}

Result<DeviceTable> parse_device_table(std::string_view text)
{
	const auto bad = [](size_t line, const std::string &why) {
		return Result<DeviceTable>::failure("device table line " + std::to_string(line) + ": " + why);
	};
	if (text.size() > max_message_bytes)
		return Result<DeviceTable>::failure("device table of " + std::to_string(text.size()) +
		                                    " bytes is over the " +
		                                    std::to_string(max_message_bytes) + "-byte limit");
	if (text.empty() || text.back() != '\n')
		return Result<DeviceTable>::failure("device table: no newline at the end (truncated?)");
	text.remove_suffix(1);
	const auto lines = split(text, '\n');
	if (lines.empty() || lines[0] != table_header)
		return Result<DeviceTable>::failure("device table: does not start with " +
		                                    std::string(table_header));
	DeviceTable table;
	std::set<std::string, std::less<>> nodes_seen;
	bool ended = false;
	for (size_t i = 1; i < lines.size(); ++i) {
		const std::string_view line = lines[i];
		const size_t number = i + 1;
		if (ended)
			return bad(number, "text after the last line");
		const auto w = split(line, ' ');
		if (line == "end") {
			ended = true;
			continue;
		}
		if (w.size() == 4 && w[0] == "truncated" && w[2] == "of") {
			size_t shown = 0, all = 0;
			if (!parse_number(w[1], shown, size_t{0}, max_message_bytes, Digits::Canonical) ||
			    !parse_number(w[3], all, shown, SIZE_MAX, Digits::Canonical))
				return bad(number, "not \"truncated <shown> of <all>\"");
			table.truncated = ended = true;
			continue;
		}
		if (w.size() != 4)
			return bad(number, quoted(line, 80) + " is not \"<node> <device> <uuid|-> <pci|->\"");
		if (!valid_node_name(w[0]))
			return bad(number, "node name " + quoted(w[0]) + " is not 1.." +
			                           std::to_string(max_node_name_chars) +
			                           " characters of [A-Za-z0-9._-]");
		int device = 0;
		if (!parse_number(w[1], device, 0, static_cast<int>(max_identity_devices) - 1,
		                  Digits::Canonical))
			return bad(number, "device " + quoted(w[1]) + " is not 0.." +
			                           std::to_string(max_identity_devices - 1));
		if (w[2] != "-" && !valid_device_uuid(w[2]))
			return bad(number, "UUID " + quoted(w[2], 48) +
			                           " is not GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx");
		if (w[3] != "-" && !valid_pci_bus_id(w[3]))
			return bad(number, "PCI bus id " + quoted(w[3]) + " is not dddd:bb:dd.f");
		if (table.nodes.empty() || table.nodes.back().node != w[0]) {
			if (!nodes_seen.insert(std::string(w[0])).second)
				return bad(number, "node " + std::string(w[0]) + " appears twice");
			table.nodes.push_back({std::string(w[0]), {}});
		}
		auto &devices = table.nodes.back().devices;
		if (!devices.empty() && devices.back().device >= device)
			return bad(number, "device " + std::to_string(device) + " of " + std::string(w[0]) +
			                           " is not after device " +
			                           std::to_string(devices.back().device));
		devices.push_back(
		        {device, w[2] == "-" ? "" : std::string(w[2]), w[3] == "-" ? "" : std::string(w[3])});
	}
	if (!ended)
		return Result<DeviceTable>::failure("device table: no \"end\" line (truncated?)");
	return table;
}

} // namespace flexslurm
