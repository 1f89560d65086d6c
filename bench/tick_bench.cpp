// SPDX-License-Identifier: GPL-2.0-or-later
// The lending server's tick at scale: the core LendingServer with a fake
// controller whose job records show N nodes x 8 devices x 8 slices, six
// devices of each node owned by one idle job each, two slices of each node
// lent, every agent reporting every 5 s. Per tick (one second of fake
// time) it measures the whole tick and its parts; files are formatted on
// the writer thread, as in slurmctld, but not written (the disk is not
// what is measured).
//
//   bench/tick_bench [NODES...]      (default: 1024 2048 4096 10000)
//
// Prints one line per size: median and p99 of the whole tick and of its
// parts, in milliseconds. See bench/RESULTS.md.
#include "core/service/lending_server.hpp"
#include "core/util/log.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

using namespace flexslurm;

namespace
{

constexpr int devices_per_node = 8;
constexpr int slices_per_device = 8;
constexpr int owned_devices = 6;

void quiet(LogLevel, const char *) {}

class BenchController final : public LendingController
{
public:
	explicit BenchController(int nodes)
	{
		for (int n = 0; n < nodes; ++n) {
			NodeBooks nb;
			nb.node = name(n);
			for (int u = 0; u < devices_per_node * slices_per_device; ++u)
				nb.device_of_slice.push_back(u / slices_per_device);
			for (int d = 0; d < owned_devices; ++d)
				for (int k = 0; k < slices_per_device; ++k)
					nb.owner(static_cast<size_t>(d * slices_per_device + k)) =
					        SliceOwner{owner(n, d), "gpu", std::nullopt};
			nb.borrower(0) = BorrowHolding{borrower(n), false};
			nb.borrower(1) = BorrowHolding{borrower(n), false};
			hosts[nb.node] = nb.node;
			records.push_back(std::move(nb));
		}
	}

	static std::string name(int n)
	{
		char buf[32];
		std::snprintf(buf, sizeof(buf), "node%05d", n);
		return buf;
	}
	static uint32_t owner(int n, int d)
	{
		return static_cast<uint32_t>(1000000 + n * devices_per_node + d);
	}
	static uint32_t borrower(int n) { return static_cast<uint32_t>(5000000 + n); }

	bool in_control() override { return true; }
	// What the adapter does with the job records: the last read's records
	// filled in place, units cleared, then each job's units set.
	bool read(ControllerView &v, const std::vector<uint32_t> &check_alive,
	          const std::vector<uint32_t> &reclaimed) override
	{
		v.nodes.resize(records.size());
		for (size_t i = 0; i < records.size(); ++i) {
			const NodeBooks &from = records[i];
			NodeBooks &nb = v.nodes[i];
			if (nb.node != from.node)
				nb.node = from.node;
			nb.known = from.known;
			if (nb.device_of_slice != from.device_of_slice)
				nb.device_of_slice = from.device_of_slice;
			nb.clear_units();
			for (size_t u = 0; u < from.owners.size(); ++u)
				if (const SliceOwner &o = from.owners[u]; o.job) {
					SliceOwner &to = nb.owner(u);
					to.job = o.job;
					if (to.partition != o.partition)
						to.partition = o.partition;
					to.end = o.end;
				}
			for (size_t u = 0; u < from.borrowers.size(); ++u)
				if (from.borrowers[u].job)
					nb.borrower(u) = from.borrowers[u];
		}
		for (const auto &[node, host] : hosts)
			if (std::string &h = v.hosts[node]; h != host)
				h = host;
		v.alive = check_alive; // every job still runs
		for (uint32_t id : reclaimed)
			v.borrowers[id] = BorrowerRecord{}; // running, its grace not over
		return true;
	}
	double locked(const std::function<void()> &body) override
	{
		body();
		return -1;
	}
	std::optional<JobFacts> job(uint32_t) override { return JobFacts{true, true, 0}; }
	std::string signal_checkpoint(uint32_t) override { return ""; }
	std::string requeue(uint32_t) override { return ""; }
	std::string requeue_ended(uint32_t) override { return ""; }
	void kill(uint32_t) override {}
	void record_totals(uint32_t, const JobTotals &) override {}
	void kick_scheduler() override {}
	std::vector<std::string> resolve(const std::string &host) override { return {host}; }

	std::vector<NodeBooks> records;
	std::map<std::string, std::string> hosts;
};

// CPU time of the calling thread (or of the process), in milliseconds: on a
// shared machine the wall time of a tick also counts the time its thread
// waited for a core.
double cpu_ms(clockid_t clock)
{
	timespec ts{};
	clock_gettime(clock, &ts);
	return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double percentile(std::vector<double> v, double p)
{
	std::sort(v.begin(), v.end());
	const size_t i =
	        std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5));
	return v[i];
}

