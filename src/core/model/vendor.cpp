#include "core/model/vendor.hpp"

namespace flexslurm
{

std::string_view vendor_name(Vendor vendor) noexcept
{
	switch (vendor) {
	case Vendor::Nvidia:
		return "nvidia";
	case Vendor::Amd:
		return "amd";
	case Vendor::Ascend:
		return "ascend";
	}
	return "unknown";
}

std::optional<Vendor> parse_vendor(std::string_view name) noexcept
{
	for (Vendor v : {Vendor::Nvidia, Vendor::Amd, Vendor::Ascend})
		if (vendor_name(v) == name)
			return v;
	return std::nullopt;
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
