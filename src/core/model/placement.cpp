// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/placement.hpp"

#include "core/model/job_env.hpp"
#include "core/util/names.hpp"

#include <algorithm>
#include <iterator>
#include <set>
#include <tuple>
#include <numeric>

namespace flexslurm
{

namespace
{

constexpr NameTable<Placement> placement_names[] = {
        {Placement::BestFit, "best_fit"},
        {Placement::Spread, "spread"},
};

} // namespace

std::string_view placement_name(Placement p) noexcept
{
	return name_of(placement_names, p, "best_fit");
}

std::optional<Placement> parse_placement(std::string_view s) noexcept
{
	return value_of(placement_names, s);
}

Split split_from_env(const std::vector<std::string_view> &env) noexcept
{
	for (std::string_view e : env) {
		// slurmctld keeps the names as set; prolog and epilog see them
		// with a SPANK_ prefix.
		if (e.substr(0, 6) == "SPANK_")
			e.remove_prefix(6);
		if (e.substr(0, split_variable.size()) == split_variable &&
		    e.substr(split_variable.size()) == "=1")
			return Split::Allowed;
	}
	return Split::WhenLarger;
}

namespace
{

bool eligible(const DeviceView &d, std::string_view type)
{
	return !d.whole_used && d.free_slices() > 0 && (type.empty() || d.type == type);
}

bool slice_free(const DeviceView &d, int s)
{
	return std::find(d.used_slices.begin(), d.used_slices.end(), s) == d.used_slices.end();
}

bool slice_borrowed(const DeviceView &d, int s)
{
	return std::find(d.borrowed_slices.begin(), d.borrowed_slices.end(), s) != d.borrowed_slices.end();
}

// Its free slices no borrower holds.
int unborrowed_free(const DeviceView &d)
{
	int n = 0;
	for (int s = d.first_slice; s < d.first_slice + d.slices; ++s)
		n += slice_free(d, s) && !slice_borrowed(d, s);
	return n;
}

// Among devices that can hold `need` alone, the policy's pick; ties go to
// the lowest index so that placement is deterministic.
std::optional<size_t> pick_single(const std::vector<DeviceView> &devices,
                                  const std::vector<size_t> &candidates, int need, Placement policy)
{
	std::optional<size_t> best;
	for (size_t i : candidates) {
		const int free = devices[i].free_slices();
		if (free < need)
			continue;
		if (!best)
			best = i;
		else if (policy == Placement::BestFit ? free < devices[*best].free_slices()
		                                      : free > devices[*best].free_slices())
			best = i;
	}
	return best;
}

} // namespace

bool fits_one_device(const std::vector<DeviceView> &devices, int slices, std::string_view type)
{
	return std::any_of(devices.begin(), devices.end(), [&](const DeviceView &d) {
		return (type.empty() || d.type == type) && d.slices >= slices;
	});
}

std::optional<std::vector<size_t>> choose_devices(const std::vector<DeviceView> &devices, int slices,
                                                  std::string_view type, Placement policy, Split split)
{
	std::vector<size_t> candidates;
	int total_free = 0;
	for (size_t i = 0; i < devices.size(); ++i) {
		if (eligible(devices[i], type)) {
			candidates.push_back(i);
			total_free += devices[i].free_slices();
		}
	}
	if (slices <= 0 || total_free < slices)
		return std::nullopt;
	if (auto one = pick_single(devices, candidates, slices, policy))
		return std::vector<size_t>{*one};
	if (split != Split::Allowed && fits_one_device(devices, slices, type))
		return std::nullopt; // waits for a device with enough free slices

	// More than any one device has free: whole free devices first (largest
	// first), then the remainder as for a small job, then whatever has the
	// most free, so that the job spans as few devices as possible.
	std::vector<size_t> chosen;
	int remaining = slices;
	std::vector<size_t> by_free = candidates;
	std::stable_sort(by_free.begin(), by_free.end(), [&](size_t a, size_t b) {
		return devices[a].free_slices() > devices[b].free_slices();
	});
	for (size_t i : by_free) {
		const DeviceView &d = devices[i];
		if (d.used_slices.empty() && d.slices <= remaining) {
			chosen.push_back(i);
			remaining -= d.slices;
		}
	}
	while (remaining > 0) {
		std::vector<size_t> rest;
		for (size_t i : candidates)
			if (std::find(chosen.begin(), chosen.end(), i) == chosen.end())
				rest.push_back(i);
		if (auto one = pick_single(devices, rest, remaining, policy)) {
			chosen.push_back(*one);
			break;
		}
		auto most = std::max_element(rest.begin(), rest.end(), [&](size_t a, size_t b) {
			return devices[a].free_slices() < devices[b].free_slices();
		});
		chosen.push_back(*most);
		remaining -= devices[*most].free_slices();
	}
	std::sort(chosen.begin(), chosen.end());
	return chosen;
}

std::vector<int> lent_devices_to_spare(const std::vector<DeviceView> &devices, int count,
                                       std::string_view type, const std::function<bool(size_t)> &open)
{
	std::vector<int> lent;
	int unborrowed = 0;
	for (size_t i = 0; i < devices.size(); ++i) {
		const DeviceView &d = devices[i];
		if (d.gpu_unit < 0 || d.whole_used || (!type.empty() && d.type != type) || !open(i))
			continue;
		if (d.borrowed_slices.empty())
			++unborrowed;
		else
			lent.push_back(d.gpu_unit);
	}
	if (count <= 0 || unborrowed < count)
		lent.clear();
	return lent;
}

UnitMasks masks_for(const std::vector<DeviceView> &devices, const NodeRequest &request, Placement policy)
{
	UnitMasks masks;
	std::optional<std::vector<size_t>> chosen;
	if (request.slices > 0)
		chosen = choose_devices(devices, request.slices, request.type, policy, request.split);
	auto is_chosen = [&](size_t i) {
		return chosen && std::find(chosen->begin(), chosen->end(), i) != chosen->end();
	};
	if (request.gpus) {
		// Never a device with a slice in use, nor one this same job's
		// slices are to come from.
		for (size_t i = 0; i < devices.size(); ++i)
			if (devices[i].gpu_unit >= 0 && (!devices[i].used_slices.empty() || is_chosen(i)))
				masks.gpus.push_back(devices[i].gpu_unit);
		const std::vector<int> spare =
		        lent_devices_to_spare(devices, request.gpu_count, request.gpu_type, [&](size_t i) {
			        return devices[i].used_slices.empty() && !is_chosen(i);
		        });
		if (!spare.empty()) {
			masks.gpus.insert(masks.gpus.end(), spare.begin(), spare.end());
			std::sort(masks.gpus.begin(), masks.gpus.end());
		}
	}
	if (request.slices == 0)
		return masks;

	// A job that fits on one device may take any device the policy rates
	// the same (equal free slices): cons_tres picks among those the one
	// local to the cores it gives the job, so topology breaks the tie.
	auto ties_choice = [&](size_t i) {
		if (!chosen || chosen->size() != 1 || request.gpus)
			return false;
		const DeviceView &c = devices[chosen->front()];
		return eligible(devices[i], request.type) && devices[i].free_slices() == c.free_slices();
	};
	// Split over several devices, the request's slices come from all of
	// them together (a tie choice is one device of its own).
	int unborrowed_chosen = 0;
	if (chosen && chosen->size() > 1)
		for (size_t i : *chosen)
			unborrowed_chosen += unborrowed_free(devices[i]);
	for (size_t i = 0; i < devices.size(); ++i) {
		const DeviceView &d = devices[i];
		// A known count the node cannot hold now: nothing is offered,
		// or cons_tres would take the slices from several devices.
		const bool allowed = request.slices > 0 ? is_chosen(i) || ties_choice(i) : !d.whole_used;
		if (allowed) {
			// The request comes from this device (or the chosen ones): it
			// prefers slices no borrower holds, as long as enough remain
			// there for all of it.
			if (d.borrowed_slices.empty() || request.slices <= 0)
				continue;
			const int unborrowed = chosen->size() == 1 ? unborrowed_free(d) : unborrowed_chosen;
			if (unborrowed < request.slices)
				continue;
			for (int s = d.first_slice; s < d.first_slice + d.slices; ++s)
				if (slice_free(d, s) && slice_borrowed(d, s))
					masks.slices.push_back(s);
			continue;
		}
		for (int s = d.first_slice; s < d.first_slice + d.slices; ++s)
			if (slice_free(d, s))
				masks.slices.push_back(s);
	}
	return masks;
}

void RunningEnds::forget() noexcept
{
	jobs_.clear();
	held_.clear();
	ends_.reset();
}

std::shared_ptr<const NodeEnds> RunningEnds::read(std::vector<HeldBy> jobs,
                                                  const std::function<std::vector<HeldUnit>(size_t)> &units)
{
	std::vector<size_t> order(jobs.size());
	for (size_t i = 0; i < order.size(); ++i)
		order[i] = i;
	std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
		return std::tie(jobs[a].job_id, jobs[a].start) < std::tie(jobs[b].job_id, jobs[b].start);
	});
	std::vector<HeldBy> sorted;
	sorted.reserve(jobs.size());
	for (size_t i : order)
		sorted.push_back(jobs[i]);
	if (ends_ && sorted == jobs_)
		return ends_;
	std::map<uint32_t, Held> held;
	auto ends = std::make_shared<NodeEnds>();
	for (size_t i : order) {
		const HeldBy &by = jobs[i];
		Held h{by, {}};
		auto kept = held_.extract(by.job_id);
		const auto same_units = [&](const HeldBy &was) {
			return was.start == by.start && was.allocation == by.allocation &&
			       was.nodes == by.nodes && was.resized == by.resized;
		};
		if (kept && same_units(kept.mapped().by)) {
			h.units = std::move(kept.mapped().units);
		} else {
			h.units = units(i);
			++units_read_;
		}
		for (const HeldUnit &u : h.units) {
			UnitEnds &node = (*ends)[u.node];
			auto &m = u.gpu ? node.gpus : node.slices;
			const auto [it, added] = m.emplace(u.unit, by.end);
			if (!added)
				it->second = std::max(it->second, by.end);
		}
		held.insert_or_assign(by.job_id, std::move(h));
	}
	held_ = std::move(held);
	jobs_ = std::move(sorted);
	ends_ = std::move(ends);
	return ends_;
}

