// SPDX-License-Identifier: GPL-2.0-or-later
// AMD GPUs as the KFD driver describes them in sysfs
// (/sys/class/kfd/kfd/topology/nodes/<n>/properties): the compute-unit
// counts the SPANK plugin's cu_mask limits cut into slices. The directory
// comes from plugstack.conf (kfd_topology=, root's), never from a job.
#pragma once

#include "core/model/cu_mask.hpp"
#include "core/util/result.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace flexslurm
{

// Entry names of a directory (nullopt: it cannot be listed, with `why`), and
// a small file's text (nullopt: unreadable): injected for tests.
using KfdDirReader =
        std::function<std::optional<std::vector<std::string>>(const std::string &dir, std::string &why)>;
using KfdFileReader = std::function<std::optional<std::string>(const std::string &path)>;

// The GPU nodes under `dir` (CPU nodes and unreadable entries are skipped;
// at most 256). Fails, saying why, when `dir` cannot be listed.
Result<std::vector<KfdGpu>> read_kfd_gpus(const std::string &dir, const KfdDirReader &list,
                                          const KfdFileReader &read);
Result<std::vector<KfdGpu>> read_kfd_gpus(const std::string &dir); // the real file system

} // namespace flexslurm
