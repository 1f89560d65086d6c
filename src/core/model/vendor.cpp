// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/vendor.hpp"

#include "core/util/names.hpp"

namespace flexslurm
{

namespace
{

constexpr NameTable<Vendor> vendor_names[] = {
        {Vendor::Nvidia, "nvidia"},
        {Vendor::Amd, "amd"},
        {Vendor::Ascend, "ascend"},
};

} // namespace

std::string_view vendor_name(Vendor vendor) noexcept
{
	return name_of(vendor_names, vendor);
}

std::optional<Vendor> parse_vendor(std::string_view name) noexcept
{
	return value_of(vendor_names, name);
}

std::vector<std::string> vendor_control_nodes(Vendor vendor)
{
	switch (vendor) {
	case Vendor::Nvidia:
		return {"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"};
	case Vendor::Amd:
		return {"kfd"};
	case Vendor::Ascend:
		return {"davinci_manager", "devmm_svm", "hisi_hdc"};
	}
	return {};
}

} // namespace flexslurm
