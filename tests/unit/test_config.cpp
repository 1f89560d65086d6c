// SPDX-License-Identifier: GPL-2.0-or-later
// flexslurm.yaml: valid files, defaults, and the exact message for each
// kind of bad input (file, line, key, what is allowed).
#include "suites.hpp"

#include "core/io/config.hpp"

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace flexslurm;

START_TEST(missing_file_refused_only_by_a_configless_slurmd)
{
	ck_assert(in_conf_cache("/var/spool/slurmd/conf-cache/flexslurm.yaml"));
	ck_assert(in_conf_cache("/run/slurm/conf/flexslurm.yaml"));
	ck_assert(!in_conf_cache("/etc/slurm/flexslurm.yaml"));
	ck_assert(!in_conf_cache("/etc/conf-cache-old/flexslurm.yaml"));
	ck_assert(!in_conf_cache("flexslurm.yaml"));
	ck_assert(!refuse_missing_config("/etc/slurm/flexslurm.yaml", false));
	auto line = refuse_missing_config("/var/spool/slurmd/conf-cache/flexslurm.yaml", true);
	ck_assert(line.has_value());
	ck_assert_str(
	        *line,
	        "configless slurmd: /var/spool/slurmd/conf-cache/flexslurm.yaml not found; slurmctld does not send flexslurm.yaml: install the controller's copy there on every node (Slurm leaves it in place; a file holding `version: 1` means the built-in defaults)");
	ck_assert(line->find('\n') == std::string::npos);
	// What the line promises: `version: 1` alone is the built-in defaults.
	auto minimal = Config::from_string("version: 1\n", "minimal");
	ck_assert(static_cast<bool>(minimal));
	ck_assert_int_eq(minimal->default_rule.slices, Config::defaults().default_rule.slices);
}
END_TEST

START_TEST(defaults_without_a_file)
{
	Config c = Config::defaults();
	ck_assert_int_eq(c.default_rule.slices, 4);
	ck_assert_int_eq(c.default_rule.compute_percent, 25);
	ck_assert_int_eq(c.default_rule.memory_percent, 25);
	ck_assert_str(c.device_dir.c_str(), "/dev");
	ck_assert(c.topology_xml.empty());
}
END_TEST

// An empty flexslurm.yaml (or one with only comments) is refused with one
// line: silently taken as the defaults, it made a node INVAL with no line
// saying why.
START_TEST(empty_file_refused_with_one_line)
{
	for (const char *text : {"", "\n\n", "# nothing yet\n"}) {
		auto empty = Config::from_string(text, "/etc/slurm/flexslurm.yaml");
		ck_assert_msg(!empty, "accepted: \"%s\"", text);
		ck_assert_str(
		        empty.error(),
		        "/etc/slurm/flexslurm.yaml:1: (top level): the file is empty (allowed: the keys version, inventory, slicing, placement, lending, metrics; `version: 1` alone means the built-in defaults)");
	}
}
END_TEST

START_TEST(the_shipped_example_is_valid)
{
	auto c = Config::from_file(std::string(TOPOLOGY_DIR) + "/../../etc/flexslurm.yaml");
	ck_assert_msg(static_cast<bool>(c), "%s", c.error().c_str());
	ck_assert_uint_eq(c->classes.size(), 3);
	ck_assert_int_eq(c->classes[0].slices, 8);
	ck_assert_int_eq(c->classes[0].compute_percent, 12);
	ck_assert_str(c->classes[0].model.c_str(), "h100");
	ck_assert_uint_eq(c->classes[1].device_memory_bytes, 64ULL << 30);
}
END_TEST

