// SPDX-License-Identifier: GPL-2.0-or-later
// The YAML side of the config loader (core/io/config.cpp): owners of
// libyaml's C structs, and a reader of one parsed document whose every
// error is one line naming the file, the line, the key and what is allowed.
#pragma once

#include "core/util/time.hpp"

#include <yaml.h>

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>

namespace flexslurm
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

class YamlReader
{
public:
	YamlReader(std::string source, yaml_document_t *doc) : source_(std::move(source)), doc_(doc) {}

	const std::string &error() const noexcept { return error_; }

protected:
	std::string source_;
	yaml_document_t *doc_;
	std::string error_;

	static unsigned long line_of(const yaml_node_t *n) { return n->start_mark.line + 1; }

	// "<file>:<line>: <key>: <problem> (allowed: <allowed>)", kept in error();
	// always false.
	bool set_error(const yaml_node_t *at, const std::string &key, const std::string &problem,
	               const std::string &allowed);

	yaml_node_t *node(yaml_node_item_t i) { return yaml_document_get_node(doc_, i); }
	static std::string scalar(const yaml_node_t *n);
	static std::string join(const std::string &prefix, const std::string &key);

	// Calls f(key, key node, value node) for each key of the mapping `map`;
	// refuses keys not in `allowed` and keys given twice.
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
	                                        const std::string &allowed);
	std::optional<int> integer(yaml_node_t *k, yaml_node_t *v, const std::string &key, int lo, int hi,
	                           const std::string &allowed);
	std::optional<std::string> path(yaml_node_t *v, const std::string &key);
	std::optional<double> percent(yaml_node_t *v, const std::string &key);
	std::optional<Seconds> duration(yaml_node_t *v, const std::string &key);

	// A single value that `parse` turns into a T (an optional); otherwise the
	// error `before` "<value>" `after`.
	template <class Parse>
	auto parsed(yaml_node_t *v, const std::string &key, const std::string &allowed,
	            const std::string &before, const std::string &after, Parse &&parse)
	        -> decltype(parse(std::string()))
	{
		auto s = string_value(v, key, allowed);
		if (!s)
			return std::nullopt;
		auto value = parse(*s);
		if (!value)
			set_error(v, key, before + "\"" + *s + "\"" + after, allowed);
		return value;
	}
};

} // namespace flexslurm
