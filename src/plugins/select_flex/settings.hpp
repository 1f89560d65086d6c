// SPDX-License-Identifier: GPL-2.0-or-later
// select/flex's settings: flexslurm.yaml as slurmctld loads it at start and
// at every reconfigure, and the last good copy kept in StateSaveLocation.
#pragma once

#include "core/io/config.hpp"

#include <string>

namespace flexslurm::select_flex
{

// slurmctld's StateSaveLocation ("." when unset): where the last good
// settings and the lending state and status files live.
std::string state_save_dir();

// The settings in force (the built-in defaults until loaded).
const Config &settings();

// init(): loads flexslurm.yaml. A refused file stops slurmctld with one
// line saying why, unless this slurmctld re-executed itself for a
// reconfigure and the last good settings were saved: those are kept then.
void load_settings_at_start();

// select_p_reconfigure: loads flexslurm.yaml again. false: refused (logged
// once per distinct reason), the settings in force unchanged.
bool reload_settings();

} // namespace flexslurm::select_flex
