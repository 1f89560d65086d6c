// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/config.hpp"

#include "core/io/config_yaml.hpp"
#include "core/io/file_io.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace flexslurm
{

namespace
{

// Turns a YAML document into a Config, stopping at the first bad value.
class ConfigReader : YamlReader
{
public:
	using YamlReader::YamlReader;

	Result<Config> read()
	{
		Config cfg;
		cfg.source = source_;
		yaml_node_t *root = yaml_document_get_root_node(doc_);
		if (!root) // an empty file (or only comments) is most likely a mistake: say so
			return Result<Config>::failure(
			        source_ +
			        ":1: (top level): the file is empty (allowed: the keys version, inventory, slicing, placement, lending, metrics; `version: 1` alone means the built-in defaults)");
		if (root->type != YAML_MAPPING_NODE)
			return fail(root, "(top level)", "must be a mapping",
			            "keys version, inventory, slicing, placement, lending, metrics");
		if (!each_key(root, "",
		              {"version", "inventory", "slicing", "placement", "lending", "metrics"},
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
			              if (key == "metrics")
				              return read_metrics(v, cfg.metrics);
			              return read_slicing(v, cfg);
		              }))
			return Result<Config>::failure(error_);
		return cfg;
	}

private:
	Result<Config> fail(const yaml_node_t *at, const std::string &key, const std::string &problem,
	                    const std::string &allowed)
	{
		set_error(at, key, problem, allowed);
		return Result<Config>::failure(error_);
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

	bool read_metrics(yaml_node_t *v, MetricsConfig &m)
	{
		if (v->type != YAML_MAPPING_NODE)
			return set_error(
			        v, "metrics", "must be a mapping",
			        "keys node_textfile_dir, controller_textfile_dir, dcgm_job_mapping_dir");
		return each_key(v, "metrics",
		                {"node_textfile_dir", "controller_textfile_dir", "dcgm_job_mapping_dir"},
		                [&](const std::string &key, yaml_node_t *, yaml_node_t *val) {
			                auto p = path(val, "metrics." + key);
			                if (!p)
				                return false;
			                (key == "node_textfile_dir"         ? m.node_textfile_dir
			                 : key == "controller_textfile_dir" ? m.controller_textfile_dir
			                                                    : m.dcgm_job_mapping_dir) = *p;
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
		return parsed(v, key, "best_fit, spread", "unknown placement ", "",
		              [](const std::string &s) { return parse_placement(s); });
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

	bool read_lending(yaml_node_t *v, LendingPolicy &p, LendingChannel &c)
	{
		if (v->type != YAML_MAPPING_NODE)
			return set_error(
			        v, "lending", "must be a mapping",
			        "keys enabled, idle_below_percent, idle_window, busy_above_percent, busy_samples, min_loan, max_loan, cooldown, grace, never_lend_partitions, whole_devices, free_slices, port, report_interval, telemetry_timeout, hard_stop_after, telemetry, telemetry_dir");
		yaml_node_t *busy_at = nullptr, *max_at = nullptr;
		const bool ok = each_key(
		        v, "lending",
		        {"enabled", "idle_below_percent", "idle_window", "busy_above_percent", "busy_samples",
		         "min_loan", "max_loan", "cooldown", "grace", "never_lend_partitions",
		         "whole_devices", "free_slices", "port", "report_interval", "telemetry_timeout",
		         "hard_stop_after", "telemetry", "telemetry_dir"},
		        [&](const std::string &key, yaml_node_t *k, yaml_node_t *val) {
			        const std::string full = "lending." + key;
			        if (key == "enabled" || key == "whole_devices" || key == "free_slices") {
				        auto b = string_value(val, full, "true or false");
				        if (!b)
					        return false;
				        if (*b != "true" && *b != "false")
					        return set_error(val, full, "\"" + *b + "\" is not a boolean",
					                         "true or false");
				        (key == "enabled"         ? c.enabled
				         : key == "whole_devices" ? p.whole_devices
				                                  : p.free_slices) = *b == "true";
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
				        const std::string allowed = telemetry_sources_allowed();
				        auto t = string_value(val, full, allowed);
				        if (!t)
					        return false;
				        const auto source = parse_telemetry_source(*t);
				        if (!source)
					        return set_error(val, full, "unknown source \"" + *t + "\"",
					                         allowed);
				        c.telemetry = *source;
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
	       " not found; slurmctld does not send flexslurm.yaml: install the controller's copy there on every node (Slurm leaves it in place; a file holding `version: 1` means the built-in defaults)";
}

Result<Config> Config::from_file(const std::string &path)
{
	// Links followed: a config is often a link an admin's tooling keeps.
	const FileRead read = read_file(path, {max_file_bytes, true, false});
	switch (read.error) {
	case ReadError::none:
		return from_string(read.text, path);
	case ReadError::missing:
	case ReadError::cannot_open:
		return Result<Config>::failure(path + ": cannot open: " + read.why());
	case ReadError::too_large:
		return Result<Config>::failure(path + ": larger than 1 MiB, not a flexslurm config");
	default:
		return Result<Config>::failure(path + ": cannot read: " + read.why());
	}
}

} // namespace flexslurm