std::vector<DeviceView> devices_at(const std::vector<DeviceView> &devices, const UnitEnds &ends, int64_t at)
{
	auto ended = [at](const std::map<int, int64_t> &m, int unit) {
		const auto it = m.find(unit);
		return it != m.end() && it->second <= at;
	};
	std::vector<DeviceView> out = devices;
	for (DeviceView &d : out) {
		std::erase_if(d.used_slices, [&](int s) { return ended(ends.slices, s); });
		if (d.whole_used && ended(ends.gpus, d.gpu_unit))
			d.whole_used = false;
	}
	return out;
}

bool devices_can_hold(const std::vector<DeviceView> &devices, const std::vector<NodeRequest> &requests,
                      Placement policy)
{
	for (const NodeRequest &r : requests) {
		std::optional<std::vector<size_t>> chosen;
		if (r.slices > 0 && !(chosen = choose_devices(devices, r.slices, r.type, policy, r.split)))
			return false;
		if (!r.gpus)
			continue;
		int open = 0;
		for (size_t i = 0; i < devices.size(); ++i) {
			const DeviceView &d = devices[i];
			open += d.gpu_unit >= 0 && !d.whole_used && d.used_slices.empty() &&
			        (r.gpu_type.empty() || d.type == r.gpu_type) &&
			        !(chosen && std::find(chosen->begin(), chosen->end(), i) != chosen->end());
		}
		if (open < std::max(r.gpu_count, 1))
			return false;
	}
	return true;
}

