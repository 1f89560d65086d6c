// SPDX-License-Identifier: GPL-2.0-or-later
// The slice map (the `flexslurm` command): per node, per device, which
// slices are allocated, lent and borrowed, and by which jobs. Built from
// what any Slurm client reads (a node's Gres and GresUsed strings, each
// running job's per-node GRES detail, as `scontrol show job -d` shows it)
// and, for root and SlurmUser, the lending controller's status rows. No
// Slurm here: src/cli/slurm_reader.* fills the inputs through libslurm.
// The JSON form is versioned (slice_map_schema); docs/cli.md documents it.
#pragma once

#include "core/model/device_ids.hpp"
#include "core/util/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

// 2: devices carry uuid, pci_bus_id (from the node agents, through the
// lending controller) and held_whole, whole_job (a gpu unit held whole).
inline constexpr int slice_map_schema = 2;

// One entry of a Slurm GRES list: "vslice:t4:8(S:0-1)", "gpu:2",
// "vslice:t4:3(IDX:0-2)", "vborrow:t4:0(IDX:N/A)", "gpu:1(CNT:1)".
struct GresEntry {
	std::string name;
	std::string type; // empty: untyped
	uint64_t count = 0;
	std::vector<int> indices; // the IDX: list, ascending; empty for none or N/A
	bool has_indices = false; // an IDX: part was present (N/A included)
};
// A whole GRES list (entries split at commas outside parentheses); an
// error names the entry that is not one. "" and "(null)" are empty lists.
Result<std::vector<GresEntry>> parse_gres_list(std::string_view text);
// "0-2,5" -> {0,1,2,5}; "N/A" -> {}; an error for anything else (at most
// max_slice_index per index).
Result<std::vector<int>> parse_index_list(std::string_view text);
inline constexpr int max_slice_index = 1 << 20;
// A node with more slices than this is shown with a problem, no devices.
inline constexpr uint64_t max_node_slices = 1 << 16;

// One row of the lending controller's status (flexslurm-lending status,
// core/model/loan_book_state.cpp writes them): slices that are not free.
struct LendingRow {
	std::string node;
	int slice = 0;
	int device = 0;
	std::string state; // owned-busy, idle, lent, reclaiming
	uint32_t owner = 0;
	uint32_t borrower = 0;
	std::optional<int64_t> lent_seconds;
};
// The rows before "RECLAIMS IN FLIGHT"; malformed rows are an error.
Result<std::vector<LendingRow>> parse_lending_status(std::string_view text);

// What Slurm shows of one node and of one running job.
struct NodeInput {
	std::string name;
	std::string state;
	std::vector<std::string> partitions;
	std::string gres;      // Gres=
	std::string gres_used; // GresUsed=
};
struct JobNodeGres {
	std::string node;
	std::string detail; // one gres_detail_str entry: "vslice:t4:2(IDX:0-1),..."
};
struct JobInput {
	uint32_t id = 0;
	std::vector<JobNodeGres> nodes;
};

// Whether the controller's lending view is part of the map, and why not.
enum class LendingView { Shown, NotPermitted, Disabled, Unavailable };
std::string_view lending_view_name(LendingView v) noexcept;

struct SliceCounts {
	int total = 0;
	int allocated = 0; // held by a job through gres/vslice
	int lent = 0;      // allocated, and lent to a borrower
	int borrowed = 0;  // vborrow units in use (the borrowers' side)
	int free() const noexcept { return total - allocated; }
	SliceCounts &operator+=(const SliceCounts &o) noexcept;
};

struct SliceInfo {
	int index = 0; // the node's gres/vslice index (IDX)
	bool allocated = false;
	std::optional<uint32_t> owner; // nullopt: free, or the job is not visible to the caller
	bool borrowed = false;
	std::optional<uint32_t> borrower;
	std::string lending_state; // controller's state; empty: not shown
	std::optional<int64_t> lent_seconds;
};

struct DeviceInfo {
	std::optional<int> index;          // place in the node's layout; nullopt: the split is not known
	std::string model;                 // the GRES type
	std::string uuid;                  // empty: not known (device_ids.hpp's forms only)
	std::string pci_bus_id;            // empty: not known
	bool held_whole = false;           // its gpu unit is allocated (GresUsed)
	std::optional<uint32_t> whole_job; // the job holding it whole, when the caller sees it
	int first_slice = 0;
	SliceCounts counts;
	std::vector<SliceInfo> slices;
};

struct NodeMap {
	std::string name;
	std::string state;
	std::vector<std::string> partitions;
	uint64_t gpus_total = 0;
	uint64_t gpus_allocated = 0;
	std::vector<uint32_t> gpu_jobs; // jobs holding gpu units whole
	SliceCounts counts;
	std::vector<DeviceInfo> devices;
	std::string problem; // a GRES string that did not parse: shown, not fatal
};

struct Filters {
	std::vector<std::string> nodes; // empty: all
	std::string partition;          // empty: all
	std::optional<uint32_t> job;
};

struct SliceMap {
	std::vector<NodeMap> nodes;
	SliceCounts counts;
	int devices = 0;
	LendingView lending = LendingView::NotPermitted;
	std::string lending_note; // why not shown, in words
	// Why the devices' UUIDs and PCI bus ids are not shown (or not all of
	// them); empty: the controller's table was read whole.
	std::string identities_note;
	Filters filters;
};

// Devices of one GRES type: Slurm merges same-typed devices into one Gres
// entry, so their number is the node's gpu count of that type (untyped gpu
// count when the node has a single slice type). The slices are split evenly
// over them in the layout's order; when the gpu records do not divide the
// slice count, the type's slices form one group with no device index.
// When every device has an index and there is one per gpu unit, gpu unit k
// (Slurm's gpu IDX) is device k: a gpu unit held whole marks its device.
// `ids`: the node agent's identities of the node's devices (by index).
NodeMap build_node(const NodeInput &node, const std::vector<JobInput> &jobs,
                   const std::vector<LendingRow> *lending, const NodeDeviceIds *ids = nullptr);

// The whole map: nodes kept by the filters (a job filter keeps the nodes and
// devices where the job holds or borrows a slice or holds a gpu).
SliceMap build_map(const std::vector<NodeInput> &nodes, const std::vector<JobInput> &jobs,
                   const std::vector<LendingRow> *lending, const Filters &filters,
                   const std::vector<NodeDeviceIds> *ids = nullptr);

// Schema 2 JSON (docs/cli.md), one object, newline-terminated.
std::string map_json(const SliceMap &map);
// The table and the cluster summary line.
std::string map_text(const SliceMap &map);

} // namespace flexslurm
