// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/config_yaml.hpp"

#include "core/util/text.hpp"

#include "core/model/config.hpp"

#include <cerrno>
#include <cstdlib>

namespace flexslurm
{

bool YamlReader::set_error(const yaml_node_t *at, const std::string &key, const std::string &problem,
                           const std::string &allowed)
{
	error_ = source_ + ":" + std::to_string(line_of(at)) + ": " + key + ": " + problem;
	if (!allowed.empty())
		error_ += " (allowed: " + allowed + ")";
	// Keys and values come from the file: a multi-line or quoted YAML
	// scalar must not break the one-line message (or forge log lines).
	error_ = shown(error_, {.keep_high_bytes = true});
	return false;
}

std::string YamlReader::scalar(const yaml_node_t *n)
{
	return std::string(reinterpret_cast<const char *>(n->data.scalar.value), n->data.scalar.length);
}

std::string YamlReader::join(const std::string &prefix, const std::string &key)
{
	return prefix.empty() ? key : prefix + "." + key;
}

std::optional<std::string> YamlReader::string_value(yaml_node_t *v, const std::string &key,
                                                    const std::string &allowed)
{
	if (v->type != YAML_SCALAR_NODE) {
		set_error(v, key, "must be a single value", allowed);
		return std::nullopt;
	}
	return scalar(v);
}

std::optional<int> YamlReader::integer(yaml_node_t *, yaml_node_t *v, const std::string &key, int lo, int hi,
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

std::optional<std::string> YamlReader::path(yaml_node_t *v, const std::string &key)
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

std::optional<double> YamlReader::percent(yaml_node_t *v, const std::string &key)
{
	return parsed(v, key, "a number from 0 to 100", "", " is not a percentage",
	              [](const std::string &s) -> std::optional<double> {
		              char *end = nullptr;
		              errno = 0;
		              const double d = std::strtod(s.c_str(), &end);
		              if (s.empty() || *end != '\0' || errno != 0 || !(d >= 0 && d <= 100))
			              return std::nullopt;
		              return d;
	              });
}

std::optional<Seconds> YamlReader::duration(yaml_node_t *v, const std::string &key)
{
	return parsed(v, key, "a duration such as 90s, 10m, 1h or a number of seconds, at most 2147483647 s",
	              "", " is not a duration", [](const std::string &s) { return parse_duration(s); });
}

} // namespace flexslurm
