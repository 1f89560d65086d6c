#include "core/io/config.hpp"

#include <yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <set>

namespace flexslurm
{

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

namespace
{

// RAII owners of libyaml's C structs.
struct YamlParser {
	yaml_parser_t raw{};
	bool ready = false;
	YamlParser() : ready(yaml_parser_initialize(&raw) != 0) {}
	~YamlParser()
	{
		if (ready)
			yaml_parser_delete(&raw);
	}
	YamlParser(const YamlParser &) = delete;
	YamlParser &operator=(const YamlParser &) = delete;
};
struct YamlDocument {
	yaml_document_t raw{};
	bool loaded = false;
	YamlDocument() = default;
	~YamlDocument()
	{
		if (loaded)
			yaml_document_delete(&raw);
	}
	YamlDocument(const YamlDocument &) = delete;
	YamlDocument &operator=(const YamlDocument &) = delete;
};

// Turns a YAML document into a Config, stopping at the first bad value.
class ConfigReader
{
public:
	ConfigReader(std::string source, yaml_document_t *doc) : source_(std::move(source)), doc_(doc) {}

	Result<Config> read()
	{
		Config cfg;
		cfg.source = source_;
		yaml_node_t *root = yaml_document_get_root_node(doc_);
		if (!root) // an empty file (or only comments) is most likely a mistake: say so
			return Result<Config>::failure(
			        source_ +
			        ":1: (top level): the file is empty (allowed: the keys version, inventory, slicing, placement, lending; `version: 1` alone means the built-in defaults)");
		if (root->type != YAML_MAPPING_NODE)
			return fail(root, "(top level)", "must be a mapping",
			            "keys version, inventory, slicing, placement, lending");
		if (!each_key(root, "", {"version", "inventory", "slicing", "placement", "lending"},
		              [&](const std::string &key, yaml_node_t *k, yaml_node_t *v) {
			              if (key == "version") {
				              auto n = integer(k, v, "version", 1, 1, "1");
				              return n.has_value();
			              }
			              if (key == "inventory")
				              return read_inventory(v, cfg);
			              if (key == "placement")
				              return read_placement(v, cfg);
			              if (key == "lending")
				              return read_lending(v, cfg.lending, cfg.channel);
			              return read_slicing(v, cfg);
		              }))
			return Result<Config>::failure(error_);
		return cfg;
	}

private:
	std::string source_;
	yaml_document_t *doc_;
	std::string error_;

	static unsigned long line_of(const yaml_node_t *n) { return n->start_mark.line + 1; }

	// "<file>:<line>: <key>: <problem> (allowed: <allowed>)"
	bool set_error(const yaml_node_t *at, const std::string &key, const std::string &problem,
	               const std::string &allowed)
	{
		error_ = source_ + ":" + std::to_string(line_of(at)) + ": " + key + ": " + problem;
		if (!allowed.empty())
			error_ += " (allowed: " + allowed + ")";
		// Keys and values come from the file: a multi-line or quoted YAML
		// scalar must not break the one-line message (or forge log lines).
		std::string line;
		for (const char c : error_) {
			const auto u = static_cast<unsigned char>(c);
			if (u >= 0x20 && u != 0x7f) {
				line += c;
			} else {
				static constexpr char hex[] = "0123456789abcdef";
				line += c == '\n' ? std::string("\\n")
				                  : std::string("\\x") + hex[u >> 4] + hex[u & 0xf];
			}
		}
		error_ = std::move(line);
		return false;
	}
	Result<Config> fail(const yaml_node_t *at, const std::string &key, const std::string &problem,
	                    const std::string &allowed)
	{
		set_error(at, key, problem, allowed);
		return Result<Config>::failure(error_);
	}

	yaml_node_t *node(yaml_node_item_t i) { return yaml_document_get_node(doc_, i); }

	static std::string scalar(const yaml_node_t *n)
	{
		return std::string(reinterpret_cast<const char *>(n->data.scalar.value),
		                   n->data.scalar.length);
	}

	static std::string join(const std::string &prefix, const std::string &key)
	{
		return prefix.empty() ? key : prefix + "." + key;
	}

