// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/io/device_identity.hpp"

#include "core/io/file_io.hpp"
#include "core/util/text.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>
#include <memory>

namespace flexslurm
{

namespace
{

std::string basename_of(const std::string &path)
{
	const auto slash = path.rfind('/');
	return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The accelerator a device node belongs to, from its name: nvidiaN,
// dri/renderD(128+N), dri/cardN, davinciN (N: the vendor's PCI-order index),
// vdavinciN (an Ascend vNPU: N is its vNPU id).
struct NodeName {
	Vendor vendor;
	int index;
};
std::optional<NodeName> classify_node(const std::string &path)
{
	const std::string base = basename_of(path);
	struct Stem {
		const char *prefix;
		Vendor vendor;
		int offset;
	};
	for (const Stem &s : {Stem{"nvidia", Vendor::Nvidia, 0}, Stem{"renderD", Vendor::Amd, 128},
	                      Stem{"card", Vendor::Amd, 0}, Stem{"davinci", Vendor::Ascend, 0},
	                      Stem{"vdavinci", Vendor::Ascend, 0}}) {
		const std::string_view p = s.prefix;
		long n = 0;
		if (base.size() > p.size() && base.compare(0, p.size(), p) == 0 &&
		    parse_number(std::string_view(base).substr(p.size()), n, long{s.offset},
		                 long{s.offset} + (1 << 16) - 1))
			return NodeName{s.vendor, static_cast<int>(n - s.offset)};
	}
	return std::nullopt;
}

bool excluded(const Accelerator &a, const std::vector<std::string> &exclude)
{
	for (const std::string &e : exclude) {
		const std::string l = lower(e);
		if ((!a.model.empty() && l == lower(a.model)) || (!a.uuid.empty() && l == lower(a.uuid)) ||
		    (!a.pci_bus_id.empty() && normalize_pci_bus_id(e) == a.pci_bus_id))
			return true;
	}
	return false;
}

std::string describe(const Accelerator &a, const std::string &source)
{
	return std::string(vendor_name(a.vendor)) + " " + a.device_nodes.at(0) + ": type " +
	       (a.model.empty() ? "(none)" : a.model) + ", UUID " + (a.uuid.empty() ? "unknown" : a.uuid) +
	       ", PCI " + (a.pci_bus_id.empty() ? "unknown" : a.pci_bus_id) + " (" + source + ")";
}

} // namespace

std::string gres_types_order_problem(std::string_view gres_types)
{
	const int gpu = list_position(gres_types, "gpu");
	const int vslice = list_position(gres_types, "vslice");
	if (gpu >= 0 && vslice >= 0 && vslice < gpu)
		return "GresTypes=" + std::string(gres_types) +
		       " names vslice before gpu: gres/vslice does not see the gpu records AutoDetect adds; write gpu first (GresTypes=gpu,vslice)";
	return "";
}

std::string normalize_pci_bus_id(std::string_view id)
{
	// [domain:]bus:device.function, hex; NVIDIA writes an 8-digit domain.
	std::string s = lower(trim(id));
	const auto dot = s.rfind('.');
	const auto c2 = s.rfind(':');
	if (dot == std::string::npos || c2 == std::string::npos || dot < c2)
		return "";
	const auto c1 = s.rfind(':', c2 == 0 ? std::string::npos : c2 - 1);
	const std::string domain = c1 == std::string::npos ? "0" : s.substr(0, c1);
	const std::string bus =
	        s.substr(c1 == std::string::npos ? 0 : c1 + 1, c2 - (c1 == std::string::npos ? 0 : c1 + 1));
	const std::string dev = s.substr(c2 + 1, dot - c2 - 1);
	const std::string fn = s.substr(dot + 1);
	unsigned long v[4] = {};
	const std::string *parts[4] = {&domain, &bus, &dev, &fn};
	const unsigned long max[4] = {0xffffffff, 0xff, 0x1f, 0x7};
	for (int i = 0; i < 4; ++i) {
		const std::string &p = *parts[i];
		auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v[i], 16);
		if (p.empty() || p.size() > 8 || ec != std::errc() || end != p.data() + p.size() ||
		    v[i] > max[i])
			return "";
	}
	if (v[0] > 0xffff)
		return "";
	char out[32];
	std::snprintf(out, sizeof out, "%04lx:%02lx:%02lx.%01lx", v[0], v[1], v[2], v[3]);
	return out;
}

Result<std::vector<std::string>> expand_device_files(std::string_view file)
{
	using R = Result<std::vector<std::string>>;
	std::vector<std::string> out;
	const auto open = file.find('[');
	if (open == std::string_view::npos) {
		if (file.find(']') != std::string_view::npos || file.empty())
			return R::failure("\"" + std::string(file) + "\": malformed device file");
		out.emplace_back(file);
		return out;
	}
	const auto close = file.find(']', open);
	if (close == std::string_view::npos || file.find('[', open + 1) != std::string_view::npos)
		return R::failure("\"" + std::string(file) + "\": malformed range");
	const std::string_view head = file.substr(0, open), tail = file.substr(close + 1);
	std::string_view body = file.substr(open + 1, close - open - 1);
	while (!body.empty()) {
		const auto comma = body.find(',');
		const std::string_view item = body.substr(0, comma);
		body = comma == std::string_view::npos ? std::string_view() : body.substr(comma + 1);
		const auto dash = item.find('-');
		const std::string_view a = item.substr(0, dash);
		const std::string_view b = dash == std::string_view::npos ? a : item.substr(dash + 1);
		long lo = 0, hi = 0;
		if (!parse_number(a, lo, 0L, std::numeric_limits<long>::max()) ||
		    !parse_number(b, hi, lo, std::numeric_limits<long>::max()))
			return R::failure("\"" + std::string(file) + "\": malformed range");
		// Zero padding as Slurm's hostlist keeps it: [00-07].
		const size_t width = a.size() > 1 && a[0] == '0' ? a.size() : 0;
		for (long n = lo; n <= hi; ++n) {
			if (out.size() >= max_expanded_files)
				return R::failure("\"" + std::string(file) + "\": more than " +
				                  std::to_string(max_expanded_files) + " files");
			std::string num = std::to_string(n);
			if (num.size() < width)
				num.insert(0, width - num.size(), '0');
			out.push_back(std::string(head) + num + std::string(tail));
		}
	}
	if (out.empty())
		return R::failure("\"" + std::string(file) + "\": empty range");
	return out;
}

std::vector<GpuUnit> gpu_units_of(const std::vector<GresRecord> &records, std::vector<std::string> &problems)
{
	std::vector<GpuUnit> units;
	int next = 0;
	for (const GresRecord &r : records) {
		if (lower(r.name) != "gpu" || r.file.empty())
			continue;
		if (r.file[0] != '/') {
			problems.push_back("gpu record " + r.file + ": not an absolute path");
			continue;
		}
		std::vector<std::string> files;
		if (r.multiple_files) {
			std::string_view rest = r.file;
			while (!rest.empty()) {
				const auto comma = rest.find(',');
				auto expanded = expand_device_files(rest.substr(0, comma));
				rest = comma == std::string_view::npos ? std::string_view()
				                                       : rest.substr(comma + 1);
				if (!expanded) {
					problems.push_back("gpu record " + r.file + ": " + expanded.error());
					files.clear();
					break;
				}
				files.insert(files.end(), expanded->begin(), expanded->end());
			}
			if (files.empty())
				continue;
			// MultipleFiles is one device: its accelerator node, and
			// for a MIG instance the capability files beside it.
			GpuUnit u;
			u.unit = next++;
			u.type = r.type;
			u.unique_id = r.unique_id;
			u.mig = r.unique_id.rfind("MIG-", 0) == 0 ||
			        std::any_of(files.begin(), files.end(), [](const std::string &f) {
				        return f.find("/nvidia-caps/") != std::string::npos;
			        });
			for (const std::string &f : files)
				if (classify_node(f)) {
					u.path = f;
					break;
				}
			if (u.path.empty())
				u.path = files.front();
			units.push_back(std::move(u));
			continue;
		}
		auto expanded = expand_device_files(r.file);
		if (!expanded) {
			problems.push_back("gpu record " + r.file + ": " + expanded.error());
			continue;
		}
		for (const std::string &f : *expanded) {
			GpuUnit u;
			u.unit = next++;
			u.path = f;
			u.type = r.type;
			u.unique_id = r.unique_id;
			u.mig = r.unique_id.rfind("MIG-", 0) == 0;
			units.push_back(std::move(u));
		}
	}
	return units;
}

std::optional<NvidiaGpuInfo> parse_nvidia_information(std::string_view text)
{
	NvidiaGpuInfo info;
	constexpr size_t max_lines = 200;
	size_t lines = 0;
	while (!text.empty() && lines++ < max_lines) {
		const auto nl = text.find('\n');
		const std::string_view line = text.substr(0, nl);
		text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
		const auto colon = line.find(':');
		if (colon == std::string_view::npos)
			continue;
		const std::string_view key = trim(line.substr(0, colon));
		const std::string_view value = trim(line.substr(colon + 1));
		// The values end up in the tab-separated layout file: printable
		// ASCII only, or the field is left unknown.
		if (value.size() > 256 ||
		    !std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c < 0x7f; }))
			continue;
		if (key == "Model")
			info.model = std::string(value);
		else if (key == "GPU UUID")
			info.uuid = std::string(value);
		else if (key == "Bus Location")
			info.pci_bus_id = normalize_pci_bus_id(value);
		else if (key == "Device Minor") {
			long m = 0;
			if (parse_number(value, m, 0L, (1L << 20) - 1))
				info.minor = static_cast<int>(m);
		}
	}
	if (info.minor < 0 || info.pci_bus_id.empty())
		return std::nullopt;
	return info;
}

