#include "core/io/telemetry.hpp"

#include "core/io/file_io.hpp"
#include "core/util/throttle.hpp"
#include "core/model/report.hpp"
#include "core/util/log.hpp"
#include "core/util/text.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

namespace flexslurm
{
namespace
{

constexpr uint64_t mib = uint64_t{1} << 20;

// ---- file backend ------------------------------------------------------------------------------

constexpr size_t max_telemetry_file = 64 * 1024;

// Problems are "line N: what"; an empty string means the value is good.
std::string parse_busy(std::string_view word, double &out)
{
	double value = 0;
	auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
	if (ec == std::errc::result_out_of_range ||
	    (ec == std::errc() && end == word.data() + word.size() && !std::isfinite(value)))
		return "busy " + quoted(word, std::string_view::npos) + " is not a finite number";
	if (ec != std::errc() || end != word.data() + word.size())
		return "busy " + quoted(word, std::string_view::npos) + " is not a number";
	if (value < 0 || value > 100)
		return "busy " + quoted(word, std::string_view::npos) + " is out of range (0..100)";
	out = value;
	return {};
}

std::string parse_memory_mib(std::string_view word, uint64_t &bytes)
{
	uint64_t value = 0;
	if (!parse_number<uint64_t>(word, value, 0, std::numeric_limits<uint64_t>::max()))
		return "memory_mib " + quoted(word, std::string_view::npos) + " is not a whole number of MiB";
	if (value > std::numeric_limits<uint64_t>::max() / mib)
		return "memory_mib " + quoted(word, std::string_view::npos) + " is too large";
	bytes = value * mib;
	return {};
}

// "job J [busy X] [memory_mib N]"
std::string parse_job_line(const std::vector<std::string_view> &words, JobUse &use)
{
	if (words.size() < 2)
		return "job needs a job id";
	if (!parse_number<uint32_t>(words[1], use.job, 1, std::numeric_limits<uint32_t>::max()))
		return "job " + quoted(words[1], std::string_view::npos) + " is not a job id";
	bool seen_busy = false, seen_memory = false;
	for (size_t i = 2; i < words.size(); i += 2) {
		const std::string_view key = words[i];
		if (key != "busy" && key != "memory_mib")
			return "unknown job field " + quoted(key, std::string_view::npos) +
			       " (allowed: busy, memory_mib)";
		bool &seen = key == "busy" ? seen_busy : seen_memory;
		if (seen)
			return "job " + std::to_string(use.job) + ": " + std::string(key) + " given twice";
		seen = true;
		if (i + 1 >= words.size())
			return "job " + std::to_string(use.job) + ": " + std::string(key) + " needs a value";
		std::string problem = key == "busy" ? parse_busy(words[i + 1], use.busy_percent)
		                                    : parse_memory_mib(words[i + 1], use.memory_bytes);
		if (!problem.empty())
			return problem;
	}
	return {};
}

// A telemetry file's contents; the error names the line and the problem.
Result<DeviceSample> parse_telemetry_text(std::string_view text)
{
	DeviceSample sample;
	bool seen_busy = false, seen_memory = false;
	std::set<uint32_t> jobs_seen;
	int line_number = 0;
	size_t start = 0;
	while (start < text.size()) {
		size_t end = text.find('\n', start);
		if (end == std::string_view::npos)
			end = text.size();
		std::string_view line = text.substr(start, end - start);
		start = end + 1;
		++line_number;
		if (const size_t hash = line.find('#'); hash != std::string_view::npos)
			line = line.substr(0, hash);
		const auto words = flexslurm::words(line);
		if (words.empty())
			continue;
		auto fail = [&](const std::string &problem) {
			return Result<DeviceSample>::failure("line " + std::to_string(line_number) + ": " +
			                                     problem);
		};
		const std::string_view key = words[0];
		std::string problem;
		if (key == "busy" || key == "memory_mib") {
			bool &seen = key == "busy" ? seen_busy : seen_memory;
			if (seen)
				return fail(std::string(key) + " given twice");
			seen = true;
			if (words.size() < 2)
				return fail(std::string(key) + " needs a value");
			if (words.size() > 2)
				return fail("unexpected " + quoted(words[2], std::string_view::npos) +
				            " after " + std::string(key));
			problem = key == "busy" ? parse_busy(words[1], sample.busy_percent)
			                        : parse_memory_mib(words[1], sample.memory_used_bytes);
		} else if (key == "job") {
			if (sample.jobs.size() >= max_jobs_per_device)
				return fail("more than " + std::to_string(max_jobs_per_device) +
				            " job lines");
			JobUse use;
			problem = parse_job_line(words, use);
			if (problem.empty() && !jobs_seen.insert(use.job).second)
				problem = "job " + std::to_string(use.job) + " listed twice";
			if (problem.empty())
				sample.jobs.push_back(use);
		} else {
			problem = "unknown keyword " + quoted(key, std::string_view::npos) +
			          " (allowed: busy, memory_mib, job)";
		}
		if (!problem.empty())
			return fail(problem);
	}
	if (!seen_busy)
		return Result<DeviceSample>::failure("no \"busy\" line (it is required)");
	sample.per_job = !sample.jobs.empty();
	return sample;
}

class FileBackend final : public TelemetryBackend
{
public:
	FileBackend(const SliceLayout &layout, std::string dir) : dir_(std::move(dir))
	{
		const auto &devices = layout.devices();
		for (size_t i = 0; i < devices.size(); ++i) {
			const std::string &path = devices[i].device_path;
			const std::string base = path.substr(path.find_last_of('/') + 1);
			if (base.empty() || base == "." || base == "..")
				continue; // deserialize() does not let such a path through
			sources_.push_back({static_cast<int>(i), dir_ + "/" + base});
		}
	}

