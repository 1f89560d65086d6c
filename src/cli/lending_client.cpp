// SPDX-License-Identifier: GPL-2.0-or-later
#include "cli/lending_client.hpp"

#include "core/io/channel.hpp"
#include "core/io/config.hpp"
#include "core/io/file_io.hpp"
#include "core/io/munge.hpp"
#include "core/util/uids.hpp"

#include <pwd.h>
#include <strings.h>
#include <unistd.h>

#include <cstdlib>

namespace flexslurm::cli
{

namespace
{

struct SlurmConf {
	std::string error; // why the file could not be read whole ("" when it was)
	std::vector<std::string> controllers;
	std::string munge_socket;
	uid_t slurm_user = 0;
};

std::string trim_line(std::string s)
{
	while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
		s.pop_back();
	const size_t from = s.find_first_not_of(" \t");
	return from == std::string::npos ? "" : s.substr(from);
}

std::string value_of(const std::string &line, const std::string &key)
{
	if (line.size() <= key.size() + 1 || strncasecmp(line.c_str(), key.c_str(), key.size()) != 0 ||
	    line[key.size()] != '=')
		return "";
	std::string v = line.substr(key.size() + 1);
	return v.substr(0, v.find_first_of(" \t#"));
}

SlurmConf read_slurm_conf(const std::string &path)
{
	// Bounded like every file a flexslurm program reads: slurm.conf is read
	// line by line, each line at most 64 KiB and the whole at most 16 MiB.
	SlurmConf conf;
	ReadOptions options;
	options.limit = 16 << 20;
	options.follow_links = true;
	FileLines lines(path, options, 64 << 10);
	std::string_view raw;
	while (lines.next(raw)) {
		const std::string line = trim_line(std::string(raw));
		if (auto host = value_of(line, "SlurmctldHost"); !host.empty()) {
			// name(address): the address if given
			const size_t open = host.find('('), close = host.find(')');
			conf.controllers.push_back(open != std::string::npos && close > open
			                                   ? host.substr(open + 1, close - open - 1)
			                                   : host);
		} else if (auto info = value_of(line, "AuthInfo"); !info.empty()) {
			conf.munge_socket = munge_socket_of(info);
		} else if (auto user = value_of(line, "SlurmUser"); !user.empty()) {
			if (const passwd *pw = getpwnam(user.c_str()))
				conf.slurm_user = pw->pw_uid;
		}
	}
	if (!lines.status())
		conf.error = lines.status().why();
	return conf;
}

} // namespace

std::optional<AdminRequest> parse_lending_words(const std::vector<std::string> &words)
{
	AdminRequest request;
	const std::string verb = words.empty() ? "" : words[0];
	if (verb == "status" && words.size() == 1) {
		request.kind = AdminRequest::Kind::Status;
	} else if (verb == "reclaim" && words.size() == 2) {
		char *end = nullptr;
		const unsigned long job = std::strtoul(words[1].c_str(), &end, 10);
		if (!end || *end || words[1].empty() || words[1][0] == '-' || job == 0 || job > UINT32_MAX)
			return std::nullopt;
		request.kind = AdminRequest::Kind::Reclaim;
		request.job = static_cast<uint32_t>(job);
	} else {
		return std::nullopt;
	}
	return request;
}

std::string slurm_conf_path()
{
	const char *env = std::getenv("SLURM_CONF");
	if (env && *env)
		return env;
	if (access("/etc/slurm/slurm.conf", R_OK) != 0 && access("/run/slurm/conf/slurm.conf", R_OK) == 0)
		return "/run/slurm/conf/slurm.conf";
	return "/etc/slurm/slurm.conf";
}

bool may_ask_lending()
{
	return uid_allowed(root_and_slurm_user(read_slurm_conf(slurm_conf_path()).slurm_user), getuid());
}

LendingReply ask_lending(const AdminRequest &request)
{
	LendingReply out;
	const std::string slurm_conf = slurm_conf_path();
	const SlurmConf conf = read_slurm_conf(slurm_conf);
	if (!conf.error.empty()) {
		out.text = slurm_conf + ": " + conf.error;
		return out;
	}
	if (conf.controllers.empty()) {
		out.text = slurm_conf + ": no SlurmctldHost";
		return out;
	}
	const std::string dir = slurm_conf.substr(0, slurm_conf.rfind('/') + 1);
	auto config = Config::from_file(dir + "flexslurm.yaml");
	if (!config) {
		out.text = config.error();
		return out;
	}
	if (!config->channel.enabled) {
		out.kind = LendingReply::Kind::Disabled;
		out.text = "lending is not enabled in " + dir + "flexslurm.yaml";
		return out;
	}
	const MungeEndpoint munge{conf.munge_socket};
	auto sealed = munge_seal(munge, encode_admin(request));
	if (!sealed) {
		out.text = sealed.error();
		return out;
	}
	std::string failures;
	for (const std::string &host : conf.controllers) {
		auto reply = exchange(host, config->channel.port, *sealed, "", Seconds(5));
		if (!reply) {
			failures += "\n  " + host + ": " + reply.error();
			continue;
		}
		auto opened = munge_open(munge, *reply);
		if (!opened || opened->replayed ||
		    !uid_allowed(root_and_slurm_user(conf.slurm_user), opened->uid)) {
			out.text = host + ": the answer is not from the controller";
			return out;
		}
		out.kind = LendingReply::Kind::Answer;
		out.text = opened->payload;
		out.refused = opened->payload.rfind("error:", 0) == 0;
		return out;
	}
	out.text = "no controller answered (refused requests are logged by slurmctld):" + failures;
	return out;
}

} // namespace flexslurm::cli
