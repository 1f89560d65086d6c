// SPDX-License-Identifier: GPL-2.0-or-later
// flexslurm: the slice map for admins and users. Per node, per device,
// slices total / allocated / free / lent / borrowed and the owner and
// borrower jobs, then a cluster summary; --json for programs (schema 2,
// docs/cli.md). `flexslurm lending status|reclaim JOBID` is
// flexslurm-lending. Slurm through src/cli/slurm_reader.*, the rules in
// src/core/model/slice_map.*; man/flexslurm.1 lists options and exit codes.
#include "cli/lending_client.hpp"
#include "cli/slurm_reader.hpp"
#include "core/model/slice_map.hpp"
#include "core/util/text.hpp"

#include <getopt.h>
#include <slurm/slurm.h>

#include <cstdio>
#include <string>
#include <vector>

using namespace flexslurm;

namespace
{

// Exit codes (man/flexslurm.1, docs/cli.md).
constexpr int exit_ok = 0;
constexpr int exit_usage = 1;
constexpr int exit_slurm = 2;
constexpr int exit_lending = 3;
constexpr int exit_no_match = 4;

constexpr const char *usage_text =
        "usage: flexslurm [--json] [--node NAME[,NAME...]] [--partition NAME] [--job JOBID] [--no-lending]\n"
        "       flexslurm lending status\n"
        "       flexslurm lending reclaim JOBID\n";

constexpr const char *help_text =
        "\nThe slice map: per node and device, slices total, allocated, free, lent and borrowed,\n"
        "with the jobs that own and borrow them, then a cluster summary.\n"
        "\n"
        "  -j, --json              one JSON object (schema 2, see flexslurm(1) and docs/cli.md)\n"
        "  -n, --node NAME[,...]   only these nodes (repeatable)\n"
        "  -p, --partition NAME    only the nodes of this partition\n"
        "  -J, --job JOBID         only the devices where this job holds or borrows slices\n"
        "      --no-lending        do not ask the lending controller (root and SlurmUser only)\n"
        "  -h, --help              this text\n"
        "  -V, --version           the version\n"
        "\n"
        "  lending status          the lending controller's status (root, SlurmUser)\n"
        "  lending reclaim JOBID   take back the loans of borrower JOBID (root, SlurmUser)\n"
        "\n"
        "Exit codes: 0 ok, 1 usage, 2 Slurm could not be asked, 3 the lending controller\n"
        "could not be asked or refused (lending subcommand), 4 no node matched the filters.\n";

int usage()
{
	std::fputs(usage_text, stderr);
	return exit_usage;
}

int lending(const std::vector<std::string> &words)
{
	const auto request = cli::parse_lending_words(words);
	if (!request)
		return usage();
	const cli::LendingReply reply = cli::ask_lending(*request);
	if (reply.kind != cli::LendingReply::Kind::Answer) {
		std::fprintf(stderr, "flexslurm: %s\n", reply.text.c_str());
		return exit_lending;
	}
	std::fputs(reply.text.c_str(), stdout);
	return reply.refused ? exit_lending : exit_ok;
}

// A multi-line reason ("no controller answered:\n  host: why") on one line.
std::string one_line(std::string_view text)
{
	std::string out;
	for (std::string_view line : split(trim(text), '\n'))
		if (!trim(line).empty())
			out += (out.empty() ? "" : "; ") + std::string(trim(line));
	return out;
}

// The controller's lending rows, when this caller may ask for them.
std::vector<LendingRow> lending_rows(SliceMap &map, bool ask)
{
	if (!ask) {
		map.lending = LendingView::NotPermitted;
		map.lending_note = "--no-lending";
		return {};
	}
	if (!cli::may_ask_lending()) {
		map.lending = LendingView::NotPermitted;
		map.lending_note = "only root and SlurmUser see the lending controller's state";
		return {};
	}
	const cli::LendingReply reply = cli::ask_lending(AdminRequest{});
	if (reply.kind == cli::LendingReply::Kind::Disabled) {
		map.lending = LendingView::Disabled;
		map.lending_note = reply.text;
		return {};
	}
	if (reply.kind != cli::LendingReply::Kind::Answer || reply.refused) {
		map.lending = LendingView::Unavailable;
		map.lending_note = one_line(reply.text);
		return {};
	}
	auto rows = parse_lending_status(reply.text);
	if (!rows) {
		map.lending = LendingView::Unavailable;
		map.lending_note = rows.error();
		return {};
	}
	map.lending = LendingView::Shown;
	return *rows;
}

// The devices' UUIDs and PCI bus ids the node agents reported to the
// lending controller (asked only where its lending state is shown).
std::vector<NodeDeviceIds> device_identities(SliceMap &map)
{
	if (map.lending != LendingView::Shown) {
		map.identities_note = "not asked (they come with the lending state): " + map.lending_note;
		return {};
	}
	AdminRequest request;
	request.kind = AdminRequest::Kind::Devices;
	const cli::LendingReply reply = cli::ask_lending(request);
	if (reply.kind != cli::LendingReply::Kind::Answer || reply.refused) {
		map.identities_note = "the lending controller did not list them: " + one_line(reply.text);
		return {};
	}
	auto table = parse_device_table(reply.text);
	if (!table) {
		map.identities_note = table.error();
		return {};
	}
	if (table->truncated)
		map.identities_note = "the lending controller's answer was cut: not every device is listed";
	return std::move(table->nodes);
}

} // namespace