	template <class F>
	bool each_key(yaml_node_t *map, const std::string &prefix,
	              std::initializer_list<const char *> allowed, F &&f)
	{
		std::string allowed_list;
		for (const char *a : allowed)
			allowed_list += (allowed_list.empty() ? "" : ", ") + std::string(a);
		std::set<std::string> seen;
		for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
		     ++p) {
			yaml_node_t *k = node(p->key);
			yaml_node_t *v = node(p->value);
			if (k->type != YAML_SCALAR_NODE)
				return set_error(k, prefix.empty() ? "(key)" : prefix,
				                 "keys must be plain names", allowed_list);
			const std::string key = scalar(k);
			const std::string full = join(prefix, key);
			if (std::none_of(allowed.begin(), allowed.end(),
			                 [&](const char *a) { return key == a; }))
				return set_error(k, full, "unknown key", allowed_list);
			if (!seen.insert(key).second)
				return set_error(k, full, "given twice", "each key once");
			if (!f(key, k, v))
				return false;
		}
		return true;
	}

	std::optional<std::string> string_value(yaml_node_t *v, const std::string &key,
	                                        const std::string &allowed)
	{
		if (v->type != YAML_SCALAR_NODE) {
			set_error(v, key, "must be a single value", allowed);
			return std::nullopt;
		}
		return scalar(v);
	}

	std::optional<int> integer(yaml_node_t *, yaml_node_t *v, const std::string &key, int lo, int hi,
	                           const std::string &allowed)
	{
		auto s = string_value(v, key, allowed);
		if (!s)
			return std::nullopt;
		errno = 0;
		char *end = nullptr;
		const long n = std::strtol(s->c_str(), &end, 10);
		if (s->empty() || *end != '\0' || errno != 0) {
			set_error(v, key, "\"" + *s + "\" is not an integer", allowed);
			return std::nullopt;
		}
		if (n < lo || n > hi) {
			set_error(v, key, *s + " is out of range", allowed);
			return std::nullopt;
		}
		return static_cast<int>(n);
	}

	std::optional<std::string> path(yaml_node_t *v, const std::string &key)
	{
		const std::string allowed = "an absolute path, %n stands for the node name";
		auto s = string_value(v, key, allowed);
		if (!s)
			return std::nullopt;
		if (s->empty() || (*s)[0] != '/') {
			set_error(v, key, "\"" + *s + "\" is not an absolute path", allowed);
			return std::nullopt;
		}
		return s;
	}

	bool read_inventory(yaml_node_t *v, Config &cfg)
	{
		if (v->type != YAML_MAPPING_NODE)
			return set_error(v, "inventory", "must be a mapping",
			                 "keys topology_xml, device_dir, layout_file, nvidia_proc_dir");
		return each_key(v, "inventory",
		                {"topology_xml", "device_dir", "layout_file", "nvidia_proc_dir"},
		                [&](const std::string &key, yaml_node_t *, yaml_node_t *val) {
			                auto p = path(val, "inventory." + key);
			                if (!p)
				                return false;
			                (key == "topology_xml"      ? cfg.topology_xml
			                 : key == "device_dir"      ? cfg.device_dir
			                 : key == "nvidia_proc_dir" ? cfg.nvidia_proc_dir
			                                            : cfg.layout_file) = *p;
			                return true;
		                });
	}

