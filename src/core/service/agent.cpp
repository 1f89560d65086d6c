// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/service/agent.hpp"

#include "core/io/file_io.hpp"
#include "core/util/log.hpp"
#include "core/util/uids.hpp"

#include <tuple>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <random>

namespace flexslurm
{

namespace
{
// How long after its due time a hard stop is still carried out (again, for
// processes the borrower forked meanwhile) without a fresh order.
constexpr std::chrono::seconds stop_order_life{30};
} // namespace

AgentIo AgentIo::production(const MungeEndpoint &munge)
{
	AgentIo io;
	io.seal = [munge](std::string_view payload) { return munge_seal(munge, payload); };
	io.open = [munge](std::string_view cred) { return munge_open(munge, cred); };
	io.exchange = [](const std::string &host, uint16_t port, std::string_view request,
	                 const std::string &bind_address, Seconds timeout) {
		return exchange_from(host, port, request, bind_address, timeout);
	};
	io.kill_job = [](uint32_t job, uint64_t ordered_at) {
		return kill_job_processes(job, "/proc", SlurmMarks::for_node("", ""), ordered_at);
	};
	io.wall_clock = [] {
		return std::chrono::time_point_cast<Seconds>(std::chrono::system_clock::now());
	};
	// Agents started in the same second must not draw the same jitter.
	auto seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
	            (static_cast<uint64_t>(getpid()) << 32);
	try {
		seed ^= std::random_device{}();
	} catch (...) { // no entropy source: the clock and the pid still differ between nodes
	}
	auto engine = std::make_shared<std::mt19937_64>(seed);
	io.random = [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
	io.write_public = [](const std::string &path, const std::string &text) {
		return write_file_atomically(path, text, 0644, false);
	};
	io.remove = [](const std::string &path) { (void)unlink(path.c_str()); };
	return io;
}

NodeAgent::NodeAgent(AgentSettings settings, SliceLayout layout, std::unique_ptr<TelemetryBackend> backend,
                     AgentIo io)
    : settings_(std::move(settings)), layout_(std::move(layout)), backend_(std::move(backend)),
      io_(std::move(io))
{
	epoch_ = static_cast<uint64_t>(io_.wall_clock().time_since_epoch().count());
	started_at_ = io_.wall_clock();
	last_active_.assign(layout_.devices().size(), started_at_);
}

NodeAgent::~NodeAgent()
{
	{
		std::lock_guard<std::mutex> guard(mutex_);
		stopping_ = true;
	}
	wake_.notify_all();
	if (thread_.joinable())
		thread_.join();
}

void NodeAgent::start()
{
	thread_ = std::thread([this] {
		// libmunge and the report socket write to peers that may go
		// away: a SIGPIPE delivered to this thread would end slurmd.
		sigset_t pipe;
		sigemptyset(&pipe);
		sigaddset(&pipe, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
		loop();
	});
}

Report NodeAgent::build_report(const std::vector<DeviceSample> &samples)
{
	Report r;
	r.node = settings_.node;
	r.epoch = epoch_;
	r.seq = ++seq_;
	r.sent_at = io_.wall_clock().time_since_epoch().count();
	const auto &devices = layout_.devices();
	for (const DeviceSample &s : samples) {
		if (s.device < 0 || static_cast<size_t>(s.device) >= devices.size())
			continue;
		const DeviceSlices &d = devices[static_cast<size_t>(s.device)];
		DeviceReport dr;
		dr.device = s.device;
		dr.busy_percent = std::clamp(s.busy_percent, 0.0, 100.0);
		dr.memory_used_mib = s.memory_used_bytes >> 20;
		dr.lendable_memory_mib = (d.borrow_memory_bytes * static_cast<uint64_t>(d.slices)) >> 20;
		dr.per_job = s.per_job;
		for (const JobUse &j : s.per_job ? s.jobs : std::vector<JobUse>{}) {
			if (!j.job || dr.jobs.size() >= max_jobs_per_device)
				continue;
			auto same = std::find_if(dr.jobs.begin(), dr.jobs.end(),
			                         [&](const JobReport &x) { return x.job == j.job; });
			if (same != dr.jobs.end()) {
				same->busy_percent = std::min(100.0, same->busy_percent + j.busy_percent);
				same->memory_mib += j.memory_bytes >> 20;
			} else {
				dr.jobs.push_back({j.job, std::clamp(j.busy_percent, 0.0, 100.0),
				                   j.memory_bytes >> 20});
			}
		}
		r.devices.push_back(std::move(dr));
	}
	// Which device each is, as the layout knows it (Slurm's records, the
	// driver, hwloc): only valid values are sent, none at all when nothing is
	// known (a version 1 report, which older controllers read too).
	for (size_t i = 0; i < devices.size() && i < max_report_devices; ++i) {
		DeviceIdentity id =
		        sendable_identity(static_cast<int>(i), devices[i].uuid, devices[i].pci_bus_id);
		if (!id.uuid.empty() || !id.pci_bus_id.empty())
			r.identities.push_back(std::move(id));
	}
	return r;
}

NodeAgent::Attempt NodeAgent::attempt(const std::string &host, const std::vector<DeviceSample> &samples,
                                      const std::string &bind_address)
{
	const Report report = build_report(samples);
	auto sealed = io_.seal(encode_report(report));
	if (!sealed)
		return {Attempt::SealFailed, sealed.error()};
	auto exchanged = io_.exchange(host, settings_.port, *sealed, bind_address, settings_.timeout);
	if (!exchanged.reply)
		return {exchanged.bind_address_not_local ? Attempt::BindNotLocal : Attempt::Unreachable,
		        host + ": " + exchanged.reply.error()};
	auto opened = io_.open(*exchanged.reply);
	if (!opened || opened->replayed || !uid_allowed(settings_.controller_uids, opened->uid))
		return {Attempt::BadAnswer,
		        host + ": answer not sealed by the controller (" +
		                (opened ? (opened->replayed ? "replayed"
		                                            : "uid " + std::to_string(opened->uid))
		                        : opened.error()) +
		                ")"};
	auto orders = parse_orders(opened->payload);
	if (!orders || orders->node != settings_.node || orders->seq != report.seq)
		return {Attempt::BadAnswer,
		        host + ": answer is not for this report" + (orders ? "" : ": " + orders.error())};
	obey(*orders);
	return {Attempt::Delivered, ""};
}

void NodeAgent::report_once()
{
	std::vector<DeviceSample> samples;
	if (auto sampled = backend_->sample(); sampled)
		samples = std::move(*sampled);
	else if (sampled.error() != last_failure_) {
		last_failure_ = sampled.error();
		log_error("reclaim agent: telemetry (" + std::string(backend_->name()) +
		          "): " + last_failure_ + "; reporting no devices (nothing here is lent)");
	}
	struct AfterReport {
		NodeAgent &agent;
		const std::vector<DeviceSample> &samples;
		~AfterReport()
		{
			try {
				agent.write_metrics(samples);
			} catch (const std::exception &e) {
				log_error(std::string("reclaim agent: metrics: ") + e.what());
			}
		}
	} after{*this, samples};
	std::string failure;
	for (const std::string &host : settings_.controllers) {
		Attempt tried = attempt(host, samples, settings_.bind_address);
		if (tried.kind == Attempt::BindNotLocal) // the node's address is not this host's: from any
			tried = attempt(host, samples, "");
		if (tried.kind == Attempt::SealFailed) {
			log_error("reclaim agent: cannot seal the report: " + tried.why);
			return;
		}
		if (tried.kind == Attempt::Delivered) {
			if (!last_failure_.empty())
				log_info("reclaim agent: reporting to " + host + " again");
			last_failure_.clear();
			return;
		}
		if (tried.kind == Attempt::BadAnswer) {
			failure = tried.why;
			break;
		}
		failure += (failure.empty() ? "" : "; ") + tried.why;
	}
	if (failure != last_failure_) {
		last_failure_ = failure;
		log_error("reclaim agent: report not delivered: " + failure);
	}
}

std::chrono::milliseconds NodeAgent::next_delay(bool first)
{
	const double u = std::clamp(io_.random ? io_.random() : 0.5, 0.0, 1.0);
	const double interval = std::chrono::duration<double, std::milli>(settings_.interval).count();
	const double millis = first ? u * interval : interval * (0.9 + 0.2 * u);
	return std::chrono::milliseconds(static_cast<int64_t>(millis));
}

void NodeAgent::obey(const Orders &orders)
{
	const auto now = std::chrono::steady_clock::now();
	std::lock_guard<std::mutex> guard(mutex_);
	std::map<uint32_t, Stop> next;
	for (const StopOrder &o : orders.stops) {
		const auto due = now + Seconds(std::max<int64_t>(0, o.in_seconds));
		auto old = stops_.find(o.job);
		Stop s{due, false, io_.boot_ticks ? io_.boot_ticks() : boot_ticks_now()};
		if (old != stops_.end()) // keep the earlier deadline: a late answer never postpones a stop
			s = {std::min(old->second.due, due), old->second.done, old->second.ordered_at};
		next.emplace(o.job, s);
	}
	stops_ = std::move(next);
	holders_.clear();
	for (const SliceHolders &h : orders.slices) {
		if (h.unit < 0 || h.unit >= layout_.total_slices())
			continue;
		if (holders_.size() <= static_cast<size_t>(h.unit))
			holders_.resize(static_cast<size_t>(h.unit) + 1);
		holders_[static_cast<size_t>(h.unit)] = {h.owner, h.borrower};
	}
}

std::vector<SliceJobs> NodeAgent::slice_holders() const
{
	std::lock_guard<std::mutex> guard(mutex_);
	return holders_;
}

void NodeAgent::write_metrics(const std::vector<DeviceSample> &samples)
{
	if (settings_.metrics_dir.empty() && settings_.dcgm_job_mapping_dir.empty())
		return;
	if (!io_.write_public)
		return;
	const std::vector<SliceJobs> holders = slice_holders();
	std::string failure;
	if (!settings_.metrics_dir.empty()) {
		const Instant now = io_.wall_clock();
		std::vector<DeviceUse> use;
		for (const DeviceSample &s : samples) {
			if (s.device < 0 || static_cast<size_t>(s.device) >= last_active_.size())
				continue;
			Instant &active = last_active_[static_cast<size_t>(s.device)];
			if (s.busy_percent >= settings_.idle_below_percent)
				active = now;
			DeviceUse u;
			u.device = s.device;
			u.sampled = true;
			u.busy_percent = s.busy_percent;
			u.per_job = s.per_job;
			for (const JobUse &j : s.per_job ? s.jobs : std::vector<JobUse>{}) {
				auto same = std::find_if(u.job_busy_percent.begin(), u.job_busy_percent.end(),
				                         [&](const auto &x) { return x.first == j.job; });
				if (same != u.job_busy_percent.end())
					same->second += j.busy_percent;
				else if (j.job && u.job_busy_percent.size() < max_jobs_per_device)
					u.job_busy_percent.emplace_back(j.job, j.busy_percent);
			}
			u.last_activity_age_seconds =
			        static_cast<double>(std::max<int64_t>(0, (now - active).count()));
			use.push_back(std::move(u));
		}
		const std::string path = settings_.metrics_dir + "/flexslurm_node.prom";
		if (auto written =
		            io_.write_public(path, node_metrics_text(settings_.node, layout_, use, holders));
		    !written)
			failure = path + ": " + written.error();
	}
	if (!settings_.dcgm_job_mapping_dir.empty()) {
		auto map = dcgm_job_map(layout_, holders);
		if (!dcgm_ || *dcgm_ != map) {
			bool all = true;
			for (const DeviceSlices &d : layout_.devices()) {
				if (d.vendor != Vendor::Nvidia)
					continue;
				const std::string path =
				        settings_.dcgm_job_mapping_dir + "/" + std::to_string(d.vendor_index);
				const auto jobs = map.find(d.vendor_index);
				if (jobs == map.end()) {
					if (io_.remove)
						io_.remove(path);
				} else if (auto written = io_.write_public(path, dcgm_job_file(jobs->second));
				           !written) {
					all = false;
					failure +=
					        (failure.empty() ? "" : "; ") + path + ": " + written.error();
				}
			}
			if (all)
				dcgm_ = std::move(map);
			else
				dcgm_.reset(); // tried again next time
		}
	}
	if (failure != metrics_failure_) {
		metrics_failure_ = failure;
		if (!failure.empty())
			log_error("reclaim agent: metrics: " + failure);
	}
}

void NodeAgent::run_due_stops(std::chrono::steady_clock::time_point now)
{
	std::vector<std::tuple<uint32_t, bool, uint64_t>> due;
	{
		std::lock_guard<std::mutex> guard(mutex_);
		for (auto it = stops_.begin(); it != stops_.end();) {
			Stop &s = it->second;
			// An order outlives its purpose if the controller stops
			// answering: never act on one long after it was due (a
			// later job could reuse the id on a test cluster).
			if (now - s.due > stop_order_life) {
				it = stops_.erase(it);
				continue;
			}
			if (s.due <= now) {
				due.emplace_back(it->first, s.done, s.ordered_at);
				s.done = true;
			}
			++it;
		}
	}
	for (const auto &[job, done, ordered_at] : due) {
		const int killed = io_.kill_job(job, ordered_at);
		if (killed > 0 || !done)
			log_info("reclaim agent: hard stop of borrower JobId=" + std::to_string(job) + ": " +
			         std::to_string(killed) + " process(es) killed");
	}
}

std::map<uint32_t, std::chrono::steady_clock::time_point> NodeAgent::scheduled_stops() const
{
	std::lock_guard<std::mutex> guard(mutex_);
	std::map<uint32_t, std::chrono::steady_clock::time_point> out;
	for (const auto &[job, s] : stops_)
		out.emplace(job, s.due);
	return out;
}

void NodeAgent::loop()
{
	auto next_report = std::chrono::steady_clock::now() + next_delay(true);
	for (;;) {
		try {
			const auto now = std::chrono::steady_clock::now();
			if (now >= next_report) {
				report_once();
				next_report = now + next_delay(false);
			}
			run_due_stops(std::chrono::steady_clock::now());
		} catch (const std::exception &e) {
			log_error(std::string("reclaim agent: ") + e.what());
		} catch (...) {
			log_error("reclaim agent: unexpected failure");
		}
		std::unique_lock<std::mutex> lock(mutex_);
		// Wake at least every half second (hard stops are due to the
		// second), and when the next report is due.
		const auto until = std::min(next_report, std::chrono::steady_clock::now() +
		                                                 std::chrono::milliseconds(500));
		if (wake_.wait_until(lock, until, [this] { return stopping_; }))
			return;
	}
}

} // namespace flexslurm
