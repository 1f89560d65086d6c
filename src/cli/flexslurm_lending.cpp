// SPDX-License-Identifier: GPL-2.0-or-later
// flexslurm-lending: an admin's view of idle reclaim, and a way to take a
// loan back by hand. It asks select/flex in slurmctld over the channel the
// node agents use, with a Munge credential of the caller (root or
// SlurmUser only):
//
//   flexslurm-lending status          per slice: owner, borrower, since when;
//                                     reclaims in flight; reclaim history
//   flexslurm-lending reclaim JOBID   take back the loans of borrower JOBID
//                                     (checkpoint signal, grace, requeue)
//
// The controller comes from slurm.conf (SlurmctldHost, in order; AuthInfo
// socket=), the port from flexslurm.yaml beside it (lending.port). SLURM_CONF
// names slurm.conf as for every Slurm command.
#include "core/io/channel.hpp"
#include "core/io/munge.hpp"
#include "core/model/admin_request.hpp"
#include "core/io/config.hpp"
#include "core/model/report.hpp"
#include "core/util/uids.hpp"

#include <pwd.h>
#include <strings.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

using namespace flexslurm;

namespace
{

struct SlurmConf {
	std::vector<std::string> controllers;
	std::string munge_socket;
	uid_t slurm_user = 0;
};

std::string trim(std::string s)
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
	SlurmConf conf;
	std::ifstream in(path);
	std::string line;
	while (std::getline(in, line)) {
		line = trim(line);
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
	return conf;
}

int usage()
{
	std::fprintf(stderr, "usage: flexslurm-lending status\n"
	                     "       flexslurm-lending reclaim JOBID\n");
	return 2;
}

} // namespace

int main(int argc, char **argv)
{
	AdminRequest request;
	const std::string verb = argc > 1 ? argv[1] : "";
	if (verb == "status" && argc == 2) {
		request.kind = AdminRequest::Kind::Status;
	} else if (verb == "reclaim" && argc == 3) {
		char *end = nullptr;
		const unsigned long job = std::strtoul(argv[2], &end, 10);
		if (!end || *end || job == 0 || job > UINT32_MAX)
			return usage();
		request.kind = AdminRequest::Kind::Reclaim;
		request.job = static_cast<uint32_t>(job);
	} else {
		return usage();
	}

	const char *env = std::getenv("SLURM_CONF");
	const std::string slurm_conf = env && *env ? env : "/etc/slurm/slurm.conf";
	const SlurmConf conf = read_slurm_conf(slurm_conf);
	if (conf.controllers.empty()) {
		std::fprintf(stderr, "flexslurm-lending: %s: no SlurmctldHost\n", slurm_conf.c_str());
		return 1;
	}
	const std::string dir = slurm_conf.substr(0, slurm_conf.rfind('/') + 1);
	auto config = Config::from_file(dir + "flexslurm.yaml");
	if (!config) {
		std::fprintf(stderr, "flexslurm-lending: %s\n", config.error().c_str());
		return 1;
	}
	if (!config->channel.enabled) {
		std::fprintf(stderr, "flexslurm-lending: lending is not enabled in %sflexslurm.yaml\n",
		             dir.c_str());
		return 1;
	}
	const MungeEndpoint munge{conf.munge_socket};
	auto sealed = munge_seal(munge, encode_admin(request));
	if (!sealed) {
		std::fprintf(stderr, "flexslurm-lending: %s\n", sealed.error().c_str());
		return 1;
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
			std::fprintf(stderr, "flexslurm-lending: %s: the answer is not from the controller\n",
			             host.c_str());
			return 1;
		}
		std::fputs(opened->payload.c_str(), stdout);
		return opened->payload.rfind("error:", 0) == 0 ? 1 : 0;
	}
	std::fprintf(
	        stderr,
	        "flexslurm-lending: no controller answered (refused requests are logged by slurmctld):%s\n",
	        failures.c_str());
	return 1;
}