	// A rule's keys; shares default to an even split of the device.
	bool read_rule(yaml_node_t *v, const std::string &prefix, SliceRule &rule, bool is_class)
	{
		const std::string what =
		        is_class
		                ? "keys vendor, model, slices, compute_percent, memory_percent, device_memory"
		                : "keys slices, compute_percent, memory_percent";
		if (v->type != YAML_MAPPING_NODE)
			return set_error(v, prefix, "must be a mapping", what);
		std::optional<int> compute, memory;
		yaml_node_t *compute_at = nullptr, *memory_at = nullptr;
		bool vendor_seen = false;
		auto body = [&](const std::string &key, yaml_node_t *k, yaml_node_t *val) {
			const std::string full = prefix + "." + key;
			if (key == "slices") {
				auto n = integer(k, val, full, 1, max_slices_per_device,
				                 "an integer from 1 to " +
				                         std::to_string(max_slices_per_device));
				if (!n)
					return false;
				rule.slices = *n;
			} else if (key == "compute_percent" || key == "memory_percent") {
				auto n = integer(k, val, full, 1, 100, "an integer from 1 to 100");
				if (!n)
					return false;
				(key == "compute_percent" ? compute : memory) = n;
				(key == "compute_percent" ? compute_at : memory_at) = val;
			} else if (key == "vendor") {
				auto s = string_value(val, full, "nvidia, amd, ascend");
				if (!s)
					return false;
				rule.vendor = parse_vendor(*s);
				if (!rule.vendor)
					return set_error(val, full, "unknown vendor \"" + *s + "\"",
					                 "nvidia, amd, ascend");
				vendor_seen = true;
			} else if (key == "model") {
				const std::string allowed =
				        "a GRES type: lowercase letters, digits, '-', '_', '.'";
				auto s = string_value(val, full, allowed);
				if (!s)
					return false;
				if (s->empty() || std::any_of(s->begin(), s->end(), [](char c) {
					    return !(std::islower(static_cast<unsigned char>(c)) ||
					             std::isdigit(static_cast<unsigned char>(c)) ||
					             c == '-' || c == '_' || c == '.');
				    }))
					return set_error(val, full, "\"" + *s + "\" is not a GRES type name",
					                 allowed);
				rule.model = *s;
			} else { // device_memory
				const std::string allowed =
				        "a size such as 80GiB, 16384MiB or a byte count, at most 1024TiB";
				auto s = string_value(val, full, allowed);
				if (!s)
					return false;
				auto bytes = parse_size(*s);
				if (!bytes || *bytes == 0 || *bytes > max_device_memory_bytes)
					return set_error(val, full, "\"" + *s + "\" is not a size", allowed);
				rule.device_memory_bytes = *bytes;
			}
			return true;
		};
		const bool ok =
		        is_class ? each_key(v, prefix,
		                            {"vendor", "model", "slices", "compute_percent", "memory_percent",
		                             "device_memory"},
		                            body)
		                 : each_key(v, prefix, {"slices", "compute_percent", "memory_percent"}, body);
		if (!ok)
			return false;
		if (is_class && !vendor_seen)
			return set_error(v, prefix + ".vendor", "missing", "nvidia, amd, ascend");
		rule.compute_percent = compute.value_or(100 / rule.slices);
		rule.memory_percent = memory.value_or(100 / rule.slices);
		if (rule.slices * rule.compute_percent > 100)
			return set_error(compute_at ? compute_at : v, prefix + ".compute_percent",
			                 std::to_string(rule.slices) + " slices x " +
			                         std::to_string(rule.compute_percent) + "% exceed the device",
			                 "slices x compute_percent <= 100");
		if (rule.slices * rule.memory_percent > 100)
			return set_error(memory_at ? memory_at : v, prefix + ".memory_percent",
			                 std::to_string(rule.slices) + " slices x " +
			                         std::to_string(rule.memory_percent) +
			                         "% exceed the device memory",
			                 "slices x memory_percent <= 100");
		return true;
	}

	std::optional<Placement> policy(yaml_node_t *v, const std::string &key)
	{
		const std::string allowed = "best_fit, spread";
		auto s = string_value(v, key, allowed);
		if (!s)
			return std::nullopt;
		auto p = parse_placement(*s);
		if (!p)
			set_error(v, key, "unknown placement \"" + *s + "\"", allowed);
		return p;
	}