std::vector<NvidiaGpuInfo> read_nvidia_gpus(const std::string &dir, const DirReader &list,
                                            const FileReader &read)
{
	std::vector<NvidiaGpuInfo> out;
	for (const std::string &entry : list(dir)) {
		if (entry.empty() || entry[0] == '.' || entry.find('/') != std::string::npos)
			continue;
		if (auto text = read(dir + "/" + entry + "/information"))
			if (auto info = parse_nvidia_information(*text))
				out.push_back(std::move(*info));
		if (out.size() >= 256)
			break;
	}
	return out;
}

std::vector<NvidiaGpuInfo> read_nvidia_gpus(const std::string &dir)
{
	auto list = [](const std::string &d) {
		auto names = list_directory(d, 1024);
		return names ? std::move(*names) : std::vector<std::string>{};
	};
	auto read = [](const std::string &path) { return read_nonempty(path, 8192); };
	return read_nvidia_gpus(dir, list, read);
}

IdentifiedDevices identify_devices(const Inventory &hw, const std::string &device_dir,
                                   const std::vector<GpuUnit> &units,
                                   const std::vector<NvidiaGpuInfo> &nvidia,
                                   const std::vector<std::string> &exclude)
{
	IdentifiedDevices out;
	out.gpu_units = units;
	const std::string dir = device_dir.ends_with('/') ? device_dir : device_dir + "/";
	std::vector<bool> used(hw.accelerators.size(), false);
	std::vector<std::string> seen_paths;
	std::vector<std::string> excluded_types; // of excluded gpu units

	auto hw_index = [&](auto pred) -> std::optional<size_t> {
		for (size_t i = 0; i < hw.accelerators.size(); ++i)
			if (pred(hw.accelerators[i]))
				return i;
		return std::nullopt;
	};

	for (const GpuUnit &u : units) {
		if (std::find(seen_paths.begin(), seen_paths.end(), u.path) != seen_paths.end()) {
			// A second unit on one device (MIG instances of one GPU).
			if (u.mig &&
			    std::find(out.unsliced.begin(), out.unsliced.end(), u.path) == out.unsliced.end())
				out.unsliced.push_back(u.path);
			continue;
		}
		seen_paths.push_back(u.path);
		const auto name = classify_node(u.path);
		if (!name) {
			out.report.push_back(
			        u.path + ": gpu unit " + std::to_string(u.unit) +
			        " is not an accelerator node flexslurm knows (nvidiaN, dri/renderDN, dri/cardN, davinciN, vdavinciN); not sliced");
			continue;
		}
		const NvidiaGpuInfo *drv = nullptr;
		if (name->vendor == Vendor::Nvidia)
			for (const NvidiaGpuInfo &g : nvidia)
				if (g.minor == name->index)
					drv = &g;
		std::optional<size_t> match;
		std::string source = "gres.conf gpu unit " + std::to_string(u.unit);
		const auto vnpu = vnpu_of_node(u.path);
		if (vnpu) {
			// A vNPU: where it sits is its physical NPU's; that NPU is never
			// sliced or held whole beside its vNPUs (its node stays hidden).
			match = hw_index([&](const Accelerator &a) {
				return a.vendor == Vendor::Ascend && a.vendor_index == vnpu->parent;
			});
			source += ", vNPU " + std::to_string(vnpu->id) + " of NPU " +
			          std::to_string(vnpu->parent) + (match ? "" : " (not found by hwloc)");
		} else if (drv) {
			match = hw_index(
			        [&](const Accelerator &a) { return a.pci_bus_id == drv->pci_bus_id; });
			source += ", PCI bus from the NVIDIA driver";
		} else {
			match = hw_index([&](const Accelerator &a) {
				return a.vendor == name->vendor && a.vendor_index == name->index;
			});
			source += match ? ", PCI bus assumed in device-number order" : ", not found by hwloc";
		}
		Accelerator a;
		if (match && vnpu) {
			a = hw.accelerators[*match];
			// Its own gres.conf record, if any, names the same file: then
			// it is a gpu unit that is never sliced (as a MIG parent).
			const std::string parent = dir + a.device_nodes.at(0);
			if (std::find(out.unsliced.begin(), out.unsliced.end(), parent) == out.unsliced.end())
				out.unsliced.push_back(parent);
			used[*match] = true;
			a.vendor_index = vnpu->id;
			a.uuid.clear();
			a.memory_bytes = 0; // the vNPU template's share: slicing.classes[].device_memory
		} else if (match) {
			a = hw.accelerators[*match];
			used[*match] = true;
		} else {
			a.vendor = name->vendor;
			a.vendor_index = name->index;
		}
		if (drv) {
			a.uuid = drv->uuid.empty() ? a.uuid : drv->uuid;
			a.pci_bus_id = drv->pci_bus_id;
			if (a.model_name.empty())
				a.model_name = drv->model;
		}
		a.device_nodes = {u.path};
		if (!u.type.empty())
			a.model = u.type;
		else if (a.model.empty())
			a.model = gres_type_for(a.vendor, a.model_name, a.pci_device_id);
		if (u.mig) {
			out.unsliced.push_back(u.path);
			out.report.push_back(describe(a, source) + ": in MIG mode, not sliced");
		} else if (excluded(a, exclude)) {
			out.unsliced.push_back(u.path);
			out.report.push_back(describe(a, source) +
			                     ": excluded by slicing.exclude, not sliced");
			excluded_types.push_back(a.model);
		} else {
			out.report.push_back(describe(a, source));
			out.sliced.push_back(std::move(a));
		}
	}
	// A MIG parent met first as a plain unit (File= of the whole GPU and
	// MultipleFiles of its instances) is not sliced either.
	std::erase_if(out.sliced, [&](const Accelerator &a) {
		return std::find(out.unsliced.begin(), out.unsliced.end(), a.device_nodes[0]) !=
		       out.unsliced.end();
	});

	// slurmctld pairs the n-th sliced device of a type with the n-th gpu
	// unit of that type: an excluded GPU sharing the type shifts the pairs.
	for (const std::string &t : excluded_types)
		if (std::any_of(out.sliced.begin(), out.sliced.end(),
		                [&](const Accelerator &a) { return a.model == t; }))
			out.report.push_back(
			        "warning: an excluded GPU has type " + t +
			        " like GPUs that are sliced: give it a Type= of its own in gres.conf, or select/flex may pair whole-GPU jobs with the wrong device's slices");

	for (size_t i = 0; i < hw.accelerators.size(); ++i) {
		if (used[i])
			continue;
		Accelerator a = hw.accelerators[i];
		a.device_nodes.at(0) = dir + a.device_nodes.at(0);
		if (std::find(seen_paths.begin(), seen_paths.end(), a.device_nodes[0]) != seen_paths.end())
			continue;
		const std::string source =
		        units.empty() ? "hwloc" : "hwloc; no gres.conf gpu record names it";
		if (excluded(a, exclude)) {
			out.unsliced.push_back(a.device_nodes[0]);
			out.report.push_back(describe(a, source) +
			                     ": excluded by slicing.exclude, not sliced");
			continue;
		}
		out.report.push_back(describe(a, source));
		out.sliced.push_back(std::move(a));
	}
	return out;
}

} // namespace flexslurm
