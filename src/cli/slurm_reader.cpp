// SPDX-License-Identifier: GPL-2.0-or-later
#include "cli/slurm_reader.hpp"

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include <cerrno>
#include <memory>
#include <string>

namespace flexslurm::cli
{

namespace
{

struct NodesFree {
	void operator()(node_info_msg_t *p) const { slurm_free_node_info_msg(p); }
};
struct PartsFree {
	void operator()(partition_info_msg_t *p) const { slurm_free_partition_info_msg(p); }
};
struct JobsFree {
	void operator()(job_info_msg_t *p) const { slurm_free_job_info_msg(p); }
};

std::string text(const char *s)
{
	return s ? s : "";
}

std::string slurm_error(const char *what)
{
	return std::string(what) + ": " + text(slurm_strerror(errno));
}

// The base state and the flags sinfo users know, in scontrol's words.
std::string node_state(uint32_t state)
{
	static const char *const base[] = {"UNKNOWN", "DOWN",  "IDLE",  "ALLOCATED",
	                                   "ERROR",   "MIXED", "FUTURE"};
	const uint32_t b = state & NODE_STATE_BASE;
	std::string out = b < sizeof(base) / sizeof(base[0]) ? base[b] : "UNKNOWN";
	if (state & NODE_STATE_DRAIN)
		out += "+DRAIN";
	if (state & NODE_STATE_NO_RESPOND)
		out += "+NOT_RESPONDING";
	return out;
}

// The node table positions of index pairs (start, end, ..., -1).
template <class F>
void each_index(const int32_t *inx, uint32_t count, F f)
{
	if (!inx)
		return;
	for (size_t i = 0; inx[i] >= 0 && inx[i + 1] >= 0; i += 2)
		for (int32_t n = inx[i]; n <= inx[i + 1]; ++n)
			if (static_cast<uint32_t>(n) < count)
				f(static_cast<uint32_t>(n));
}

} // namespace

Result<SlurmView> read_slurm()
{
	// SHOW_DETAIL: GresUsed is only sent with it (scontrol -d show node).
	node_info_msg_t *nodes_raw = nullptr;
	if (slurm_load_node(0, &nodes_raw, SHOW_ALL | SHOW_DETAIL) != SLURM_SUCCESS)
		return Result<SlurmView>::failure(slurm_error("cannot load the nodes"));
	const std::unique_ptr<node_info_msg_t, NodesFree> nodes(nodes_raw);
	partition_info_msg_t *parts_raw = nullptr;
	if (slurm_load_partitions(0, &parts_raw, SHOW_ALL) != SLURM_SUCCESS)
		return Result<SlurmView>::failure(slurm_error("cannot load the partitions"));
	const std::unique_ptr<partition_info_msg_t, PartsFree> parts(parts_raw);
	job_info_msg_t *jobs_raw = nullptr;
	if (slurm_load_jobs(0, &jobs_raw, SHOW_ALL | SHOW_DETAIL) != SLURM_SUCCESS)
		return Result<SlurmView>::failure(slurm_error("cannot load the jobs"));
	const std::unique_ptr<job_info_msg_t, JobsFree> jobs(jobs_raw);

	SlurmView view;
	const uint32_t count = nodes->record_count;
	for (uint32_t i = 0; i < count; ++i) {
		const node_info_t &n = nodes->node_array[i];
		NodeInput in;
		in.name = text(n.name);
		in.state = node_state(n.node_state);
		in.gres = text(n.gres);
		in.gres_used = text(n.gres_used);
		view.nodes.push_back(std::move(in));
	}
	for (uint32_t p = 0; p < parts->record_count; ++p) {
		const partition_info_t &part = parts->partition_array[p];
		each_index(part.node_inx, count,
		           [&](uint32_t n) { view.nodes[n].partitions.push_back(text(part.name)); });
	}
	for (uint32_t j = 0; j < jobs->record_count; ++j) {
		const slurm_job_info_t &job = jobs->job_array[j];
		const uint32_t base = job.job_state & JOB_STATE_BASE;
		if ((base != JOB_RUNNING && base != JOB_SUSPENDED) || !job.gres_detail_str)
			continue;
		JobInput in;
		in.id = job.job_id;
		// gres_detail_str holds one entry per node of the job, in node
		// table order (as scontrol show job -d pairs them).
		uint32_t k = 0;
		each_index(job.node_inx, count, [&](uint32_t n) {
			if (k < job.gres_detail_cnt)
				in.nodes.push_back({view.nodes[n].name, text(job.gres_detail_str[k])});
			++k;
		});
		if (!in.nodes.empty())
			view.jobs.push_back(std::move(in));
	}
	return view;
}

} // namespace flexslurm::cli