	bool read_placement(yaml_node_t *v, Config &cfg)
	{
		if (v->type != YAML_MAPPING_NODE)
			return set_error(v, "placement", "must be a mapping", "keys default, partitions");
		return each_key(v, "placement", {"default", "partitions"},
		                [&](const std::string &key, yaml_node_t *, yaml_node_t *val) {
			                if (key == "default") {
				                auto p = policy(val, "placement.default");
				                if (p)
					                cfg.default_placement = *p;
				                return p.has_value();
			                }
			                if (val->type != YAML_MAPPING_NODE)
				                return set_error(val, "placement.partitions",
				                                 "must be a mapping",
				                                 "partition: best_fit | spread");
			                for (yaml_node_pair_t *pr = val->data.mapping.pairs.start;
			                     pr < val->data.mapping.pairs.top; ++pr) {
				                yaml_node_t *k = node(pr->key);
				                if (k->type != YAML_SCALAR_NODE || scalar(k).empty())
					                return set_error(k, "placement.partitions",
					                                 "keys must be partition names",
					                                 "partition: best_fit | spread");
				                const std::string name = scalar(k);
				                const std::string full = "placement.partitions." + name;
				                for (const auto &pp : cfg.partition_placement)
					                if (pp.first == name)
						                return set_error(k, full, "given twice",
						                                 "each partition once");
				                auto p = policy(node(pr->value), full);
				                if (!p)
					                return false;
				                cfg.partition_placement.emplace_back(name, *p);
			                }
			                return true;
		                });
	}

	std::optional<double> percent(yaml_node_t *v, const std::string &key)
	{
		const std::string allowed = "a number from 0 to 100";
		auto s = string_value(v, key, allowed);
		if (!s)
			return std::nullopt;
		char *end = nullptr;
		errno = 0;
		const double d = std::strtod(s->c_str(), &end);
		if (s->empty() || *end != '\0' || errno != 0 || !(d >= 0 && d <= 100)) {
			set_error(v, key, "\"" + *s + "\" is not a percentage", allowed);
			return std::nullopt;
		}
		return d;
	}

	std::optional<Seconds> duration(yaml_node_t *v, const std::string &key)
	{
		const std::string allowed =
		        "a duration such as 90s, 10m, 1h or a number of seconds, at most 2147483647 s";
		auto s = string_value(v, key, allowed);
		if (!s)
			return std::nullopt;
		auto d = parse_duration(*s);
		if (!d)
			set_error(v, key, "\"" + *s + "\" is not a duration", allowed);
		return d;
	}

