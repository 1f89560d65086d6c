// SPDX-License-Identifier: GPL-2.0-or-later
#include "plugins/gres_common/slice_gres.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <utility>

namespace flexslurm::plugin
{

namespace
{

constexpr const char *config_file_name = "flexslurm.yaml";

std::string cpu_list(const std::vector<unsigned> &cpus)
{
	std::string out;
	for (unsigned c : cpus)
		out += (out.empty() ? "" : ",") + std::to_string(c);
	return out;
}

// list_find_first/list_delete_all matchers; key: the GRES name.
int is_record_of(void *x, void *key)
{
	auto *rec = static_cast<gres_slurmd_conf_t *>(x);
	return xstrcasecmp(rec->name, static_cast<const char *>(key)) == 0 ? 1 : 0;
}

int is_record_with_file_of(void *x, void *key)
{
	return is_record_of(x, key) && static_cast<gres_slurmd_conf_t *>(x)->file ? 1 : 0;
}

std::vector<int> held_slices(bitstr_t *bits)
{
	std::vector<int> held;
	if (!bits)
		return held;
	for (bitoff_t i = bit_ffs(bits); i >= 0 && i < bit_size(bits); ++i)
		if (bit_test(bits, i))
			held.push_back(static_cast<int>(i));
	return held;
}

} // namespace

void SliceGres::adopt(SliceLayout layout)
{
	layout_ = std::move(layout);
	rebuild_devices();
}

void SliceGres::clear()
{
	devices_.reset();
	layout_.reset();
}

// Slurm's device list: one entry per slice, all slices of a device naming
// the same file, so task/cgroup allows the device if any slice is held.
void SliceGres::rebuild_devices()
{
	devices_.reset(list_create(destroy_gres_device));
	for (const DeviceSlices &d : layout_->devices()) {
		for (int i = 0; i < d.slices; ++i) {
			auto *dev = static_cast<gres_device_t *>(xmalloc(sizeof(gres_device_t)));
			dev->index = d.first_slice + i;
			dev->dev_num = d.vendor_index;
			dev->dev_desc.type = DEV_TYPE_CHAR;
			dev->dev_desc.major = d.device_id.major;
			dev->dev_desc.minor = d.device_id.minor;
			dev->path = xstrdup(d.device_path.c_str());
			list_append(devices_.get(), dev);
		}
	}
}

void SliceGres::publish(compat::list_ptr gres_conf_list, node_config_load_t *node_conf) const
{
	void *key = const_cast<char *>(name_);
	if (list_find_first(gres_conf_list, is_record_with_file_of, key))
		info("gres/%s: File= lines for %s in gres.conf are ignored: slices come from discovery (%s)",
		     name_, name_, config_file_name);
	list_delete_all(gres_conf_list, is_record_of, key);

	for (const DeviceSlices &d : layout_->devices()) {
		char *abs_cpus = nullptr;
		compat::bitmap_holder mac_cpus;
		const bool cpus_fit = !d.cpus.empty() && d.cpus.back() < node_conf->cpu_cnt;
		if (cpus_fit) {
			mac_cpus.reset(bit_alloc(node_conf->cpu_cnt));
			for (unsigned c : d.cpus)
				bit_set(mac_cpus.get(), static_cast<bitoff_t>(c));
			std::string mac = cpu_list(d.cpus);
			if (!node_conf->xcpuinfo_mac_to_abs ||
			    node_conf->xcpuinfo_mac_to_abs(const_cast<char *>(mac.c_str()), &abs_cpus) !=
			            SLURM_SUCCESS) {
				mac_cpus.reset();
				xfree(abs_cpus);
			}
		} else if (!d.cpus.empty()) {
			verbose("gres/%s: %s: topology CPUs do not fit the node's %u CPUs; no CPU affinity",
			        name_, d.device_path.c_str(), node_conf->cpu_cnt);
		}
		// One record per device, Count = its slices: slurmctld then keeps
		// each device as one topology entry, which is how select/flex
		// tells which slices share a device.
		compat::add_device_record(gres_conf_list, name_, static_cast<uint64_t>(d.slices),
		                          node_conf->cpu_cnt, abs_cpus, mac_cpus.get(), d.device_path.c_str(),
		                          d.model.c_str());
		xfree(abs_cpus);
	}
}

void SliceGres::set_env(char ***env, bitstr_t *bits, gres_internal_flags_t flags, DeviceNumbering numbering,
                        bool merge_earlier) const
{
	if (!layout_)
		return;
	auto held = held_slices(bits);
	if (merge_earlier && !borrow_ && !held.empty()) {
		// Prolog/epilog: called once per vslice type (mixed node), on one environment.
		const auto earlier = SliceEnv::decode([&](const char *name) -> std::optional<std::string> {
			const char *v = getenvp(*env, name);
			return v ? std::optional<std::string>(v) : std::nullopt;
		});
		if (earlier && !earlier->borrowed)
			held = with_earlier_slices(*layout_, *earlier, std::move(held));
	}
	if (held.empty()) {
		// gres/vborrow comes after gres/vslice in GresTypes and must not
		// clear what vslice set for a job that holds slices.
		if (!borrow_ && !(flags & GRES_INTERNAL_FLAG_PROTECT_ENV))
			for (const std::string &name : owned_variable_names())
				unsetenvp(*env, name.c_str());
		return;
	}
	// A borrower gets the slice's compute share and only memory that no
	// slice reserved, through the same variables (and limit backends).
	const SliceLayout &view = borrow_ ? layout_->borrow_view() : *layout_;
	// SLURM_VSLICE_BORROWED=1 tells the SPANK job prolog to compute a
	// borrower's limits from the borrow view (memory no slice reserved).
	for (const EnvVar &v : slice_environment(view, held, numbering, borrow_))
		env_array_overwrite(env, v.name.c_str(), v.value.c_str());
}

void SliceGres::send_stepd(buf_t *buffer) const
{
	// packstr()'s wire form (length with the NUL, then the bytes); the
	// macro's C casts would trip -Wold-style-cast here.
	const std::string text = layout_ ? layout_->serialize() : std::string();
	packmem(const_cast<char *>(text.c_str()), static_cast<uint32_t>(text.size() + 1), buffer);
}

void SliceGres::recv_stepd(buf_t *buffer)
{
	char *text = nullptr;
	uint32_t len = 0;
	if (unpackstr_xmalloc(&text, &len, buffer) != SLURM_SUCCESS) {
		error("gres/%s: recv_stepd: cannot unpack the slice layout", name_);
		return;
	}
	const std::string s = text ? text : "";
	xfree(text);
	if (s.empty()) {
		clear();
		return;
	}
	auto parsed = SliceLayout::deserialize(s);
	if (!parsed) {
		error("gres/%s: recv_stepd: %s", name_, parsed.error().c_str());
		return;
	}
	adopt(std::move(*parsed));
}

std::optional<Config> load_node_config_file()
{
	char *path_c = get_extra_conf_path(const_cast<char *>(config_file_name));
	const std::string path = path_c ? path_c : config_file_name;
	xfree(path_c);

	struct stat st {
	};
	if (stat(path.c_str(), &st) != 0 && errno == ENOENT) {
		// slurmd's conf-cache holds slurm.conf when it runs configless.
		if (auto refusal = refuse_missing_config(path, in_conf_cache(path))) {
			error("flexslurm: %s", refusal->c_str());
			return std::nullopt;
		}
		Config config = Config::defaults();
		info("%s: %s: not found; using built-in defaults (%d slices per device)", compat::log_prefix,
		     path.c_str(), config.default_rule.slices);
		return config;
	}
	auto loaded = Config::from_file(path);
	if (!loaded) {
		error("flexslurm: %s", loaded.error().c_str());
		return std::nullopt;
	}
	return std::move(*loaded);
}

std::vector<GresRecord> gres_records(compat::list_ptr gres_conf_list)
{
	std::vector<GresRecord> out;
	for (auto *rec : compat::list_items<gres_slurmd_conf_t>(gres_conf_list)) {
		if (out.size() >= 4096)
			break;
		GresRecord r;
		r.name = rec->name ? rec->name : "";
		r.type = rec->type_name ? rec->type_name : "";
		r.file = rec->file ? rec->file : "";
		r.unique_id = rec->unique_id ? rec->unique_id : "";
		r.multiple_files = (rec->config_flags & GRES_CONF_HAS_MULT) != 0;
		r.count = rec->count;
		out.push_back(std::move(r));
	}
	return out;
}

DeviceNumbering job_numbering()
{
	return gres_use_local_device_index() ? DeviceNumbering::Local : DeviceNumbering::Physical;
}

compat::prep_info_t *prep_build_env(const gres_job_state_t *gres_js)
{
	auto *ei = static_cast<compat::prep_info_t *>(xmalloc(sizeof(compat::prep_info_t)));
	ei->node_cnt = gres_js->node_cnt;
	ei->gres_bit_alloc = static_cast<bitstr_t **>(xcalloc(ei->node_cnt, sizeof(bitstr_t *)));
	ei->gres_cnt_node_alloc = static_cast<uint64_t *>(xcalloc(ei->node_cnt, sizeof(uint64_t)));
	for (uint32_t i = 0; i < ei->node_cnt; i++) {
		if (gres_js->gres_bit_alloc && gres_js->gres_bit_alloc[i]) {
			ei->gres_bit_alloc[i] = bit_copy(gres_js->gres_bit_alloc[i]);
			if (gres_js->gres_cnt_node_alloc)
				ei->gres_cnt_node_alloc[i] = gres_js->gres_cnt_node_alloc[i];
		}
	}
	return ei;
}

void prep_set_env(const SliceGres &gres, char ***env, const compat::prep_info_t *prep, int node_inx)
{
	if (!prep || node_inx < 0 || static_cast<uint32_t>(node_inx) >= prep->node_cnt ||
	    !prep->gres_bit_alloc)
		return;
	gres.set_env(env, prep->gres_bit_alloc[node_inx], GRES_INTERNAL_FLAG_NONE, DeviceNumbering::Physical,
	             /*merge_earlier=*/true);
}

} // namespace flexslurm::plugin