int main(int argc, char **argv)
{
	if (argc > 1 && std::string(argv[1]) == "lending")
		return lending(std::vector<std::string>(argv + 2, argv + argc));

	enum { opt_no_lending = 256 };
	static const option options[] = {
	        {"json", no_argument, nullptr, 'j'},
	        {"node", required_argument, nullptr, 'n'},
	        {"partition", required_argument, nullptr, 'p'},
	        {"job", required_argument, nullptr, 'J'},
	        {"no-lending", no_argument, nullptr, opt_no_lending},
	        {"help", no_argument, nullptr, 'h'},
	        {"version", no_argument, nullptr, 'V'},
	        {nullptr, 0, nullptr, 0},
	};
	bool json = false, ask = true;
	Filters filters;
	int c = 0;
	while ((c = getopt_long(argc, argv, "jn:p:J:hV", options, nullptr)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'n':
			for (std::string_view name : split(optarg, ','))
				if (!name.empty())
					filters.nodes.emplace_back(name);
			break;
		case 'p':
			filters.partition = optarg;
			break;
		case 'J': {
			uint32_t job = 0;
			if (!parse_number(std::string_view(optarg), job, 1u, UINT32_MAX)) {
				std::fprintf(stderr, "flexslurm: --job %s: not a job id\n",
				             quoted(optarg).c_str());
				return usage();
			}
			filters.job = job;
			break;
		}
		case opt_no_lending:
			ask = false;
			break;
		case 'h':
			std::fputs(usage_text, stdout);
			std::fputs(help_text, stdout);
			return exit_ok;
		case 'V':
			std::printf("flexslurm %s (built with Slurm %d.%02d headers)\n", FLEXSLURM_VERSION,
			            SLURM_VERSION_MAJOR(SLURM_VERSION_NUMBER),
			            SLURM_VERSION_MINOR(SLURM_VERSION_NUMBER));
			return exit_ok;
		default:
			return usage();
		}
	}
	if (optind < argc) {
		std::fprintf(stderr, "flexslurm: unexpected argument %s\n", quoted(argv[optind]).c_str());
		return usage();
	}

	slurm_init(nullptr);
	auto view = cli::read_slurm();
	if (!view) {
		std::fprintf(stderr, "flexslurm: %s\n", view.error().c_str());
		slurm_fini();
		return exit_slurm;
	}
	slurm_fini();
	SliceMap probe;
	const std::vector<LendingRow> rows = lending_rows(probe, ask);
	const std::vector<NodeDeviceIds> ids = device_identities(probe);
	SliceMap map = build_map(view->nodes, view->jobs,
	                         probe.lending == LendingView::Shown ? &rows : nullptr, filters, &ids);
	map.lending = probe.lending;
	map.lending_note = probe.lending_note;
	map.identities_note = probe.identities_note;
	std::fputs((json ? map_json(map) : map_text(map)).c_str(), stdout);
	const bool filtered = !filters.nodes.empty() || !filters.partition.empty() || filters.job;
	return filtered && map.nodes.empty() ? exit_no_match : exit_ok;
}