	bool read_lending(yaml_node_t *v, LendingPolicy &p, LendingChannel &c)
	{
		if (v->type != YAML_MAPPING_NODE)
			return set_error(v, "lending", "must be a mapping",
			                 "keys enabled, idle_below_percent, idle_window, busy_above_percent, "
			                 "busy_samples, "
			                 "min_loan, max_loan, cooldown, grace, never_lend_partitions, port, "
			                 "report_interval, telemetry_timeout, hard_stop_after, telemetry, "
			                 "telemetry_dir");
		yaml_node_t *busy_at = nullptr, *max_at = nullptr;
		const bool ok = each_key(
		        v, "lending",
		        {"enabled", "idle_below_percent", "idle_window", "busy_above_percent", "busy_samples",
		         "min_loan", "max_loan", "cooldown", "grace", "never_lend_partitions", "port",
		         "report_interval", "telemetry_timeout", "hard_stop_after", "telemetry",
		         "telemetry_dir"},
		        [&](const std::string &key, yaml_node_t *k, yaml_node_t *val) {
			        const std::string full = "lending." + key;
			        if (key == "enabled") {
				        auto b = string_value(val, full, "true or false");
				        if (!b)
					        return false;
				        if (*b != "true" && *b != "false")
					        return set_error(val, full, "\"" + *b + "\" is not a boolean",
					                         "true or false");
				        c.enabled = *b == "true";
				        return true;
			        }
			        if (key == "port") {
				        auto n =
				                integer(k, val, full, 1, 65535, "a TCP port from 1 to 65535");
				        if (n)
					        c.port = static_cast<uint16_t>(*n);
				        return n.has_value();
			        }
			        if (key == "telemetry") {
				        const std::string allowed = "auto, nvml, file or none";
				        auto t = string_value(val, full, allowed);
				        if (!t)
					        return false;
				        if (*t == "auto")
					        c.telemetry = TelemetrySource::Auto;
				        else if (*t == "nvml")
					        c.telemetry = TelemetrySource::Nvml;
				        else if (*t == "file")
					        c.telemetry = TelemetrySource::File;
				        else if (*t == "none")
					        c.telemetry = TelemetrySource::None;
				        else
					        return set_error(val, full, "unknown source \"" + *t + "\"",
					                         allowed);
				        return true;
			        }
			        if (key == "telemetry_dir") {
				        auto d = string_value(val, full,
				                              "an absolute directory (may hold %n)");
				        if (!d)
					        return false;
				        if (d->empty() || d->front() != '/')
					        return set_error(val, full, "must be an absolute path",
					                         "an absolute directory (may hold %n)");
				        c.telemetry_dir = *d;
				        return true;
			        }
			        if (key == "report_interval" || key == "telemetry_timeout" ||
			            key == "hard_stop_after") {
				        auto d = duration(val, full);
				        if (!d)
					        return false;
				        (key == "report_interval"     ? c.report_interval
				         : key == "telemetry_timeout" ? c.telemetry_timeout
				                                      : c.hard_stop_after) = *d;
				        return true;
			        }
			        if (key == "idle_below_percent" || key == "busy_above_percent") {
				        auto d = percent(val, full);
				        if (!d)
					        return false;
				        (key == "idle_below_percent" ? p.idle_below_percent
				                                     : p.busy_above_percent) = *d;
				        if (key == "busy_above_percent")
					        busy_at = val;
				        return true;
			        }
			        if (key == "busy_samples") {
				        auto n = integer(k, val, full, 1, 100, "an integer from 1 to 100");
				        if (n)
					        p.busy_samples = *n;
				        return n.has_value();
			        }
			        if (key == "never_lend_partitions") {
				        if (val->type != YAML_SEQUENCE_NODE)
					        return set_error(val, full, "must be a list",
					                         "a list of partition names");
				        for (yaml_node_item_t *it = val->data.sequence.items.start;
				             it < val->data.sequence.items.top; ++it) {
					        auto name = string_value(node(*it), full,
					                                 "a list of partition names");
					        if (!name || name->empty())
						        return name ? set_error(node(*it), full,
						                                "empty partition name",
						                                "a list of partition names")
						                    : false;
					        p.never_lend_partitions.push_back(*name);
				        }
				        return true;
			        }
			        auto d = duration(val, full);
			        if (!d)
				        return false;
			        if (key == "idle_window")
				        p.idle_window = *d;
			        else if (key == "min_loan")
				        p.min_loan = *d;
			        else if (key == "max_loan") {
				        p.max_loan = *d;
				        max_at = val;
			        } else if (key == "cooldown")
				        p.cooldown = *d;
			        else
				        p.grace = *d;
			        return true;
		        });
		if (!ok)
			return false;
		if (p.busy_above_percent <= p.idle_below_percent)
			return set_error(busy_at ? busy_at : v, "lending.busy_above_percent",
			                 "must be above idle_below_percent",
			                 "busy_above_percent > idle_below_percent");
		if (p.max_loan < p.min_loan)
			return set_error(max_at ? max_at : v, "lending.max_loan", "shorter than min_loan",
			                 "max_loan >= min_loan");
		if (c.telemetry_timeout < 2 * c.report_interval)
			return set_error(v, "lending.telemetry_timeout", "shorter than two report intervals",
			                 "telemetry_timeout >= 2 x report_interval");
		return true;
	}

	// Devices never sliced: each item a GRES type, a UUID or a PCI bus id.
	bool read_exclude(yaml_node_t *v, Config &cfg)
	{
		const char *allowed = "a list of GRES types, UUIDs or PCI bus ids";
		if (v->type != YAML_SEQUENCE_NODE)
			return set_error(v, "slicing.exclude", "must be a list", allowed);
		for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
		     ++it) {
			auto item = string_value(node(*it), "slicing.exclude", allowed);
			if (!item)
				return false;
			if (item->empty() || item->size() > 128 ||
			    std::any_of(item->begin(), item->end(), [](char c) {
				    return std::isspace(static_cast<unsigned char>(c)) || c == ',';
			    }))
				return set_error(node(*it), "slicing.exclude",
				                 "\"" + *item + "\" is not a device name", allowed);
			cfg.exclude.push_back(*item);
		}
		return true;
	}

