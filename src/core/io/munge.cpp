// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/munge.hpp"

#include "core/model/report.hpp"

#include <munge.h>

#include <cstdlib>
#include <limits>
#include <memory>
#include <type_traits>

namespace flexslurm
{

namespace
{

struct MungeCtxFree {
	void operator()(munge_ctx_t ctx) const noexcept { munge_ctx_destroy(ctx); }
};
using MungeCtx = std::unique_ptr<std::remove_pointer_t<munge_ctx_t>, MungeCtxFree>;

struct MallocFree {
	void operator()(void *p) const noexcept { std::free(p); }
};

Result<MungeCtx> munge_context(const MungeEndpoint &ep)
{
	MungeCtx ctx(munge_ctx_create());
	if (!ctx)
		return Result<MungeCtx>::failure("munge_ctx_create failed");
	if (!ep.socket.empty()) {
		const munge_err_t e = munge_ctx_set(ctx.get(), MUNGE_OPT_SOCKET, ep.socket.c_str());
		if (e != EMUNGE_SUCCESS)
			return Result<MungeCtx>::failure("munge socket \"" + ep.socket +
			                                 "\": " + munge_strerror(e));
	}
	return ctx;
}

std::string munge_error(munge_ctx_t ctx, munge_err_t e)
{
	const char *detail = ctx ? munge_ctx_strerror(ctx) : nullptr;
	return detail ? detail : munge_strerror(e);
}

} // namespace

std::string munge_socket_of(std::string_view authinfo)
{
	const size_t at = authinfo.find("socket=");
	if (at == std::string_view::npos)
		return "";
	const size_t from = at + 7;
	return std::string(authinfo.substr(from, authinfo.find(',', from) - from));
}

Result<std::string> munge_seal(const MungeEndpoint &ep, std::string_view payload)
{
	using R = Result<std::string>;
	if (payload.size() > max_message_bytes)
		return R::failure("payload of " + std::to_string(payload.size()) + " bytes is over the " +
		                  std::to_string(max_message_bytes) + "-byte limit");
	auto ctx = munge_context(ep);
	if (!ctx)
		return R::failure(ctx.error());
	char *raw = nullptr;
	const munge_err_t e =
	        munge_encode(&raw, ctx->get(), payload.data(), static_cast<int>(payload.size()));
	const std::unique_ptr<char, MallocFree> credential(raw);
	if (e != EMUNGE_SUCCESS || !credential)
		return R::failure("munge_encode: " + munge_error(ctx->get(), e));
	std::string text(credential.get());
	if (text.size() > max_message_bytes)
		return R::failure("munge credential of " + std::to_string(text.size()) +
		                  " bytes is over the " + std::to_string(max_message_bytes) +
		                  "-byte frame limit (payload too large)");
	return text;
}

Result<Sealed> munge_open(const MungeEndpoint &ep, std::string_view credential)
{
	using R = Result<Sealed>;
	if (credential.empty())
		return R::failure("empty credential");
	if (credential.size() > max_message_bytes)
		return R::failure("credential of " + std::to_string(credential.size()) +
		                  " bytes is over the limit");
	if (credential.find('\0') != std::string_view::npos)
		return R::failure("credential contains a NUL byte");
	auto ctx = munge_context(ep);
	if (!ctx)
		return R::failure(ctx.error());
	const std::string text(credential); // munge_decode wants a C string
	void *raw = nullptr;
	int length = 0;
	// Not anyone's ids, should munge leave them unset on some path.
	uid_t uid = std::numeric_limits<uid_t>::max();
	gid_t gid = std::numeric_limits<gid_t>::max();
	const munge_err_t e = munge_decode(text.c_str(), ctx->get(), &raw, &length, &uid, &gid);
	const std::unique_ptr<void, MallocFree> payload(raw);
	if (e != EMUNGE_SUCCESS && e != EMUNGE_CRED_REPLAYED)
		return R::failure("munge_decode: " + munge_error(ctx->get(), e));
	Sealed sealed;
	if (payload && length > 0)
		sealed.payload.assign(static_cast<const char *>(payload.get()), static_cast<size_t>(length));
	sealed.uid = uid;
	sealed.gid = gid;
	sealed.replayed = e == EMUNGE_CRED_REPLAYED;
	return sealed;
}

} // namespace flexslurm
