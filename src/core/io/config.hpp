// SPDX-License-Identifier: GPL-2.0-or-later
// flexslurm.yaml: the loader (Config::from_file, Config::from_string) and
// what a missing file means. Every bad value is refused with one message
// that names the file, the line, the key and what is allowed, because an
// admin reads it in a slurmd log with nothing else to go on.
#pragma once

#include "core/model/config.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace flexslurm
{

// flexslurm.yaml lives beside slurm.conf (Slurm's get_extra_conf_path). A
// slurmd in configless mode (--conf-server, or DNS SRV records) reads
// slurm.conf from its conf-cache (SlurmdSpoolDir/conf-cache), which it fills
// with the files slurmctld sends; flexslurm.yaml is never among them (22.05
// to 26.05 send a fixed list, plus files that slurm.conf and gres.conf
// Include, which are parsed as their own syntax), and Slurm leaves other
// files in that directory alone.
bool in_conf_cache(std::string_view config_path) noexcept;

// What a missing flexslurm.yaml at `path` means: nullopt, the built-in
// defaults (a node or controller with its own configuration directory and
// no file); otherwise the one line to refuse to start with. A configless
// slurmd refuses: its controller may have a file that silent defaults
// would contradict (4 slices per device against a slurm.conf Gres= count).
std::optional<std::string> refuse_missing_config(const std::string &path, bool configless_slurmd);

} // namespace flexslurm
