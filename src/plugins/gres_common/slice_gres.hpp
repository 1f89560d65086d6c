// SPDX-License-Identifier: GPL-2.0-or-later
// What gres/vslice and gres/vborrow share, as Slurm's gres/common serves
// gres/gpu, gres/shard and gres/mps: a GRES whose units are the slices of
// the node's slice layout, one unit per slice, each bound to its device
// file. Each plugin file holds one SliceGres and its own entry points; how
// the layout is obtained (discovery, or the file gres/vslice saved) is the
// plugin's own.
#pragma once

#ifndef FLEXSLURM_COMPAT_GRES
#define FLEXSLURM_COMPAT_GRES
#endif
#include "slurm_compat.h"

#include "core/io/config.hpp"
#include "core/io/device_identity.hpp"
#include "core/model/job_env.hpp"
#include "core/model/slice_layout.hpp"

#include <optional>
#include <vector>

namespace flexslurm::plugin
{

class SliceGres
{
public:
	// `name`: the GRES ("vslice"); `borrow`: a borrower's environment
	// (the slice's compute share, memory no slice reserved) instead of a
	// slice holder's.
	SliceGres(const char *name, bool borrow) noexcept : name_(name), borrow_(borrow) {}
	SliceGres(const SliceGres &) = delete;
	SliceGres &operator=(const SliceGres &) = delete;

	const char *name() const noexcept { return name_; }
	const std::optional<SliceLayout> &layout() const noexcept { return layout_; }
	// Takes the node's layout: Slurm's device list follows it.
	void adopt(SliceLayout layout);
	// Drops both (the plugin's fini; nothing frees them at unload).
	void clear();

	// node_config_load: replaces whatever slurm.conf/gres.conf said about
	// this GRES on the node by one record per device holding its slices.
	// slurmctld compares the count with slurm.conf's Gres= and drains the
	// node, with its usual reason, when fewer were found than configured.
	void publish(compat::list_ptr gres_conf_list, node_config_load_t *node_conf) const;

	// job/step/task and prolog/epilog environments. `merge_earlier` (prolog/epilog,
	// called once per vslice type): join the slices an earlier call wrote to `env`.
	void set_env(char ***env, bitstr_t *bits, gres_internal_flags_t flags, DeviceNumbering numbering,
	             bool merge_earlier = false) const;
	// slurmd hands the layout to slurmstepd, which does not discover.
	void send_stepd(buf_t *buffer) const;
	void recv_stepd(buf_t *buffer);
	compat::list_ptr devices() const noexcept { return devices_.get(); }

private:
	void rebuild_devices();

	const char *name_;
	bool borrow_;
	std::optional<SliceLayout> layout_;
	compat::list_holder devices_;
};

// flexslurm.yaml as slurmd finds it (next to slurm.conf, or its built-in
// defaults when absent and allowed); nullopt: refused, already logged.
std::optional<Config> load_node_config_file();

// Slurm's gres.conf/AutoDetect records as the core reads them.
std::vector<GresRecord> gres_records(compat::list_ptr gres_conf_list);

// The job's numbering of its devices: renumbered from 0 when task/cgroup
// hides the others (as gres/gpu does), the host's otherwise.
DeviceNumbering job_numbering();

// prolog/epilog: the units each node of the job holds.
compat::prep_info_t *prep_build_env(const gres_job_state_t *gres_js);
// Prolog and epilog run outside the job's device cgroup: host numbering.
void prep_set_env(const SliceGres &gres, char ***env, const compat::prep_info_t *prep, int node_inx);

} // namespace flexslurm::plugin