START_TEST(full_valid_file)
{
	auto c = Config::from_string("version: 1\n"
	                             "inventory:\n"
	                             "  topology_xml: /etc/flexslurm/%n.xml\n"
	                             "  device_dir: /srv/dev/%n\n"
	                             "slicing:\n"
	                             "  default:\n"
	                             "    slices: 3\n"
	                             "    compute_percent: 30\n"
	                             "  classes:\n"
	                             "    - vendor: ascend\n"
	                             "      model: ascend910b\n"
	                             "      slices: 2\n"
	                             "      memory_percent: 40\n"
	                             "      device_memory: 65536MiB\n",
	                             "ok.yaml");
	ck_assert_msg(static_cast<bool>(c), "%s", c.error().c_str());
	ck_assert_int_eq(c->default_rule.slices, 3);
	ck_assert_int_eq(c->default_rule.compute_percent, 30);
	ck_assert_int_eq(c->default_rule.memory_percent, 33);
	ck_assert(c->classes[0].vendor == Vendor::Ascend);
	ck_assert_int_eq(c->classes[0].compute_percent, 50);
	ck_assert_int_eq(c->classes[0].memory_percent, 40);
	ck_assert_uint_eq(c->classes[0].device_memory_bytes, 64ULL << 30);
	ck_assert_str(expand_node_name(c->device_dir, "n3").c_str(), "/srv/dev/n3");
	ck_assert_str(expand_node_name(c->topology_xml, "gpu-01").c_str(), "/etc/flexslurm/gpu-01.xml");
}
END_TEST

START_TEST(placement_per_partition)
{
	auto c = Config::from_string("placement:\n  default: spread\n  partitions:\n    big: best_fit\n",
	                             "p.yaml");
	ck_assert_msg(static_cast<bool>(c), "%s", c.error().c_str());
	ck_assert(c->placement_for("big") == Placement::BestFit);
	ck_assert(c->placement_for("other") == Placement::Spread);
	ck_assert(Config::defaults().placement_for("any") == Placement::BestFit);
}
END_TEST

struct BadCase {
	const char *yaml;
	const char *message;
};

