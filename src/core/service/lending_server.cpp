// SPDX-License-Identifier: GPL-2.0-or-later
// The lending server's life: construction, its threads (the tick's and the
// writer's), standing by and reconfiguring. The tick is in
// lending_server_tick.cpp, the node reports, admin requests and select_p_*
// calls in lending_server_requests.cpp, the files in lending_server_files.cpp.
#include "core/service/lending_server.hpp"

#include "core/io/file_io.hpp"
#include "core/util/log.hpp"

#include <algorithm>

namespace flexslurm
{

namespace
{

Instant seconds_of(std::chrono::steady_clock::time_point t)
{
	return Instant(std::chrono::duration_cast<Seconds>(t.time_since_epoch()));
}

} // namespace

ServerIo ServerIo::production(const MungeEndpoint &munge)
{
	ServerIo io;
	io.steady_clock = [] { return seconds_of(std::chrono::steady_clock::now()); };
	io.wall_clock = [] {
		return std::chrono::time_point_cast<Seconds>(std::chrono::system_clock::now());
	};
	io.seal = [munge](std::string_view payload) { return munge_seal(munge, payload); };
	io.open = [munge](std::string_view cred) { return munge_open(munge, cred); };
	io.listen = [](uint16_t port, Listener::Handler handler) {
		return Listener::start("", port, std::move(handler));
	};
	io.write_file = [](const std::string &path, const std::string &text, bool sync) {
		return write_file_atomically(path, text, 0600, sync);
	};
	io.write_public = [](const std::string &path, const std::string &text) {
		return write_file_atomically(path, text, 0644, false);
	};
	return io;
}

LendingServer::LendingServer(ServerSettings settings, LendingController &controller, ServerIo io)
    : settings_(std::move(settings)), controller_(controller), io_(std::move(io)),
      book_(settings_.policy, settings_.telemetry_timeout, settings_.hard_stop_after),
      intake_(rules(), take_opened)
{
}

LendingServer::~LendingServer()
{
	{
		std::lock_guard<std::mutex> guard(stop_mutex_);
		stopping_ = true;
	}
	stop_.notify_all();
	if (thread_.joinable())
		thread_.join();
	{
		std::lock_guard<std::mutex> guard(writer_mutex_);
		writer_stopping_ = true; // after what is pending is written
	}
	writer_wake_.notify_all();
	if (writer_.joinable())
		writer_.join();
	listener_.reset();
}

void LendingServer::start()
{
	start_writer();
	thread_ = std::thread([this] { loop(); });
}

void LendingServer::start_writer()
{
	writer_ = std::thread([this] { writer_loop(); });
}

void LendingServer::hand_over(BookSnapshot &&snapshot, bool urgent)
{
	if (!writer_.joinable()) {
		save(std::move(snapshot), urgent);
		return;
	}
	{
		std::lock_guard<std::mutex> guard(writer_mutex_);
		pending_ = std::move(snapshot);
		pending_urgent_ = pending_urgent_ || urgent;
	}
	writer_wake_.notify_one();
}

void LendingServer::writer_loop()
{
	for (;;) {
		std::optional<BookSnapshot> snapshot;
		bool urgent = false;
		{
			std::unique_lock<std::mutex> lock(writer_mutex_);
			writer_wake_.wait(lock, [this] { return pending_ || writer_stopping_; });
			if (!pending_)
				return;
			snapshot = std::move(pending_);
			pending_.reset();
			urgent = std::exchange(pending_urgent_, false);
		}
		try {
			save(std::move(*snapshot), urgent);
		} catch (const std::exception &e) {
			log_error(std::string("lending: writing the state: ") + e.what());
		} catch (...) {
			log_error("lending: writing the state: unexpected failure");
		}
	}
}

void LendingServer::loop()
{
	for (;;) {
		try {
			tick();
		} catch (const std::exception &e) {
			log_error(std::string("lending: ") + e.what());
		} catch (...) {
			log_error("lending: unexpected failure");
		}
		std::unique_lock<std::mutex> lock(stop_mutex_);
		if (stop_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; }))
			return;
	}
}

void LendingServer::stand_by()
{
	if (in_control_)
		log_info("lending: not in control: report port closed, standing by");
	in_control_ = false;
	listener_.reset();
	next_listen_ = {};
	if (!restored_)
		return;
	restored_ = false;
	{
		std::lock_guard<std::mutex> guard(writer_mutex_);
		pending_.reset(); // never written by a controller not in control
		pending_urgent_ = false;
	}
	forget_saved_ = true;
	std::lock_guard<std::mutex> guard(book_mutex_);
	book_.clear();
	snapshot_revision_ = ~uint64_t{0};
	snapshot_at_.reset();
	totals_jobs_.clear();
	recorded_.clear();
}

void LendingServer::reconfigure(const ServerSettings &settings)
{
	{
		std::lock_guard<std::mutex> guard(book_mutex_);
		book_.set_policy(settings.policy, settings.telemetry_timeout, settings.hard_stop_after);
	}
	new_port_ = settings.port;
	log_info("lending: settings reloaded (grace " + std::to_string(settings.policy.grace.count()) +
	         " s, idle window " + std::to_string(settings.policy.idle_window.count()) + " s)");
}

// Under the controller's job write lock.
} // namespace flexslurm
