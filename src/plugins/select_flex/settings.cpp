// SPDX-License-Identifier: GPL-2.0-or-later
#define FLEXSLURM_COMPAT_SELECT
#include "slurm_compat.h"

#include "plugins/select_flex/settings.hpp"

#include "core/io/file_io.hpp"
#include "core/model/placement.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>

namespace flexslurm::select_flex
{

namespace
{

constexpr const char *config_file_name = "flexslurm.yaml";

Config config = Config::defaults();

// The settings in force, kept in StateSaveLocation: a slurmctld that
// re-executes itself for `scontrol reconfigure` (23.11 and later) starts
// afresh, and keeps these when flexslurm.yaml was broken meanwhile.
std::string last_good_path()
{
	return state_save_dir() + "/flexslurm_config.last_good";
}

// Reads flexslurm.yaml into `config`: nullopt, or the one line saying why
// the file is refused (`config` unchanged then).
std::optional<std::string> load_config()
{
	char *path_c = get_extra_conf_path(const_cast<char *>(config_file_name));
	const std::string path = path_c ? path_c : config_file_name;
	xfree(path_c);
	struct stat st {
	};
	std::string text = "version: 1\n";
	if (stat(path.c_str(), &st) != 0 && errno == ENOENT) {
		// slurmctld reads its own configuration directory, never a
		// conf-cache: a missing file is the built-in defaults
		// (refuse_missing_config).
		info("select/flex: %s: not found; placement best_fit everywhere", path.c_str());
		config = Config::defaults();
	} else {
		auto read = read_file_bounded(path, Config::max_file_bytes);
		if (!read)
			return path + ": cannot read: " + read.error();
		auto loaded = Config::from_string(*read, path);
		if (!loaded)
			return loaded.error();
		config = *loaded;
		text = std::move(*read);
		info("select/flex: placement %s by default, %zu partition override(s)",
		     std::string(placement_name(config.default_placement)).c_str(),
		     config.partition_placement.size());
	}
	static std::string saved_text; // written again only when it changes
	if (text != saved_text) {
		if (auto saved = write_file_atomically(last_good_path(), text, 0600, true); saved)
			saved_text = text;
		else
			error("select/flex: %s: %s", last_good_path().c_str(), saved.error().c_str());
	}
	return std::nullopt;
}

// A slurmctld that `scontrol reconfigure` re-executed (23.11 and later).
bool reexecuted_for_reconfigure()
{
	return getenv("SLURMCTLD_RECONF") != nullptr;
}

// The settings saved by the last good load_config, if any.
std::optional<Config> last_good_config()
{
	auto text = read_file_bounded(last_good_path(), Config::max_file_bytes);
	if (!text)
		return std::nullopt;
	auto loaded = Config::from_string(*text, last_good_path());
	return loaded ? std::optional<Config>(*loaded) : std::nullopt;
}

// Logs a refused file once per distinct reason: select_p_reconfigure runs
// on every partition or node update too.
std::string last_refusal;
void refused_on_reconfigure(const std::string &why)
{
	if (why == last_refusal)
		return;
	last_refusal = why;
	error("select/flex: reconfigure: %s; keeping the last good settings", why.c_str());
}

} // namespace

std::string state_save_dir()
{
	return slurm_conf.state_save_location ? slurm_conf.state_save_location : ".";
}

const Config &settings()
{
	return config;
}

void load_settings_at_start()
{
	std::optional<std::string> refused;
	try {
		refused = load_config();
	} catch (...) {
		refused = std::string(config_file_name) + ": unexpected failure reading it";
	}
	if (!refused)
		return;
	std::optional<Config> kept;
	if (reexecuted_for_reconfigure())
		kept = last_good_config();
	// A refused init would make Slurm retry the load and log the reason
	// twice before its own fatal: one line, then stop.
	if (!kept)
		fatal("select/flex: refusing to start: %s", refused->c_str());
	config = *kept;
	refused_on_reconfigure(*refused);
}

bool reload_settings()
{
	if (auto refused = load_config()) {
		refused_on_reconfigure(*refused);
		return false;
	}
	last_refusal.clear();
	return true;
}

} // namespace flexslurm::select_flex