std::optional<int64_t> devices_ready_at(const std::vector<DeviceView> &devices, const UnitEnds &ends,
                                        const std::vector<NodeRequest> &requests, Placement policy,
                                        int64_t now)
{
	if (devices_can_hold(devices, requests, policy))
		return now;
	std::set<int64_t> times;
	for (const auto *m : {&ends.slices, &ends.gpus})
		for (const auto &[unit, end] : *m)
			times.insert(end);
	for (int64_t t : times)
		if (devices_can_hold(devices_at(devices, ends, t), requests, policy))
			return std::max(t, now + 1); // a holder past its end may end any moment
	return std::nullopt;
}

UnitMasks masks_for(const std::vector<DeviceView> &devices, const std::vector<NodeRequest> &requests,
                    Placement policy)
{
	if (requests.size() == 1)
		return masks_for(devices, requests.front(), policy);
	UnitMasks out;
	std::set<int> slices_hidden_by_all, gpus;
	bool first = true;
	for (const NodeRequest &r : requests) {
		const UnitMasks m = masks_for(devices, r, policy);
		const std::set<int> hidden(m.slices.begin(), m.slices.end());
		if (first) {
			slices_hidden_by_all = hidden;
		} else {
			std::set<int> both;
			std::set_intersection(slices_hidden_by_all.begin(), slices_hidden_by_all.end(),
			                      hidden.begin(), hidden.end(), std::inserter(both, both.end()));
			slices_hidden_by_all = std::move(both);
		}
		first = false;
		gpus.insert(m.gpus.begin(), m.gpus.end());
	}
	out.slices.assign(slices_hidden_by_all.begin(), slices_hidden_by_all.end());
	out.gpus.assign(gpus.begin(), gpus.end());
	return out;
}

} // namespace flexslurm