	bool read_slicing(yaml_node_t *v, Config &cfg)
	{
		if (v->type != YAML_MAPPING_NODE)
			return set_error(v, "slicing", "must be a mapping", "keys default, classes, exclude");
		return each_key(
		        v, "slicing", {"default", "classes", "exclude"},
		        [&](const std::string &key, yaml_node_t *, yaml_node_t *val) {
			        if (key == "default")
				        return read_rule(val, "slicing.default", cfg.default_rule, false);
			        if (key == "exclude")
				        return read_exclude(val, cfg);
			        if (val->type != YAML_SEQUENCE_NODE)
				        return set_error(val, "slicing.classes", "must be a list",
				                         "a list of mappings with a vendor key");
			        int i = 0;
			        for (yaml_node_item_t *it = val->data.sequence.items.start;
			             it < val->data.sequence.items.top; ++it, ++i) {
				        SliceRule rule;
				        const std::string prefix =
				                "slicing.classes[" + std::to_string(i) + "]";
				        yaml_node_t *item = node(*it);
				        if (!read_rule(item, prefix, rule, true))
					        return false;
				        for (const SliceRule &other : cfg.classes)
					        if (other.vendor == rule.vendor && other.model == rule.model)
						        return set_error(item, prefix,
						                         "a second rule for " +
						                                 std::string(vendor_name(
						                                         *rule.vendor)) +
						                                 (rule.model.empty()
						                                          ? ""
						                                          : " " + rule.model),
						                         "one rule per vendor and model");
				        cfg.classes.push_back(rule);
			        }
			        return true;
		        });
	}
};

} // namespace

Result<Config> Config::from_string(const std::string &text, const std::string &source_name)
{
	YamlParser parser;
	if (!parser.ready)
		return Result<Config>::failure(source_name + ": cannot initialise the YAML parser");
	yaml_parser_set_input_string(&parser.raw, reinterpret_cast<const unsigned char *>(text.data()),
	                             text.size());
	YamlDocument doc;
	doc.loaded = yaml_parser_load(&parser.raw, &doc.raw) != 0;
	if (!doc.loaded) {
		const auto line = parser.raw.problem_mark.line + 1;
		return Result<Config>::failure(
		        source_name + ":" + std::to_string(line) +
		        ": (YAML syntax): " + (parser.raw.problem ? parser.raw.problem : "unreadable") +
		        " (allowed: a YAML mapping, see etc/flexslurm.yaml)");
	}
	ConfigReader reader(source_name, &doc.raw);
	return reader.read();
}

bool in_conf_cache(std::string_view config_path) noexcept
{
	const size_t slash = config_path.rfind('/');
	if (slash == std::string_view::npos)
		return false;
	std::string_view dir = config_path.substr(0, slash);
	// /run/slurm/conf: the link slurmd makes to its conf-cache for clients.
	if (dir == "/run/slurm/conf")
		return true;
	const size_t parent = dir.rfind('/');
	return dir.substr(parent == std::string_view::npos ? 0 : parent + 1) == "conf-cache";
}

std::optional<std::string> refuse_missing_config(const std::string &path, bool configless_slurmd)
{
	if (!configless_slurmd)
		return std::nullopt;
	return "configless slurmd: " + path +
	       " not found; slurmctld does not send flexslurm.yaml: install the controller's copy there on "
	       "every node (Slurm leaves it in place; a file holding `version: 1` means the built-in defaults)";
}

Result<Config> Config::from_file(const std::string &path)
{
	std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path.c_str(), "re"), &std::fclose);
	if (!f)
		return Result<Config>::failure(path + ": cannot open: " + std::strerror(errno));
	std::string text;
	std::array<char, 4096> buf{};
	size_t n;
	constexpr size_t max_config_bytes = 1 << 20; // a config is a few KiB; refuse a runaway file
	while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) {
		text.append(buf.data(), n);
		if (text.size() > max_config_bytes)
			return Result<Config>::failure(path + ": larger than 1 MiB, not a flexslurm config");
	}
	if (std::ferror(f.get()))
		return Result<Config>::failure(path + ": cannot read: " + std::strerror(errno));
	return from_string(text, path);
}

} // namespace flexslurm