void bench(int nodes, int ticks)
{
	BenchController ctl(nodes);
	long steady = 1000, wall = 1700000000;
	std::atomic<size_t> state_bytes{0};
	ServerIo io;
	io.steady_clock = [&] { return Instant(Seconds(steady)); };
	io.wall_clock = [&] { return Instant(Seconds(wall)); };
	io.seal = [](std::string_view payload) { return Result<std::string>(std::string(payload)); };
	io.open = [](std::string_view cred) -> Result<Sealed> {
		Sealed s;
		s.payload = std::string(cred);
		return s;
	};
	io.write_file = [&](const std::string &path, const std::string &text, bool) {
		if (path.find(".state") != std::string::npos)
			state_bytes = text.size();
		return Result<bool>(true);
	};
	ServerSettings settings;
	settings.state_dir = "/nonexistent-flexslurm-bench";
	settings.admin_uids = {0};
	LendingServer server(settings, ctl, io);
	server.start_writer(); // the files off the tick, as in slurmctld

	std::vector<uint64_t> seq(static_cast<size_t>(nodes), 0);
	double report_ms = 0;
	size_t reports = 0;
	auto report = [&](int n) {
		Report r;
		r.node = BenchController::name(n);
		r.epoch = 1;
		r.seq = ++seq[static_cast<size_t>(n)];
		r.sent_at = wall;
		for (int d = 0; d < devices_per_node; ++d) {
			DeviceReport dr;
			dr.device = d;
			dr.per_job = true;
			dr.lendable_memory_mib = 4096;
			if (d < owned_devices)
				dr.jobs = {{BenchController::owner(n, d), 0, 100}};
			r.devices.push_back(std::move(dr));
		}
		const auto t0 = std::chrono::steady_clock::now();
		const std::string answer = server.handle(encode_report(r), r.node);
		report_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
		                     .count();
		++reports;
		if (answer.empty()) {
			std::fprintf(stderr, "report of %s dropped\n", r.node.c_str());
			std::exit(1);
		}
	};

	std::vector<double> total, cpu, read, book, act, files;
	double process_cpu = 0, thread_cpu = 0;
	const int warmup = 10;
	for (int t = 0; t < warmup + ticks; ++t) {
		++steady;
		++wall;
		if (t > 0) // the listener knows the nodes after the first tick
			for (int n = t % 5; n < nodes; n += 5)
				report(n);
		if (t == warmup) {
			process_cpu = cpu_ms(CLOCK_PROCESS_CPUTIME_ID);
			thread_cpu = cpu_ms(CLOCK_THREAD_CPUTIME_ID);
		}
		const double c0 = cpu_ms(CLOCK_THREAD_CPUTIME_ID);
		const auto t0 = std::chrono::steady_clock::now();
		server.tick();
		const double ms =
		        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
		                .count();
		const double c = cpu_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
		if (t < warmup)
			continue;
		const auto parts = server.last_tick_times();
		total.push_back(ms);
		cpu.push_back(c);
		read.push_back(parts.read_ms);
		book.push_back(parts.book_ms);
		act.push_back(parts.act_ms);
		files.push_back(parts.files_ms);
	}
	// The writer thread's CPU: the process' minus this thread's (ticks and
	// reports), per tick.
	const double writer_cpu = (cpu_ms(CLOCK_PROCESS_CPUTIME_ID) - process_cpu) -
	                          (cpu_ms(CLOCK_THREAD_CPUTIME_ID) - thread_cpu);
	if (server.active_reclaims() != 0) {
		std::fprintf(stderr, "unexpected reclaims at %d nodes\n", nodes);
		std::exit(1);
	}
	std::printf(
	        "%6d nodes %7d slices | tick %7.2f %7.2f | cpu %7.2f %7.2f | read %6.2f %6.2f | book %6.2f %6.2f | act %5.2f | files %7.2f %7.2f | writer cpu %6.2f | state %5.1f MiB | report %.3f ms\n",
	        nodes, nodes * devices_per_node * slices_per_device, percentile(total, 0.5),
	        percentile(total, 0.99), percentile(cpu, 0.5), percentile(cpu, 0.99), percentile(read, 0.5),
	        percentile(read, 0.99), percentile(book, 0.5), percentile(book, 0.99), percentile(act, 0.99),
	        percentile(files, 0.5), percentile(files, 0.99), writer_cpu / ticks,
	        static_cast<double>(state_bytes.load()) / (1 << 20),
	        report_ms / static_cast<double>(reports));
	std::fflush(stdout);
}

} // namespace

int main(int argc, char **argv)
{
	set_log_sink(quiet);
	std::vector<int> sizes;
	for (int i = 1; i < argc; ++i)
		sizes.push_back(std::atoi(argv[i]));
	if (sizes.empty())
		sizes = {1024, 2048, 4096, 10000};
	std::printf("median and p99 per tick, ms (%d devices x %d slices a node, %d ticks each)\n",
	            devices_per_node, slices_per_device, 100);
	for (int n : sizes)
		bench(n, 100);
	return 0;
}
