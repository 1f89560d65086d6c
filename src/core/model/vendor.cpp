// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/model/vendor.hpp"

#include "core/util/names.hpp"
#include "core/util/text.hpp"

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

std::optional<VnpuId> vnpu_of_node(std::string_view path) noexcept
{
	const auto slash = path.rfind('/');
	const std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
	VnpuId v;
	if (!base.starts_with(vnpu_node_prefix) ||
	    !parse_number(base.substr(vnpu_node_prefix.size()), v.id, 100, (1 << 16) - 1))
		return std::nullopt;
	v.parent = (v.id - 100) / 16;
	return v;
}

bool is_vnpu_node(std::string_view path) noexcept
{
	return vnpu_of_node(path).has_value();
}

} // namespace flexslurm