	std::string_view name() const noexcept override { return "file"; }

	Result<std::vector<DeviceSample>> sample() override
	{
		struct stat st {
		};
		if (stat(dir_.c_str(), &st) != 0)
			return Result<std::vector<DeviceSample>>::failure(
			        "telemetry: cannot read directory " + dir_ + ": " + std::strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return Result<std::vector<DeviceSample>>::failure("telemetry: " + dir_ +
			                                                  " is not a directory");
		std::vector<DeviceSample> samples;
		for (const Source &source : sources_) {
			// Links followed: an admin may point a device's file elsewhere.
			const FileRead file = read_file(source.path, {max_telemetry_file, true, false});
			std::string problem;
			switch (file.error) {
			case ReadError::missing:
				log_debug("telemetry: " + source.path +
				          ": no such file; the device counts as busy");
				problems_.clear(source.path);
				continue;
			case ReadError::too_large:
				problem = "larger than 64 KiB";
				break;
			case ReadError::none:
				if (auto parsed = parse_telemetry_text(file.text)) {
					parsed->device = source.device;
					samples.push_back(std::move(*parsed));
					problems_.clear(source.path);
					continue;
				} else {
					problem = parsed.error();
				}
				break;
			default:
				problem = "cannot read: " + file.why();
				break;
			}
			problems_.report(source.path, "telemetry: " + source.path + ": " + problem +
			                                      "; the device counts as busy");
		}
		return samples;
	}

private:
	struct Source {
		int device = 0;
		std::string path;
	};
	std::string dir_;
	std::vector<Source> sources_;
	ProblemLog problems_;
};

// ---- unsupported vendors -----------------------------------------------------------------------

class UnsupportedBackend final : public TelemetryBackend
{
public:
	explicit UnsupportedBackend(Vendor vendor) : vendor_(vendor) {}
	std::string_view name() const noexcept override { return "unsupported"; }
	Result<std::vector<DeviceSample>> sample() override
	{
		if (!logged_) {
			logged_ = true;
			log_info(
			        "telemetry: " + std::string(vendor_name(vendor_)) +
			        " devices: no usable telemetry library; their slices count as busy and are never lent");
		}
		return std::vector<DeviceSample>{};
	}

private:
	Vendor vendor_;
	bool logged_ = false;
};

std::string_view strip_prefix(std::string_view text, std::string_view prefix)
{
	return text.substr(0, prefix.size()) == prefix ? text.substr(prefix.size()) : text;
}

// ---- auto: each vendor's backend -----------------------------------------------------------------

class CombinedBackend final : public TelemetryBackend
{
public:
	explicit CombinedBackend(std::vector<std::unique_ptr<TelemetryBackend>> parts)
	    : parts_(std::move(parts))
	{
	}
	std::string_view name() const noexcept override { return "auto"; }
	Result<std::vector<DeviceSample>> sample() override
	{
		std::vector<DeviceSample> samples;
		for (const auto &part : parts_) {
			const std::string subject(part->name());
			auto s = part->sample();
			if (!s) {
				problems_.report(subject,
				                 s.error() + " (" + subject + "'s devices count as busy)");
				continue;
			}
			problems_.clear(subject);
			for (DeviceSample &d : *s)
				samples.push_back(std::move(d));
		}
		return samples;
	}

private:
	std::vector<std::unique_ptr<TelemetryBackend>> parts_;
	ProblemLog problems_;
};

} // namespace

std::unique_ptr<TelemetryBackend> make_auto_backend(const SliceLayout &layout,
                                                    const VendorLibraries &libraries,
                                                    const std::string &proc_root, const SlurmMarks &marks)
{
	std::vector<Vendor> vendors;
	for (const DeviceSlices &d : layout.devices())
		if (std::find(vendors.begin(), vendors.end(), d.vendor) == vendors.end())
			vendors.push_back(d.vendor);
	std::vector<std::unique_ptr<TelemetryBackend>> parts;
	for (Vendor vendor : vendors) {
		Result<std::unique_ptr<TelemetryBackend>> backend =
		        vendor == Vendor::Nvidia ? make_nvml_backend(layout, libraries.nvml, proc_root, marks)
		        : vendor == Vendor::Amd  ? make_amd_backend(layout, libraries.amd, proc_root, marks)
		                                : make_dcmi_backend(layout, libraries.dcmi, proc_root, marks);
		if (backend)
			parts.push_back(std::move(*backend));
		else
			log_error("lending.telemetry: " + std::string(vendor_name(vendor)) + ": " +
			          std::string(strip_prefix(backend.error(), "telemetry: ")) +
			          "; this node's " + std::string(vendor_name(vendor)) +
			          " slices count as busy (never lent)");
	}
	if (parts.empty())
		return make_unsupported_backend(vendors.empty() ? Vendor::Nvidia : vendors.front());
	if (parts.size() == 1)
		return std::move(parts.front());
	return std::make_unique<CombinedBackend>(std::move(parts));
}

std::unique_ptr<TelemetryBackend> make_file_backend(const SliceLayout &layout, std::string dir)
{
	return std::make_unique<FileBackend>(layout, std::move(dir));
}

std::unique_ptr<TelemetryBackend> make_unsupported_backend(Vendor vendor)
{
	return std::make_unique<UnsupportedBackend>(vendor);
}

} // namespace flexslurm
