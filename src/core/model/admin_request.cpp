// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/admin_request.hpp"

#include <cstdint>

namespace flexslurm
{

namespace
{
constexpr std::string_view admin_magic = "flexslurm-admin 1\n";
} // namespace

std::string encode_admin(const AdminRequest &r)
{
	std::string out(admin_magic);
	if (r.kind == AdminRequest::Kind::Status)
		out += "status\n";
	else if (r.kind == AdminRequest::Kind::Devices)
		out += "devices\n";
	else
		out += "reclaim " + std::to_string(r.job) + "\n";
	return out + "end\n";
}

std::optional<Result<AdminRequest>> parse_admin(std::string_view text)
{
	if (text.substr(0, admin_magic.size()) != admin_magic)
		return std::nullopt;
	text.remove_prefix(admin_magic.size());
	AdminRequest r;
	if (text == "status\nend\n")
		return Result<AdminRequest>(r);
	if (text == "devices\nend\n") {
		r.kind = AdminRequest::Kind::Devices;
		return Result<AdminRequest>(r);
	}
	constexpr std::string_view reclaim = "reclaim ";
	const size_t eol = text.find('\n');
	if (text.substr(0, reclaim.size()) == reclaim && eol != std::string_view::npos &&
	    text.substr(eol + 1) == "end\n") {
		const std::string_view number = text.substr(reclaim.size(), eol - reclaim.size());
		uint64_t job = 0;
		bool ok = !number.empty() && number.size() <= 10;
		for (char ch : number) {
			ok = ok && ch >= '0' && ch <= '9';
			job = job * 10 + static_cast<uint64_t>(ch - '0');
		}
		if (ok && job > 0 && job <= UINT32_MAX) {
			r.kind = AdminRequest::Kind::Reclaim;
			r.job = static_cast<uint32_t>(job);
			return Result<AdminRequest>(r);
		}
	}
	return Result<AdminRequest>::failure(
	        "malformed admin request (expected \"status\", \"devices\" or \"reclaim <job id>\")");
}

} // namespace flexslurm
