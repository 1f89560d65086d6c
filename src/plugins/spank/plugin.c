/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The plugin's identity. In C: SPANK_PLUGIN() defines const arrays, which
 * C++ would give internal linkage (Slurm could not find them). */
#include <slurm/spank.h>

SPANK_PLUGIN(flexslurm, 1);
