// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/devices.hpp"

#include "core/util/names.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace flexslurm
{

namespace
{

struct KnownDevice {
	uint16_t vendor;
	uint16_t device;
	const char *type;
};

// Only used when no vendor library named the device (Ascend always, and
// XML topologies exported without NVML/RSMI).
constexpr std::array known_devices{
        KnownDevice{pci_vendor_nvidia, 0x2330, "h100"},
        KnownDevice{pci_vendor_nvidia, 0x2331, "h100"},
        KnownDevice{pci_vendor_nvidia, 0x2339, "h100"},
        KnownDevice{pci_vendor_nvidia, 0x2335, "h200"},
        KnownDevice{pci_vendor_nvidia, 0x20b0, "a100"},
        KnownDevice{pci_vendor_nvidia, 0x20b2, "a100"},
        KnownDevice{pci_vendor_nvidia, 0x20b5, "a100"},
        KnownDevice{pci_vendor_nvidia, 0x20f1, "a100"},
        KnownDevice{pci_vendor_nvidia, 0x1db1, "v100"},
        KnownDevice{pci_vendor_nvidia, 0x1db4, "v100"},
        KnownDevice{pci_vendor_nvidia, 0x1db5, "v100"},
        KnownDevice{pci_vendor_nvidia, 0x1eb8, "t4"},
        KnownDevice{pci_vendor_nvidia, 0x26b5, "l40"},
        KnownDevice{pci_vendor_nvidia, 0x26b9, "l40s"},
        KnownDevice{pci_vendor_nvidia, 0x27b8, "l4"},
        KnownDevice{pci_vendor_amd, 0x740f, "mi210"},
        KnownDevice{pci_vendor_amd, 0x7408, "mi250x"},
        KnownDevice{pci_vendor_amd, 0x740c, "mi250x"},
        KnownDevice{pci_vendor_amd, 0x738c, "mi100"},
        KnownDevice{pci_vendor_amd, 0x74a1, "mi300x"},
        KnownDevice{pci_vendor_huawei, 0xd801, "ascend910"},
        KnownDevice{pci_vendor_huawei, 0xd802, "ascend910b"},
        KnownDevice{pci_vendor_huawei, 0xd500, "ascend310p"},
        KnownDevice{pci_vendor_huawei, 0xd100, "ascend310"},
};

constexpr std::pair<Vendor, uint16_t> pci_vendors[] = {
        {Vendor::Nvidia, pci_vendor_nvidia},
        {Vendor::Amd, pci_vendor_amd},
        {Vendor::Ascend, pci_vendor_huawei},
};

uint16_t pci_vendor_of(Vendor v)
{
	return name_of(pci_vendors, v, uint16_t{0});
}

bool is_marketing_word(const std::string &w)
{
	static constexpr std::array words{"nvidia",   "amd",    "ati",    "tesla",       "geforce", "quadro",
	                                  "instinct", "radeon", "huawei", "corporation", "graphics"};
	return std::find(words.begin(), words.end(), w) != words.end();
}

// Slurm GRES type names: letters, digits, '-', '_', '.'.
std::string sanitize_type(std::string s)
{
	std::string out;
	for (char c : s) {
		const auto u = static_cast<unsigned char>(c);
		if (std::isalnum(u) || c == '-' || c == '_' || c == '.')
			out.push_back(static_cast<char>(std::tolower(u)));
	}
	return out;
}

} // namespace

std::string gres_type_for(Vendor vendor, std::string_view model_name, uint16_t pci_device_id)
{
	std::string word;
	std::string first_word;
	std::string lower;
	for (char c : model_name)
		lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
	lower.push_back(' ');
	for (char c : lower) {
		if (c == ' ' || c == '-' || c == '_' || c == '/' || c == ',') {
			if (!word.empty() && !is_marketing_word(word)) {
				if (std::any_of(word.begin(), word.end(), [](char ch) {
					    return std::isdigit(static_cast<unsigned char>(ch));
				    })) {
					if (std::string t = sanitize_type(word); !t.empty())
						return t;
				}
				if (first_word.empty())
					first_word = word;
			}
			word.clear();
		} else {
			word.push_back(c);
		}
	}
	for (const auto &k : known_devices)
		if (k.vendor == pci_vendor_of(vendor) && k.device == pci_device_id)
			return k.type;
	if (std::string t = sanitize_type(first_word); !t.empty())
		return t;
	return std::string(vendor_name(vendor));
}

} // namespace flexslurm
