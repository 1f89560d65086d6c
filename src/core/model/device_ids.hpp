// SPDX-License-Identifier: GPL-2.0-or-later
// Which physical device each of a node's sliced devices is (UUID, PCI bus
// id), carried from the node agent (which has the node's slice layout) to the
// flexslurm slice map: the agent's report (report.hpp, version 2 "ident"
// lines), then the lending controller's answer to an admin's "devices"
// request (admin_request.hpp), a table this file writes and reads.
// Everything that crosses a process boundary is checked here, strictly: a
// value that is not the canonical form is refused, never repaired.
#pragma once

#include "core/util/result.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

// "GPU-" and a canonical 8-4-4-4-12 UUID of lowercase hex digits (NVIDIA's
// form, as NVML and the driver write it); nothing else.
inline constexpr size_t device_uuid_chars = 40;
bool valid_device_uuid(std::string_view uuid) noexcept;
// "dddd:bb:dd.f", lowercase hex (normalize_pci_bus_id's form): a 4-digit
// domain, bus, device 00..1f, function 0..7.
inline constexpr size_t pci_bus_id_chars = 12;
bool valid_pci_bus_id(std::string_view id) noexcept;

// One sliced device: its index in the node's slice layout, and what is
// known of it (empty: unknown).
struct DeviceIdentity {
	int device = 0; // 0..max_identity_devices-1
	std::string uuid;
	std::string pci_bus_id;
	bool operator==(const DeviceIdentity &) const = default;
};
inline constexpr size_t max_identity_devices = 256; // report.hpp's max_report_devices

// The same, with only valid values kept (an invalid one becomes unknown):
// what an agent may send.
DeviceIdentity sendable_identity(int device, std::string_view uuid, std::string_view pci_bus_id);

struct NodeDeviceIds {
	std::string node;
	std::vector<DeviceIdentity> devices;
};

// The controller's answer to "devices":
//   "DEVICES\n" then "<node> <device> <uuid|-> <pci|->\n" per device, then
//   "end\n" or, when the rows would pass max_bytes, "truncated <shown> of <all>\n".
std::string encode_device_table(const std::vector<NodeDeviceIds> &nodes, size_t max_bytes);
struct DeviceTable {
	std::vector<NodeDeviceIds> nodes;
	bool truncated = false;
};
// Strict: node names as report.hpp's valid_node_name, devices 0..255 in
// ascending order within a node, no node twice, valid UUIDs and PCI bus ids
// or "-", at most max_message_bytes; an error names the line.
Result<DeviceTable> parse_device_table(std::string_view text);

} // namespace flexslurm
