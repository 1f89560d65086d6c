// SPDX-License-Identifier: GPL-2.0-or-later
// Slice placement on one node: which devices a job may draw its slices
// from, and which units must look taken so that whole-device (gpu) and slice
// (vslice) jobs never share a device. select/flex turns the answer into
// masks over Slurm's GRES state before it lets select/cons_tres choose.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flexslurm
{

enum class Placement {
	BestFit, // the device that leaves the least free: packs devices
	Spread,  // the device with the most free: spreads load
};

std::string_view placement_name(Placement p) noexcept;
std::optional<Placement> parse_placement(std::string_view s) noexcept;

// One accelerator of a node as slurmctld sees it.
struct DeviceView {
	std::string type;             // GRES type ("t4")
	int first_slice = 0;          // vslice unit index of its first slice
	int slices = 0;               // vslice units on it
	std::vector<int> used_slices; // vslice unit indices held by jobs
	int gpu_unit = -1;            // its gpu unit index, -1 if gpu is not configured for it
	bool whole_used = false;      // its gpu unit is held by a job
	// vslice unit indices whose borrow unit a borrower holds (a free
	// slice lent, lending.free_slices; an owned slice's loan too)
	std::vector<int> borrowed_slices;

	int free_slices() const noexcept { return slices - static_cast<int>(used_slices.size()); }
};

// Whether a job's slices on one node may come from several devices. A
// request that one device of the type can hold (slices <= that device's
// slice count) comes from one device, or waits until one has enough free,
// unless the job opts in (sbatch/srun/salloc --vslice-split). A request
// larger than every device of the type is always split, over as few devices
// as possible.
enum class Split {
	WhenLarger, // the default: only a request no single device could ever hold
	Allowed,    // the job opted in
};

// Split::Allowed when `env` ("NAME=value" entries) holds split_variable=1
// (or SPANK_ and the same).
Split split_from_env(const std::vector<std::string_view> &env) noexcept;

// What a job asks of one node.
struct NodeRequest {
	int slices = 0;    // vslice units on this node; 0: none, or unknown per node (-1)
	std::string type;  // requested GRES type, empty: any
	bool gpus = false; // asks for whole devices
	Split split = Split::WhenLarger;
	// Whole devices asked on this node when known (one gpu request with a
	// count per node, or per job on one node); 0: unknown.
	int gpu_count = 0;
	std::string gpu_type{}; // that request's GRES type, empty: any
};

// Units to hide from select/cons_tres for one job on one node.
struct UnitMasks {
	std::vector<int> slices; // vslice unit indices
	std::vector<int> gpus;   // gpu unit indices
	bool operator==(const UnitMasks &) const = default;
};

// Devices (indices into `devices`) the job's slices should come from: one
// device by policy when one has enough free; otherwise, if the request may
// be split (see Split), as few devices as possible, whole free devices
// first, the remainder by policy. nullopt: the node cannot hold it now.
std::optional<std::vector<size_t>> choose_devices(const std::vector<DeviceView> &devices, int slices,
                                                  std::string_view type, Placement policy,
                                                  Split split = Split::WhenLarger);

// True when some device of `type` (any type if empty) has at least `slices`
// slices in all, used or not: such a request is not split unless allowed.
bool fits_one_device(const std::vector<DeviceView> &devices, int slices, std::string_view type);

// Exclusivity (slices never on a device held whole, whole devices never with
// a slice in use) plus, when the job's per-node slice count is known, the
// placement choice: every free slice outside the chosen devices is hidden,
// and all of them when the node cannot hold the request now, so that a job
// that must stay on one device waits instead of being split. Devices that
// tie with a single-device choice stay open, for cons_tres to pick the one
// near the job's cores; a job that also asks for whole devices cannot get
// the chosen ones. On a device that must hold the whole request, free
// slices a borrower holds are hidden too while enough other free slices
// remain: an owner takes an unborrowed slice before it takes one back. The
// same for whole devices (gpu_count known): a device a borrower holds a free
// slice of is hidden while enough devices no borrower uses remain.
UnitMasks masks_for(const std::vector<DeviceView> &devices, const NodeRequest &request, Placement policy);

// lending.free_slices for a job asking `count` whole devices of `type` (any
// if empty; count 0: unknown, nothing spared): the gpu units of the devices
// it could get (open(i), not held whole) that a borrower holds a free slice
// of, when the open devices no borrower uses are enough for the job; else
// none. The job is never delayed: it takes a lent device only when it must.
std::vector<int> lent_devices_to_spare(const std::vector<DeviceView> &devices, int count,
                                       std::string_view type, const std::function<bool(size_t)> &open);

// When a node's units are expected back: for each held unit, the end of its
// holder's time limit (select/flex reads them from the running jobs).
struct UnitEnds {
	std::map<int, int64_t> slices; // vslice unit -> when its holder's time ends
	std::map<int, int64_t> gpus;   // gpu unit -> the same
};

// Per node (its index): when the units held on it come back.
using NodeEnds = std::map<int, UnitEnds>;

// A running job as the reading of unit ends knows it. Its units are read
// again only when its id, start or allocation differ from the last reading.
struct HeldBy {
	uint32_t job_id = 0;
	int64_t start = 0;       // with the id: which run of the job (a requeued job starts again)
	int64_t end = 0;         // the end of its time limit: when its units come back
	uint64_t allocation = 0; // names its allocation's record (select/flex: its address)
	uint32_t nodes = 0;      // nodes in it (a resized or expanded job's count changes)
	int64_t resized = 0;     // its last resize or expansion (Slurm's resize_time)
	bool operator==(const HeldBy &) const = default;
};

// A unit a running job holds: on node `node`, vslice unit or gpu unit `unit`.
struct HeldUnit {
	int node = 0;
	bool gpu = false;
	int unit = 0;
};

// The running jobs' unit ends, kept from one reading to the next: backfill
// plans every job it tries from them, while the running jobs seldom change
// between two of its tests. A reading of the same jobs (id, start,
// allocation, nodes, resize, end) is the last one's result; otherwise it is
// built again, reading the units only of the jobs not in the last reading
// (forget(): of every job, as when node indices may have changed). A unit
// two jobs list comes back at the later end.
class RunningEnds
{
public:
	// `jobs`: the running jobs now, any order; units(i): jobs[i]'s units.
	std::shared_ptr<const NodeEnds> read(std::vector<HeldBy> jobs,
	                                     const std::function<std::vector<HeldUnit>(size_t)> &units);
	size_t units_read() const noexcept { return units_read_; } // jobs whose units were read, all readings
	void forget() noexcept;

private:
	struct Held {
		HeldBy by;
		std::vector<HeldUnit> units;
	};
	std::vector<HeldBy> jobs_; // the last reading's, by job id
	std::map<uint32_t, Held> held_;
	std::shared_ptr<const NodeEnds> ends_;
	size_t units_read_ = 0;
};

// `devices` as they will be at `at` if no job starts meanwhile: slices and
// whole devices whose holder's time ends by then are free.
std::vector<DeviceView> devices_at(const std::vector<DeviceView> &devices, const UnitEnds &ends, int64_t at);

// Whether a node's devices, as they are, can take every request: a whole
// device for each gpu asked (one if the count is unknown) with no slice in
// use, and a placement for the slices. Cores and memory are cons_tres's.
bool devices_can_hold(const std::vector<DeviceView> &devices, const std::vector<NodeRequest> &requests,
                      Placement policy);

// The earliest time the node's devices can take the requests: `now` if they
// can now, else the first end in `ends` after which they can; nullopt if
// they cannot even when every holder has ended. Backfill's will-run test
// plans a start from it: cons_tres simulates the running jobs' ends, but
// not that a device whose slices end becomes a whole GPU again.
std::optional<int64_t> devices_ready_at(const std::vector<DeviceView> &devices, const UnitEnds &ends,
                                        const std::vector<NodeRequest> &requests, Placement policy,
                                        int64_t now);

// A request of several GRES types on one node (--gres=vslice:t4:1,vslice:ascend910b:1 on a mixed
// node): each type is placed as a request of its own, a slice stays offered when some type's
// placement offers it, a gpu unit is hidden when any hides it. One request: masks_for() above.
UnitMasks masks_for(const std::vector<DeviceView> &devices, const std::vector<NodeRequest> &requests,
                    Placement policy);

} // namespace flexslurm