// Each distinct way a config can be wrong, with the one line the admin gets.
static const BadCase bad_cases[] = {
        {"slicing:\n  default:\n    slices: [1\n",
         "bad.yaml:4: (YAML syntax): did not find expected ',' or ']' (allowed: a YAML mapping, see etc/flexslurm.yaml)"},
        {"- a\n- b\n",
         "bad.yaml:1: (top level): must be a mapping (allowed: keys version, inventory, slicing, placement, lending, metrics)"},
        {"version: 1\nslices: 4\n",
         "bad.yaml:2: slices: unknown key (allowed: version, inventory, slicing, placement, lending, metrics)"},
        {"version: 2\n", "bad.yaml:1: version: 2 is out of range (allowed: 1)"},
        {"slicing:\n  default:\n    slices: four\n",
         "bad.yaml:3: slicing.default.slices: \"four\" is not an integer (allowed: an integer from 1 to 64)"},
        {"slicing:\n  default:\n    slices: 0\n",
         "bad.yaml:3: slicing.default.slices: 0 is out of range (allowed: an integer from 1 to 64)"},
        {"slicing:\n  default:\n    slices: 65\n",
         "bad.yaml:3: slicing.default.slices: 65 is out of range (allowed: an integer from 1 to 64)"},
        {"slicing:\n  default:\n    slices: 4\n    compute_percent: 101\n",
         "bad.yaml:4: slicing.default.compute_percent: 101 is out of range (allowed: an integer from 1 to 100)"},
        {"slicing:\n  default:\n    slices: 4\n    compute_percent: 30\n",
         "bad.yaml:4: slicing.default.compute_percent: 4 slices x 30% exceed the device (allowed: slices x compute_percent <= 100)"},
        {"slicing:\n  default:\n    slices: 2\n    memory_percent: 60\n",
         "bad.yaml:4: slicing.default.memory_percent: 2 slices x 60% exceed the device memory (allowed: slices x memory_percent <= 100)"},
        {"slicing:\n  classes:\n    - vendor: intel\n",
         "bad.yaml:3: slicing.classes[0].vendor: unknown vendor \"intel\" (allowed: nvidia, amd, ascend)"},
        {"slicing:\n  classes:\n    - vendor: nvidia\n    - slices: 2\n",
         "bad.yaml:4: slicing.classes[1].vendor: missing (allowed: nvidia, amd, ascend)"},
        {"slicing:\n  classes:\n    vendor: nvidia\n",
         "bad.yaml:3: slicing.classes: must be a list (allowed: a list of mappings with a vendor key)"},
        {"slicing:\n  classes:\n    - vendor: amd\n      device_memory: lots\n",
         "bad.yaml:4: slicing.classes[0].device_memory: \"lots\" is not a size (allowed: a size such as 80GiB, 16384MiB or a byte count, at most 1024TiB)"},
        // Over 1 PiB: slices x slice memory would wrap in the job's limits.
        {"slicing:\n  classes:\n    - vendor: amd\n      device_memory: 1025TiB\n",
         "bad.yaml:4: slicing.classes[0].device_memory: \"1025TiB\" is not a size (allowed: a size such as 80GiB, 16384MiB or a byte count, at most 1024TiB)"},
        // Found by tests/fuzz/fuzz_config: YAML scalars may hold newlines and
        // control characters; the message stays one line.
        {"version: 1\n\n  x\n", "bad.yaml:1: version: \"1\\nx\" is not an integer (allowed: 1)"},
        {"\"a\\nb\\e\": 1\n",
         "bad.yaml:1: a\\nb\\x1b: unknown key (allowed: version, inventory, slicing, placement, lending, metrics)"},
        {"slicing:\n  classes:\n    - vendor: amd\n      colour: red\n",
         "bad.yaml:4: slicing.classes[0].colour: unknown key (allowed: vendor, model, slices, compute_percent, memory_percent, device_memory)"},
        {"slicing:\n  classes:\n    - vendor: nvidia\n      model: H100 SXM\n",
         "bad.yaml:4: slicing.classes[0].model: \"H100 SXM\" is not a GRES type name (allowed: a GRES type: lowercase letters, digits, '-', '_', '.')"},
        {"slicing:\n  classes:\n    - {vendor: nvidia, model: h100}\n    - {vendor: nvidia, model: h100}\n",
         "bad.yaml:4: slicing.classes[1]: a second rule for nvidia h100 (allowed: one rule per vendor and model)"},
        {"inventory:\n  device_dir: dev\n",
         "bad.yaml:2: inventory.device_dir: \"dev\" is not an absolute path (allowed: an absolute path, %n stands for the node name)"},
        {"inventory:\n  topology_xml: [a, b]\n",
         "bad.yaml:2: inventory.topology_xml: must be a single value (allowed: an absolute path, %n stands for the node name)"},
        {"version: 1\nversion: 1\n", "bad.yaml:2: version: given twice (allowed: each key once)"},
        {"placement:\n  default: first_fit\n",
         "bad.yaml:2: placement.default: unknown placement \"first_fit\" (allowed: best_fit, spread)"},
        {"placement:\n  partitions:\n    gpu: spread\n    debug: packed\n",
         "bad.yaml:4: placement.partitions.debug: unknown placement \"packed\" (allowed: best_fit, spread)"},
        {"placement:\n  partitions: [a, b]\n",
         "bad.yaml:2: placement.partitions: must be a mapping (allowed: partition: best_fit | spread)"},
        {"placement:\n  partitions:\n    gpu: spread\n    gpu: best_fit\n",
         "bad.yaml:4: placement.partitions.gpu: given twice (allowed: each partition once)"},
        {"placement: spread\n",
         "bad.yaml:1: placement: must be a mapping (allowed: keys default, partitions)"},
        {"slicing:\n  default:\n    vendor: nvidia\n",
         "bad.yaml:3: slicing.default.vendor: unknown key (allowed: slices, compute_percent, memory_percent)"},
        {"metrics:\n  node_textfile_dir: /var/lib/prometheus/node-exporter\n  port: 9100\n",
         "bad.yaml:3: metrics.port: unknown key (allowed: node_textfile_dir, controller_textfile_dir, dcgm_job_mapping_dir)"},
        {"metrics:\n  controller_textfile_dir: prom\n",
         "bad.yaml:2: metrics.controller_textfile_dir: \"prom\" is not an absolute path (allowed: an absolute path, %n stands for the node name)"},
        {"metrics:\n  dcgm_job_mapping_dir: [a]\n",
         "bad.yaml:2: metrics.dcgm_job_mapping_dir: must be a single value (allowed: an absolute path, %n stands for the node name)"},
        {"metrics: /var/lib/prometheus\n",
         "bad.yaml:1: metrics: must be a mapping (allowed: keys node_textfile_dir, controller_textfile_dir, dcgm_job_mapping_dir)"},
};

