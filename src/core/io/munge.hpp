// SPDX-License-Identifier: GPL-2.0-or-later
// Munge credentials around the report and order texts (report.hpp): the
// node agents seal what they send, the listener in slurmctld opens it and
// learns who sent it.
#pragma once

#include "core/model/credential.hpp"
#include "core/util/result.hpp"

#include <string>
#include <string_view>

namespace flexslurm
{

struct MungeEndpoint {
	std::string socket; // empty: munge's default socket
};

// The munge socket slurm.conf's AuthInfo names ("socket=/path,cred_expire=..."),
// or "" for munge's default: the channel talks to the munged Slurm uses.
std::string munge_socket_of(std::string_view authinfo);

// munge_encode with munge's default TTL; fails if the credential would not fit
// in one frame.
Result<std::string> munge_seal(const MungeEndpoint &ep, std::string_view payload);
// munge_decode. EMUNGE_CRED_REPLAYED gives a Sealed with replayed=true (not an
// error: the intake counts it); other failures are error values with munge's text.
Result<Sealed> munge_open(const MungeEndpoint &ep, std::string_view credential);

} // namespace flexslurm
