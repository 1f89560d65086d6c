// SPDX-License-Identifier: GPL-2.0-or-later
// The job environment decoders: SliceEnv::decode() reads
// SLURM_VSLICE_DEVICES / SLURM_VSLICE_COUNTS from a job's environment (set
// by Slurm's GRES plugins, but arriving in slurmstepd as text), which
// device_limits() and held_device_paths() (with SLURM_JOB_GPUS) resolve
// against a slice layout. Input: layout \x01 vslice devices \x01 gpu units
// \x01 counts \x01 slice indices (comma list, for slice_environment).
// Checks: every limit stays within what the layout's device can give (no
// wrapped memory, percent 1..100), every device is one of the layout's, and
// the variables hold no newline or NUL.
#include "fuzz_common.hpp"

#include "core/io/isolation.hpp"
#include "core/model/job_env.hpp"
#include "core/model/limits.hpp"

#include <charconv>
#include <optional>

using namespace flexslurm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::init();
	std::string_view rest = fuzz::text(data, size);
	const std::string_view layout_text = fuzz::next_part(rest);
	const std::string_view vslice_devices = fuzz::next_part(rest);
	const std::string_view gpu_units = fuzz::next_part(rest);
	const std::string_view counts = fuzz::next_part(rest);
	std::string_view indices = fuzz::next_part(rest);
	const Result<SliceLayout> layout = SliceLayout::deserialize(layout_text);
	if (!layout)
		return 0;

	const auto env = SliceEnv::decode([&](const char *name) -> std::optional<std::string> {
		if (std::string_view(name) == devices_variable_name)
			return std::string(vslice_devices);
		if (std::string_view(name) == "SLURM_VSLICE_COUNTS")
			return std::string(counts);
		return std::nullopt;
	});
	const SliceEnv slice_env = env ? *env : SliceEnv{}; // refused: names no device
	std::vector<const DeviceSlices *> held;
	for (const DeviceSlices *d : layout->devices_named(slice_env.devices)) {
		if (!d)
			continue;
		bool known = false;
		for (const DeviceSlices &l : layout->devices())
			known = known || &l == d;
		FUZZ_CHECK(known, std::string(vslice_devices));
		held.push_back(d);
	}
	const auto limits = device_limits(*layout, slice_env);
	FUZZ_CHECK(limits.size() <= held.size(), std::string(counts));
	for (const DeviceLimit &l : limits) {
		FUZZ_CHECK(l.compute_percent >= 1 && l.compute_percent <= 100, std::string(counts));
		const DeviceSlices *d = nullptr;
		for (const DeviceSlices *h : held)
			if (h->vendor == l.vendor && h->vendor_index == l.host_index)
				d = h;
		FUZZ_CHECK(d != nullptr, std::string(counts));
		// A device's slices together never promise more than slices x slice memory.
		FUZZ_CHECK(static_cast<__int128>(l.memory_mib) <=
		                   (static_cast<__int128>(d->slice_memory_bytes) * d->slices) >> 20,
		           std::string(layout_text) + "|" + std::string(counts));
	}
	JobLimits job;
	job.job = 1;
	job.devices = limits;
	const Result<JobLimits> decoded = decode_job_limits(encode_job_limits(job));
	FUZZ_CHECK(decoded && *decoded == job, encode_job_limits(job));
	(void)plan_isolation(*layout, held_device_paths(*layout, held, gpu_units));

	std::vector<int> slices;
	while (!indices.empty() && slices.size() < 4096) {
		std::string_view item = indices.substr(0, indices.find(','));
		indices.remove_prefix(std::min(indices.size(), item.size() + 1));
		int v = 0;
		if (std::from_chars(item.data(), item.data() + item.size(), v).ec == std::errc())
			slices.push_back(v);
	}
	for (DeviceNumbering n : {DeviceNumbering::Local, DeviceNumbering::Physical})
		for (const EnvVar &e : slice_environment(*layout, slices, n))
			FUZZ_CHECK(e.value.find_first_of(std::string_view("\n\0", 2)) == std::string::npos,
			           e.name + "=" + e.value);
	return 0;
}