// metrics: off by default, each key on its own.
START_TEST(metrics_keys)
{
	const Config d = Config::defaults();
	ck_assert(d.metrics.node_textfile_dir.empty() && d.metrics.controller_textfile_dir.empty() &&
	          d.metrics.dcgm_job_mapping_dir.empty());
	auto c = Config::from_string("metrics:\n  node_textfile_dir: /var/lib/prometheus/node-exporter\n"
	                             "  controller_textfile_dir: /srv/prom/%n\n"
	                             "  dcgm_job_mapping_dir: /run/dcgm-job-map\n",
	                             "m.yaml");
	ck_assert_msg(c, "%s", c ? "" : c.error().c_str());
	ck_assert_str(c->metrics.node_textfile_dir, "/var/lib/prometheus/node-exporter");
	ck_assert_str(c->metrics.controller_textfile_dir, "/srv/prom/%n");
	ck_assert_str(c->metrics.dcgm_job_mapping_dir, "/run/dcgm-job-map");
	auto one = Config::from_string("metrics:\n  dcgm_job_mapping_dir: /run/dcgm-job-map\n", "m.yaml");
	ck_assert(one && one->metrics.node_textfile_dir.empty() &&
	          one->metrics.controller_textfile_dir.empty());
}
END_TEST

START_TEST(bad_input_messages)
{
	const BadCase &bc = bad_cases[_i];
	auto c = Config::from_string(bc.yaml, "bad.yaml");
	ck_assert_msg(!c, "accepted:\n%s", bc.yaml);
	ck_assert_str(c.error().c_str(), bc.message);
}
END_TEST

START_TEST(file_errors)
{
	auto missing = Config::from_file("/nonexistent/flexslurm.yaml");
	ck_assert(!missing);
	ck_assert_str(missing.error().c_str(),
	              "/nonexistent/flexslurm.yaml: cannot open: No such file or directory");

	char path[] = "/tmp/flexslurm-test-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	const char text[] = "slicing:\n  default:\n    slices: -3\n";
	ck_assert_int_eq(write(fd, text, sizeof text - 1), static_cast<ssize_t>(sizeof text - 1));
	close(fd);
	auto bad = Config::from_file(path);
	unlink(path);
	ck_assert(!bad);
	ck_assert_str(bad.error().c_str(),
	              (std::string(path) +
	               ":3: slicing.default.slices: -3 is out of range (allowed: an integer from 1 to 64)")
	                      .c_str());
}
END_TEST

