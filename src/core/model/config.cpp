// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/config.hpp"

#include "core/util/names.hpp"

#include <cctype>
#include <limits>

namespace flexslurm
{

namespace
{

constexpr NameTable<TelemetrySource> telemetry_source_names[] = {
        {TelemetrySource::Auto, "auto"},
        {TelemetrySource::Nvml, "nvml"},
        {TelemetrySource::File, "file"},
        {TelemetrySource::None, "none"},
};

} // namespace

std::optional<TelemetrySource> parse_telemetry_source(std::string_view name) noexcept
{
	return value_of(telemetry_source_names, name);
}

std::string telemetry_sources_allowed()
{
	return names_allowed(telemetry_source_names);
}

const SliceRule &Config::rule_for(const Accelerator &accel) const noexcept
{
	const SliceRule *vendor_match = nullptr;
	for (const SliceRule &r : classes) {
		if (r.vendor != accel.vendor)
			continue;
		// A class names the short model ("h100") or the exact GRES type
		// ("nvidia_h100_80gb_hbm3", as AutoDetect names it).
		if (!r.model.empty() &&
		    (r.model == accel.model ||
		     r.model == gres_type_for(accel.vendor, accel.model_name, accel.pci_device_id)))
			return r;
		if (r.model.empty() && !vendor_match)
			vendor_match = &r;
	}
	return vendor_match ? *vendor_match : default_rule;
}

Placement Config::placement_for(std::string_view partition) const noexcept
{
	for (const auto &[name, policy] : partition_placement)
		if (name == partition)
			return policy;
	return default_placement;
}

std::optional<Seconds> parse_duration(std::string_view text) noexcept
{
	int64_t v = 0;
	size_t i = 0;
	while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
		if (v > 100000000)
			return std::nullopt;
		v = v * 10 + (text[i] - '0');
		++i;
	}
	if (i == 0)
		return std::nullopt;
	const std::string_view unit = text.substr(i);
	int64_t scale = 0;
	if (unit.empty() || unit == "s")
		scale = 1;
	else if (unit == "m")
		scale = 60;
	else if (unit == "h")
		scale = 3600;
	// At most what a stop order carries (2^31-1 s, 68 years): deadlines
	// built from it stay within what the state file and the wire accept.
	if (scale == 0 || v == 0 || v * scale > max_duration_seconds)
		return std::nullopt;
	return Seconds(v * scale);
}

std::optional<uint64_t> parse_size(std::string_view text) noexcept
{
	size_t i = 0;
	uint64_t v = 0;
	while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
		const auto d = static_cast<uint64_t>(text[i] - '0');
		if (v > (std::numeric_limits<uint64_t>::max() - d) / 10)
			return std::nullopt;
		v = v * 10 + d;
		++i;
	}
	if (i == 0)
		return std::nullopt;
	std::string unit;
	for (; i < text.size(); ++i)
		unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(text[i]))));
	int shift = 0;
	if (unit.empty() || unit == "b")
		shift = 0;
	else if (unit == "k" || unit == "kib")
		shift = 10;
	else if (unit == "m" || unit == "mib")
		shift = 20;
	else if (unit == "g" || unit == "gib")
		shift = 30;
	else if (unit == "t" || unit == "tib")
		shift = 40;
	else
		return std::nullopt;
	if (shift && v > (std::numeric_limits<uint64_t>::max() >> shift))
		return std::nullopt;
	return v << shift;
}

} // namespace flexslurm
