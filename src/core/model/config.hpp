// flexslurm.yaml's content: how each accelerator is cut into slices,
// where the inventory comes from, the lending policy and channel. Plain
// data and the rules that read it; the YAML loader is core/io/config.hpp.
#pragma once

#include "core/model/devices.hpp"
#include "core/model/lending.hpp"
#include "core/model/placement.hpp"
#include "core/util/node_name.hpp" // expand_node_name: the %n in the paths below
#include "core/util/result.hpp"
#include "core/util/time.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace flexslurm
{

constexpr int max_slices_per_device = 64;
// Bounds shared by the config, the slice layout file and the limits file:
// a device's memory (1 PiB: slices x memory never wrap) and a vendor's
// device index (from the device node's name: nvidia0..nvidia65535).
constexpr uint64_t max_device_memory_bytes = uint64_t{1} << 50;
constexpr int max_vendor_index = (1 << 16) - 1;

struct SliceRule {
	std::optional<Vendor> vendor; // unset: the default rule
	std::string model;            // empty: any model of the vendor
	int slices = 4;
	int compute_percent = 25;         // of the device, per slice
	int memory_percent = 25;          // of the device memory, per slice
	uint64_t device_memory_bytes = 0; // 0: as hwloc reports it
};

// How the node agents and the controller talk, and where telemetry comes
// from (lending: keys beside the policy's).
enum class TelemetrySource { Auto, Nvml, File, None };

struct LendingChannel {
	bool enabled = false;          // lending.enabled: nothing is lent unless an admin says so
	uint16_t port = 6830;          // slurmctld listens here for agent reports
	Seconds report_interval{5};    // each agent samples and reports this often
	Seconds telemetry_timeout{30}; // no report that long: the node's slices count as busy
	Seconds hard_stop_after{5};    // after the grace, the agent kills what is left
	TelemetrySource telemetry = TelemetrySource::Auto;         // auto: each vendor's own library
	std::string telemetry_dir = "/run/flexslurm/telemetry/%n"; // the file source; may hold %n
};

struct Config {
	std::string source = "<built-in defaults>";
	std::string topology_xml;        // empty: the live system; may hold %n
	std::string device_dir = "/dev"; // may hold %n
	// Where slurmd leaves the node's slice layout for the SPANK plugin in
	// slurmstepd, which must not load hwloc (srun and sbatch load it too).
	std::string layout_file = default_layout_file;
	// Where the NVIDIA driver says which minor number is which PCI device
	// (one <bus id>/information per GPU); may hold %n.
	std::string nvidia_proc_dir = "/proc/driver/nvidia/gpus";
	SliceRule default_rule;
	std::vector<SliceRule> classes;
	// Devices never sliced: GRES types, UUIDs or PCI bus ids.
	std::vector<std::string> exclude;
	Placement default_placement = Placement::BestFit;
	LendingPolicy lending;
	LendingChannel channel;
	std::vector<std::pair<std::string, Placement>> partition_placement;

	Placement placement_for(std::string_view partition) const noexcept;

	// The most specific rule: vendor and model, then vendor, then default.
	const SliceRule &rule_for(const Accelerator &accel) const noexcept;

	static Config defaults() { return Config{}; }
	// The YAML loader (core/io/config.hpp; defined there, in the core
	// library, which links libyaml): a file, or a text named source_name
	// in errors.
	// A config is a few KiB: a larger file is refused as a runaway one.
	static constexpr size_t max_file_bytes = size_t{1} << 20;
	static Result<Config> from_file(const std::string &path);
	static Result<Config> from_string(const std::string &text, const std::string &source_name);
};

// "10m", "60s", "1h", "90": a duration; nullopt if malformed, zero or
// longer than max_duration_seconds (68 years, what a stop order carries).
constexpr int64_t max_duration_seconds = 2147483647;
std::optional<Seconds> parse_duration(std::string_view text) noexcept;

// "auto", "nvml", "file", "none" (flexslurm.yaml's telemetry key).
std::optional<TelemetrySource> parse_telemetry_source(std::string_view name) noexcept;
std::string telemetry_sources_allowed(); // "auto, nvml, file or none"

// "80GiB", "512M", "1048576": binary units, case-insensitive.
std::optional<uint64_t> parse_size(std::string_view text) noexcept;

} // namespace flexslurm
