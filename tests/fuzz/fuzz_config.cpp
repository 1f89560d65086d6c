// SPDX-License-Identifier: GPL-2.0-or-later
// Config::from_string: flexslurm.yaml, read by every daemon (libyaml, then
// the reader's checks). A refusal is one line naming the file; an accepted
// config has its settings within the documented bounds. The same bytes go
// to the duration and size parsers used for its values.
#include "fuzz_common.hpp"

#include "core/io/config.hpp"

using namespace flexslurm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	const std::string text(fuzz::text(data, size));
	const Result<Config> c = Config::from_string(text, "flexslurm.yaml");
	if (!c) {
		FUZZ_CHECK(c.error().rfind("flexslurm.yaml", 0) == 0, c.error());
		FUZZ_CHECK(c.error().find('\n') == std::string::npos, c.error());
	} else {
		FUZZ_CHECK(c->channel.telemetry_timeout >= 2 * c->channel.report_interval, text);
	}
	if (size <= 64) {
		if (const auto d = parse_duration(text))
			FUZZ_CHECK(d->count() >= 0, text);
		(void)parse_size(text);
	}
	return 0;
}
