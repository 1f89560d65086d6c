// select/flex's placement rule at scale: the work its job_test adds for one
// job over every candidate node (masks_for on each node's devices, as
// unit_masks.cpp calls it), for N nodes x 8 devices x 8 slices with a
// seeded mix of used slices and devices held whole. Requests cycle through
// 1, 2, 3, 4, 6, 8 and 12 slices, best-fit and spread, and whole devices
// with slices (the exclusivity masks only).
//
//   bench/placement_bench [NODES...]      (default: 64 256 1024 4096 10000)
//
// Prints one line per size: median and p99 of one job's pass over all
// nodes (ms) and the cost per node (ns). See bench/RESULTS.md.
#include "core/model/placement.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace flexslurm;

namespace
{

constexpr int devices_per_node = 8;
constexpr int slices_per_device = 8;

std::vector<std::vector<DeviceView>> make_nodes(int nodes, std::mt19937 &rng)
{
	std::vector<std::vector<DeviceView>> out(static_cast<size_t>(nodes));
	std::uniform_int_distribution<int> use(0, 9);
	for (auto &node : out)
		for (int d = 0; d < devices_per_node; ++d) {
			DeviceView v;
			v.type = "t4";
			v.first_slice = d * slices_per_device;
			v.slices = slices_per_device;
			v.gpu_unit = d;
			const int r = use(rng);
			if (r < 2) {
				v.whole_used = true; // 20 % held whole
			} else {
				const int used =
				        r < 4 ? 0
				              : std::uniform_int_distribution<int>(1, slices_per_device)(rng);
				for (int k = 0; k < used; ++k)
					v.used_slices.push_back(v.first_slice + k);
			}
			node.push_back(std::move(v));
		}
	return out;
}

double percentile(std::vector<double> v, double p)
{
	std::sort(v.begin(), v.end());
	return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

} // namespace

int main(int argc, char **argv)
{
	std::vector<int> sizes;
	for (int i = 1; i < argc; ++i)
		sizes.push_back(std::atoi(argv[i]));
	if (sizes.empty())
		sizes = {64, 256, 1024, 4096, 10000};
	const int requests[] = {1, 2, 3, 4, 6, 8, 12, 0};
	std::printf("%8s %10s %10s %10s %10s\n", "nodes", "p50_ms", "p99_ms", "ns/node", "hidden/job");
	for (int n : sizes) {
		if (n <= 0)
			continue;
		std::mt19937 rng(7);
		const auto nodes = make_nodes(n, rng);
		std::vector<double> ms;
		size_t hidden = 0;
		const int jobs = std::max(50, 200000 / n);
		for (int j = 0; j < jobs; ++j) {
			NodeRequest req;
			req.slices = requests[j % 8];
			req.gpus = req.slices == 0;
			if (req.gpus)
				req.slices = 2; // whole devices and slices: exclusivity only
			req.type = j % 3 ? "" : "t4";
			const Placement policy = j % 2 ? Placement::BestFit : Placement::Spread;
			const auto t0 = std::chrono::steady_clock::now();
			size_t h = 0;
			for (const auto &node : nodes) {
				const UnitMasks m = masks_for(node, req, policy);
				h += m.slices.size() + m.gpus.size();
			}
			const auto t1 = std::chrono::steady_clock::now();
			ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
			hidden += h;
		}
		const double p50 = percentile(ms, 0.5);
		std::printf("%8d %10.3f %10.3f %10.1f %10zu\n", n, p50, percentile(ms, 0.99),
		            p50 * 1e6 / static_cast<double>(n), hidden / static_cast<size_t>(jobs));
	}
	return 0;
}