// flexslurm.yaml(5) cannot rot: the keys the parser accepts, found by asking
// it (an unknown key is refused with the list of allowed ones, level by
// level), are exactly the keys the man page documents under KEYS (.TP/.B).
namespace
{

struct KeyStep {
	std::string name;
	bool list; // a list of mappings (slicing.classes): written name[]
};

const char *const probe_key = "zz_probe";

// YAML with {zz_probe: 1} at `path`, in flow style.
std::string probe_document(const std::vector<KeyStep> &path)
{
	std::string doc = std::string("{") + probe_key + ": 1}";
	for (auto it = path.rbegin(); it != path.rend(); ++it)
		doc = "{" + it->name + ": " + (it->list ? "[" + doc + "]" : doc) + "}";
	return doc + "\n";
}

std::string dotted(const std::vector<KeyStep> &path)
{
	std::string out;
	for (const KeyStep &s : path)
		out += (out.empty() ? "" : ".") + s.name + (s.list ? "[]" : "");
	return out;
}

// The keys allowed in the mapping at `path`, or none when the parser does
// not refuse the probe there as an unknown key (a leaf).
std::vector<std::string> allowed_keys(const std::vector<KeyStep> &path)
{
	auto r = Config::from_string(probe_document(path), "probe");
	if (r)
		return {};
	std::string where = dotted(path);
	for (size_t i = where.find("[]"); i != std::string::npos; i = where.find("[]"))
		where.replace(i, 2, "[0]");
	const std::string marker =
	        (where.empty() ? "" : where + ".") + probe_key + ": unknown key (allowed: ";
	const std::string &e = r.error();
	const size_t at = e.find(marker);
	if (at == std::string::npos)
		return {};
	const size_t end = e.find(')', at);
	std::vector<std::string> keys;
	std::stringstream list(e.substr(at + marker.size(), end - at - marker.size()));
	for (std::string k; std::getline(list, k, ',');)
		keys.push_back(k.substr(k.find_first_not_of(' ')));
	return keys;
}

void collect_keys(std::vector<KeyStep> path, std::set<std::string> &out)
{
	for (const std::string &k : allowed_keys(path)) {
		std::vector<KeyStep> child = path;
		child.push_back({k, false});
		out.insert(dotted(child));
		if (!allowed_keys(child).empty()) {
			collect_keys(child, out);
			continue;
		}
		child.back().list = true; // a list of mappings?
		if (!allowed_keys(child).empty())
			collect_keys(child, out);
	}
}

} // namespace

START_TEST(man_page_documents_every_key)
{
	std::set<std::string> accepted;
	collect_keys({}, accepted);
	ck_assert_msg(accepted.count("lending.grace") && accepted.count("slicing.classes[].vendor") &&
	                      accepted.count("slicing.default.slices"),
	              "the parser was not probed as expected (%zu keys)", accepted.size());

	const std::string man = std::string(TOPOLOGY_DIR) + "/../../man/flexslurm.yaml.5";
	std::ifstream in(man);
	ck_assert_msg(in.good(), "cannot read %s", man.c_str());
	std::set<std::string> documented;
	bool in_keys = false, after_tp = false;
	for (std::string line; std::getline(in, line);) {
		if (line.rfind(".SH ", 0) == 0)
			in_keys = line == ".SH KEYS";
		if (in_keys && after_tp && line.rfind(".B ", 0) == 0)
			documented.insert(line.substr(3));
		after_tp = line == ".TP";
	}
	for (const std::string &k : accepted)
		ck_assert_msg(documented.count(k), "%s: key %s is not documented under KEYS", man.c_str(),
		              k.c_str());
	for (const std::string &k : documented)
		ck_assert_msg(accepted.count(k), "%s: documents %s, which flexslurm.yaml does not accept",
		              man.c_str(), k.c_str());
}
END_TEST

Suite *config_suite()
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("yaml");
	tcase_add_test(tc, defaults_without_a_file);
	tcase_add_test(tc, empty_file_refused_with_one_line);
	tcase_add_test(tc, the_shipped_example_is_valid);
	tcase_add_test(tc, full_valid_file);
	tcase_add_test(tc, missing_file_refused_only_by_a_configless_slurmd);
	tcase_add_test(tc, placement_per_partition);
	tcase_add_loop_test(tc, bad_input_messages, 0,
	                    static_cast<int>(sizeof bad_cases / sizeof bad_cases[0]));
	tcase_add_test(tc, file_errors);
	tcase_add_test(tc, metrics_keys);
	tcase_add_test(tc, man_page_documents_every_key);
	suite_add_tcase(s, tc);
	return s;
}
