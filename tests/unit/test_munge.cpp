// SPDX-License-Identifier: GPL-2.0-or-later
// The Munge wrapper: failures as values, a round trip, replays and
// tampering with a reachable munged, and the intake with the real thing.
#include "wire_scene.hpp"

#include "core/io/munge.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace flexslurm;
using namespace wire_scene;

START_TEST(munge_wrapper)
{
	// Failures are values, with or without a munged.
	MungeEndpoint nowhere{"/nonexistent/munge.socket.2"};
	auto sealed = munge_seal(nowhere, "x");
	ck_assert(!sealed);
	ck_assert_msg(contains(sealed.error(), "munge_encode: "), "%s", sealed.error().c_str());
	ck_assert(!munge_open(nowhere, "MUNGE:garbage:"));
	ck_assert_str(munge_open(nowhere, "").error(), "empty credential");
	ck_assert_str(munge_open(nowhere, std::string("MUNGE:\0x", 8)).error(),
	              "credential contains a NUL byte");
	ck_assert(!munge_seal(nowhere, std::string(max_message_bytes + 1, 'x')));

	// With a reachable munged (the default socket, or FLEXSLURM_TEST_MUNGE_SOCKET).
	MungeEndpoint ep;
	if (const char *socket = std::getenv("FLEXSLURM_TEST_MUNGE_SOCKET"))
		ep.socket = socket;
	const std::string payload = encode_report(report("n1", 1, 1, 100));
	sealed = munge_seal(ep, payload);
	if (!sealed) {
		std::printf("report: no munged reachable (%s); munge_seal/munge_open round trip not tested\n",
		            sealed.error().c_str());
		return;
	}
	auto opened = munge_open(ep, *sealed);
	ck_assert_msg(opened, "%s", opened.error().c_str());
	ck_assert_str(opened->payload, payload);
	ck_assert_uint_eq(opened->uid, getuid());
	ck_assert_uint_eq(opened->gid, getgid());
	ck_assert(!opened->replayed);
	auto again = munge_open(ep, *sealed);
	ck_assert_msg(again, "%s", again.error().c_str());
	ck_assert(again->replayed);
	ck_assert_str(again->payload, payload);
	ck_assert_uint_eq(again->uid, getuid());
	std::string tampered = *sealed;
	tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
	ck_assert(!munge_open(ep, tampered));
	ck_assert(!munge_open(ep, "MUNGE:garbage:"));
	// A payload whose credential would not fit in a frame.
	auto too_big = munge_seal(ep, std::string(max_message_bytes - 1000, 'p'));
	ck_assert(!too_big);
	ck_assert_msg(contains(too_big.error(), "frame limit"), "%s", too_big.error().c_str());

	// The intake with the real thing: munge's replay cache speaks first.
	record_log();
	IntakeRules r = rules();
	r.allowed_uids = {getuid()};
	ReportIntake intake(r, [ep](std::string_view cred) { return munge_open(ep, cred); });
	const long now =
	        std::chrono::duration_cast<Seconds>(std::chrono::system_clock::now().time_since_epoch())
	                .count();
	auto cred = munge_seal(ep, encode_report(report("n1", 1, 1, now)));
	ck_assert(cred && intake.take(*cred, "10.0.0.1", at(now)));
	ck_assert(!intake.take(*cred, "10.0.0.1", at(now + 10)));
	ck_assert_uint_eq(intake.dropped(DropReason::Replayed), 1);
	ck_assert(contains(take_logged(LogLevel::Error).back(),
	                   "replayed: munge says the credential was replayed"));
}
END_TEST

START_TEST(munge_socket_from_authinfo)
{
	ck_assert_str(munge_socket_of("socket=/run/m/munge.socket,cred_expire=10"), "/run/m/munge.socket");
	ck_assert_str(munge_socket_of("cred_expire=10,socket=/x"), "/x");
	ck_assert_str(munge_socket_of("cred_expire=10"), "");
	ck_assert_str(munge_socket_of(""), "");
}
END_TEST

Suite *munge_suite()
{
	Suite *s = suite_create("munge");
	TCase *munge = tcase_create("munge");
	tcase_set_timeout(munge, 30);
	tcase_add_test(munge, munge_wrapper);
	tcase_add_test(munge, munge_socket_from_authinfo);
	suite_add_tcase(s, munge);
	return s;
}
