// SPDX-License-Identifier: GPL-2.0-or-later
// The SPANK plugin's plugstack.conf arguments.
#include "suites.hpp"

#include "core/model/spank_config.hpp"

#include <string>

using namespace flexslurm;

START_TEST(plugstack_arguments)
{
	auto ok =
	        parse_plugstack_args({"isolation=optional", "layout=/run/x/%n", "limits=preload",
	                              "limits.nvidia=mps", "preload=/opt/hami/libvgpu.so", "job_dir=/run/m"});
	ck_assert_msg(static_cast<bool>(ok), "%s", ok.error().c_str());
	ck_assert(ok->isolation == FailurePolicy::Optional);
	ck_assert_str(ok->layout_file, "/run/x/%n");
	ck_assert(ok->limits_for(Vendor::Nvidia) == LimitBackend::Mps);
	ck_assert(ok->limits_for(Vendor::Amd) == LimitBackend::Preload);
	ck_assert_str(ok->job_dir, "/run/m");
	auto mps_all = parse_plugstack_args({"limits=mps"}); // NVIDIA only; the others keep none
	ck_assert(mps_all->limits_for(Vendor::Nvidia) == LimitBackend::Mps);
	ck_assert(mps_all->limits_for(Vendor::Ascend) == LimitBackend::None);
	ck_assert(parse_plugstack_args({})->isolation == FailurePolicy::Required);
	ck_assert_str(parse_plugstack_args({"isolation=maybe"}).error(),
	              "isolation: \"maybe\" is not allowed (allowed: required, optional)");
	ck_assert_str(
	        parse_plugstack_args({"layout=run"}).error(),
	        "layout: \"run\" is not an absolute path (allowed: an absolute path, %n stands for the node name)");
	ck_assert_str(parse_plugstack_args({"limits=fast"}).error(),
	              "limits: \"fast\" is not allowed (allowed: none, preload, mps, cu_mask, vnpu)");
	ck_assert_str(parse_plugstack_args({"limits.amd=mps"}).error(),
	              "limits.amd: mps is NVIDIA's (allowed: none, preload, cu_mask)");
	ck_assert_str(parse_plugstack_args({"limits.ascend=mps"}).error(),
	              "limits.ascend: mps is NVIDIA's (allowed: none, preload, vnpu)");
	// each vendor's own in-device mechanism, for that vendor only
	auto amd = parse_plugstack_args({"limits.amd=cu_mask", "limits.ascend=vnpu"});
	ck_assert_msg(static_cast<bool>(amd), "%s", amd.error().c_str());
	ck_assert(amd->limits_for(Vendor::Amd) == LimitBackend::CuMask);
	ck_assert(amd->limits_for(Vendor::Ascend) == LimitBackend::Vnpu);
	ck_assert(amd->limits_for(Vendor::Nvidia) == LimitBackend::None);
	ck_assert_str(amd->kfd_topology, "/sys/class/kfd/kfd/topology/nodes");
	ck_assert_str(parse_plugstack_args({"limits.nvidia=cu_mask"}).error(),
	              "limits.nvidia: cu_mask is AMD's (allowed: none, preload, mps)");
	ck_assert_str(parse_plugstack_args({"limits.ascend=cu_mask"}).error(),
	              "limits.ascend: cu_mask is AMD's (allowed: none, preload, vnpu)");
	ck_assert_str(parse_plugstack_args({"limits.amd=vnpu"}).error(),
	              "limits.amd: vnpu is Ascend's (allowed: none, preload, cu_mask)");
	auto all = parse_plugstack_args({"limits=cu_mask"}); // AMD only; the others keep none
	ck_assert(all->limits_for(Vendor::Amd) == LimitBackend::CuMask);
	ck_assert(all->limits_for(Vendor::Nvidia) == LimitBackend::None);
	ck_assert(all->limits_for(Vendor::Ascend) == LimitBackend::None);
	ck_assert_str(parse_plugstack_args({"kfd_topology=/t/kfd"})->kfd_topology, "/t/kfd");
	ck_assert_str(
	        parse_plugstack_args({"kfd_topology=sys"}).error(),
	        "kfd_topology: \"sys\" is not an absolute path (allowed: an absolute path, %n stands for the node name)");
	ck_assert_str(parse_plugstack_args({"limits.intel=none"}).error(),
	              "limits.intel: unknown vendor \"intel\" (allowed: nvidia, amd, ascend)");
	ck_assert_str(
	        parse_plugstack_args({"limits=preload"}).error(),
	        "limits: preload needs preload=PATH (the interception library) or preload=system (it is in /etc/ld.so.preload)");
	auto system = parse_plugstack_args({"limits.amd=preload", "preload=system"});
	ck_assert(system->preload_system && system->preload.empty());
	ck_assert_str(
	        parse_plugstack_args({"colour=red"}).error(),
	        "unknown plugstack argument \"colour=red\" (allowed: isolation=required|optional, layout=PATH, limits[.VENDOR]=none|preload|mps|cu_mask|vnpu, preload=PATH|system, mps_control=PATH, job_dir=PATH, kfd_topology=PATH)");
	ck_assert_str(
	        parse_plugstack_args({"mps_dir=/run/flexslurm/mps"}).error(),
	        "mps_dir: replaced by job_dir=PATH (each job's limits and MPS directories, root's; default /run/flexslurm/jobs): remove mps_dir");
}
END_TEST

START_TEST(plugstack_arguments_round_trip)
{
	SpankConfig cfg;
	ck_assert(*parse_plugstack_args(plugstack_args(cfg)) == cfg);
	cfg.isolation = FailurePolicy::Optional;
	cfg.layout_file = "/run/l.%n";
	cfg.limits[static_cast<int>(Vendor::Nvidia)] = LimitBackend::Mps;
	cfg.limits[static_cast<int>(Vendor::Amd)] = LimitBackend::Preload;
	cfg.preload = "/opt/hami/libvgpu.so";
	cfg.mps_control = "/opt/mps-control";
	cfg.job_dir = "/run/jobs/%n";
	cfg.kfd_topology = "/t/kfd/%n";
	std::string text;
	for (const std::string &a : plugstack_args(cfg))
		text += a + " ";
	ck_assert_str(
	        text,
	        "isolation=optional layout=/run/l.%n limits.nvidia=mps limits.amd=preload limits.ascend=none preload=/opt/hami/libvgpu.so mps_control=/opt/mps-control job_dir=/run/jobs/%n kfd_topology=/t/kfd/%n ");
	auto back = parse_plugstack_args(plugstack_args(cfg));
	ck_assert_msg(static_cast<bool>(back), "%s", back.error().c_str());
	ck_assert(*back == cfg);
	cfg.preload.clear();
	cfg.preload_system = true;
	ck_assert(*parse_plugstack_args(plugstack_args(cfg)) == cfg);
	// the backend names: one table for plugstack.conf and the limits file
	for (LimitBackend b : {LimitBackend::None, LimitBackend::Preload, LimitBackend::Mps,
	                       LimitBackend::CuMask, LimitBackend::Vnpu})
		ck_assert(parse_limit_backend(limit_backend_name(b)) == b);
	ck_assert(!parse_limit_backend("MPS"));
	ck_assert(!parse_limit_backend(""));
}
END_TEST

Suite *spank_config_suite()
{
	Suite *s = suite_create("spank_config");
	TCase *tc = tcase_create("spank_config");
	tcase_add_test(tc, plugstack_arguments);
	tcase_add_test(tc, plugstack_arguments_round_trip);
	suite_add_tcase(s, tc);
	return s;
}
