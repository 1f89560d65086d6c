# SPDX-License-Identifier: GPL-2.0-or-later
"""Prometheus metrics on a real cluster (metrics: in flexslurm.yaml): the
node agent's textfile (flexslurm_node.prom), the controller's
(flexslurm_controller.prom) and DCGM's job mapping files, read as
node_exporter and dcgm-exporter would, checked against Slurm's own view
(scontrol show node / job -d, the lending status file) through a loan, a
reclaim and a dropped report. Every file must be strict exposition format
0.0.4 (a parser here; promtool too when installed)."""

import math
import re
import shutil
import socket
import struct
import subprocess

import lending_scene as scene
from helpers import contains, eq, wait_until
from lending_scene import field as _field

YAML = scene.lending_yaml(grace=2) + """\
metrics:
  node_textfile_dir: {dir}/prom/%n
  controller_textfile_dir: {dir}/prom/ctld
  dcgm_job_mapping_dir: {dir}/dcgm/%n
"""


def _prepare(c):
    scene.prepare(c)
    (c.dir / "prom" / "ctld").mkdir(parents=True)
    for node in c.nodes:
        (c.dir / "prom" / node).mkdir(parents=True)
        (c.dir / "dcgm" / node).mkdir(parents=True)


# mt1: one T4, 4 slices and 4 borrow units.
CLUSTER = dict(nodes=1, prefix="mt", shape="nvidia-1gpu", cpus=8, select="select/flex", flexslurm_yaml=YAML,
               lending=True, node_addrs=True, prepare=_prepare)

LENDER = "#!/bin/bash\nenv | grep ^SLURM_VSLICE >{out}/lender.$SLURM_JOB_ID\nsleep 100000\n"
SLICE_BYTES = 15360 * 2**20 // 5  # the topology's T4 (15360 MiB), 20 % a slice
BORROWER = "#!/bin/bash\nfor i in $(seq 100000); do sleep 0.2; done\n"

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (\S+)$")
UNITS = ("_total", "_seconds", "_bytes", "_ratio")


def parse_exposition(text):
    """Strict text format 0.0.4: every family HELP then TYPE once, its samples
    right after, valid names, labels and values, no series twice, counters
    _total, histograms with cumulative buckets up to le="+Inf" == _count.
    Returns {(name, frozenset(labels.items())): value}."""
    assert text.endswith("\n"), "the file ends with a newline"
    series, families, current = {}, {}, None
    for n, line in enumerate(text.splitlines(), 1):
        where = f"line {n}: {line!r}"
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert re.fullmatch(NAME, name) and name not in families, f"{where}: HELP of a new family"
            families[name] = None
            current = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and families[name] is None, f"{where}: TYPE right after its HELP"
            assert kind in ("gauge", "counter", "histogram"), where
            families[name] = kind
            continue
        assert not line.startswith("#") and line, f"{where}: no other comments or blank lines"
        m = SAMPLE.match(line)
        assert m, f"{where}: not a sample line"
        name, value = m.group(1), m.group(m.lastindex)
        labels = dict(re.findall(LABEL, m.group(2) or ""))
        assert len(labels) == len(re.findall(LABEL, m.group(2) or "")), f"{where}: a label twice"
        kind = families.get(current)
        base = current
        if kind == "histogram":
            assert name in (base + "_bucket", base + "_sum", base + "_count"), f"{where}: of family {base}"
        else:
            assert name == base, f"{where}: of family {base}"
        v = float(value)  # NaN, +Inf too
        assert not math.isnan(v) or value == "NaN", where
        key = (name, frozenset(labels.items()))
        assert key not in series, f"{where}: a series twice"
        series[key] = v
    for name, kind in families.items():
        assert name.startswith("flexslurm_"), name
        assert kind, f"{name}: TYPE"
        if kind == "counter":
            assert name.endswith("_total"), f"{name}: a counter ends in _total"
        if kind == "histogram":
            assert name.endswith("_seconds"), name
            rows = [(dict(k[1]), v) for k, v in series.items() if k[0] == name + "_bucket"]
            groups = {}
            for labels, v in rows:
                le = labels.pop("le")
                groups.setdefault(frozenset(labels.items()), []).append((float(le), v))
            for labels, buckets in groups.items():
                buckets.sort()
                eq(buckets[-1][0], math.inf, f"{name}: a +Inf bucket")
                eq([v for _, v in buckets], sorted(v for _, v in buckets), f"{name}: cumulative buckets")
                eq(series[(name + "_count", labels)], buckets[-1][1], f"{name}: _count is the +Inf bucket")
        # one unit each: at most one unit suffix, at the end
        core = name[:-len("_total")] if name.endswith("_total") else name
        eq(sum(core.count(u) for u in UNITS if u != "_total"), 1 if core.endswith(UNITS) else 0,
           f"{name}: one unit, at the end")
    return series


def _promtool(path):
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "metrics"], input=path.read_text(), capture_output=True,
                           text=True, timeout=30)
        eq(r.returncode, 0, f"promtool check metrics {path}: {r.stdout}{r.stderr}")


def _read(path):
    text = path.read_text()
    return parse_exposition(text), text


def _value(series, name, **labels):
    want = {k: str(v) for k, v in labels.items()}
    found = [v for (n, ls), v in series.items() if n == name and all(dict(ls).get(k) == x for k, x in want.items())]
    assert len(found) == 1, f"{name}{want}: {len(found)} series"
    return found[0]


def _files(c):
    node = c.nodes[0]
    return c.dir / "prom" / node / "flexslurm_node.prom", c.dir / "prom" / "ctld" / "flexslurm_controller.prom"


def _wait_value(path, name, want, what, timeout=20, **labels):
    """Waits until the file shows `want` for one series."""
    last = [None]

    def ok():
        try:
            last[0] = _value(parse_exposition(path.read_text()), name, **labels)
        except (AssertionError, FileNotFoundError):
            return False
        return want(last[0]) if callable(want) else last[0] == want
    try:
        wait_until(ok, timeout, what)
    except AssertionError:
        print(path.read_text() if path.exists() else f"{path}: missing")
        raise


def _telemetry(c, text):
    path = c.dir / "telemetry" / c.nodes[0] / "nvidia0"
    path.with_suffix(".tmp").write_text(text)
    path.with_suffix(".tmp").replace(path)


def _vslice_idx(detail):
    """The slice indices of `scontrol show job -d`'s GRES=vslice:...(IDX:a-b,c)."""
    m = re.search(r"GRES=\S*vslice[^(\s]*\(IDX:([0-9,-]+)\)", detail)
    assert m, detail
    out = []
    for part in m.group(1).split(","):
        a, _, b = part.partition("-")
        out += range(int(a), int(b or a) + 1)
    return out


def _gres(c, key):
    """The vslice count of `scontrol show node`'s Gres= or GresUsed= (0 when it has none)."""
    text = c.run(["scontrol", "-d", "show", "node", c.nodes[0]]).stdout
    line = re.search(rf"\b{key}=(\S*)", text)
    if not line:
        eq(key, "GresUsed", f"{key} in:\n{text}")  # 22.05 leaves GresUsed out while nothing is used
        return 0, text
    m = re.search(r"(?:^|,)vslice:(?:[^:,(]+:)?(\d+)", line.group(1))
    return (int(m.group(1)) if m else 0), text


def test_files_follow_slurms_view_through_a_loan_and_a_reclaim(c):
    node = c.nodes[0]
    node_file, ctld_file = _files(c)
    dcgm = c.dir / "dcgm" / node / "0"
    # Nothing allocated: 4 slices, none held, no mapping file.
    _wait_value(node_file, "flexslurm_device_slices", 4, "the node file", Hostname=node, gpu=0)
    _wait_value(ctld_file, "flexslurm_slices", 4, "the controller file", Hostname=node, device=0)
    series, text = _read(node_file)
    _promtool(node_file)
    eq(_value(series, "flexslurm_device_info", Hostname=node, gpu=0, device=0), 1, "device_info")
    uuid = dict(next(ls for (n, ls) in series if n == "flexslurm_device_info"))["UUID"]
    eq(re.fullmatch(r"GPU-[0-9a-f-]+", uuid) is not None, True, f"DCGM's UUID form: {uuid}")
    for s in range(4):
        eq(_value(series, "flexslurm_slice_compute_share_ratio", slice=s, jobid=""), 0.25, f"slice {s} share")
        eq(_value(series, "flexslurm_slice_memory_limit_bytes", slice=s, jobid=""), SLICE_BYTES,
           f"slice {s} memory limit")
    eq(dcgm.exists(), False, "no DCGM mapping file while the GPU has no job")
    total, shown = _gres(c, "Gres")
    eq(total, 4, f"Gres: {shown}")
    used, shown = _gres(c, "GresUsed")
    eq(used, 0, f"GresUsed: {shown}")

    # A lender (idle) and a borrower on its slice.
    (c.dir / "out").mkdir(exist_ok=True)
    lender = c.sbatch("--gres=vslice:1", "-w", node, script=LENDER.format(out=c.dir / "out"))
    wait_until(lambda: c.job_state(lender) == "RUNNING", 20, "lender running")
    (lender_slice,) = _vslice_idx(c.run(["scontrol", "show", "job", "-d", str(lender)]).stdout)
    _wait_value(ctld_file, "flexslurm_slices_allocated", 1, "one slice allocated", Hostname=node, device=0)
    used, shown = _gres(c, "GresUsed")
    eq(used, 1, f"GresUsed: {shown}")
    _wait_value(node_file, "flexslurm_slice_memory_limit_bytes", SLICE_BYTES, "the lender's slice",
                slice=lender_slice, jobid=lender)
    env = c.dir / "out" / f"lender.{lender}"
    wait_until(lambda: env.exists() and "MEMORY_LIMIT_MIB" in env.read_text(), 15, "the lender's environment")
    contains(env.read_text(), f"SLURM_VSLICE_MEMORY_LIMIT_MIB={SLICE_BYTES >> 20}\n", "the job's own limit")
    wait_until(lambda: dcgm.exists() and dcgm.read_text() == f"{lender}\n", 15, "DCGM file: the lender")
    series, _ = _read(ctld_file)
    eq(_value(series, "flexslurm_devices_partly_allocated", Hostname=node), 1, "partly allocated device")
    eq(_value(series, "flexslurm_fragmentation_ratio", Hostname=node), 1, "fragmentation")
    loans_before = _value(series, "flexslurm_loans_total")

    borrower = c.sbatch("--gres=vborrow:1", "--signal=B:USR1@60", script=BORROWER)
    wait_until(lambda: c.job_state(borrower) == "RUNNING", 30, "borrower running")
    status = c.dir / "state" / "flexslurm_lending.status"
    wait_until(lambda: f"{node} {lender_slice} 0 lent JobId={lender} JobId={borrower}" in status.read_text(), 10,
               "the status file shows the loan")
    _wait_value(ctld_file, "flexslurm_slices_lent", 1, "one slice lent", Hostname=node, device=0)
    series, _ = _read(ctld_file)
    _promtool(ctld_file)
    eq(_value(series, "flexslurm_slices_borrowed", Hostname=node, device=0), 1, "one borrow unit held")
    eq(_value(series, "flexslurm_slices_allocated", Hostname=node, device=0), 1, "still one slice allocated")
    eq(_value(series, "flexslurm_loans_total") - loans_before, 1, "the loan counted")
    _wait_value(node_file, "flexslurm_slice_borrower_info", 1, "the node file names the borrower",
                slice=lender_slice, jobid=borrower)
    wait_until(lambda: dcgm.read_text() == "".join(f"{j}\n" for j in sorted([lender, borrower])), 15,
               "DCGM file: lender and borrower")
    borrowed = _field(c.show_job(borrower), "NodeList")
    eq(borrowed, node, "the borrower's node")

    # A report that is no Munge credential: counted by reason.
    with socket.create_connection(("127.0.0.1", c.lending_port), timeout=5) as s:
        frame = b"not a munge credential"
        s.sendall(struct.pack(">I", len(frame)) + frame)
        s.settimeout(5)
        try:
            s.recv(4)
        except OSError:
            pass
    _wait_value(ctld_file, "flexslurm_reports_dropped_total", lambda v: v >= 1, "the drop counted",
                reason="bad-credential")
    series, _ = _read(ctld_file)
    eq(_value(series, "flexslurm_reports_accepted_total") > 0, True, "the agent's reports accepted")
    eq(_value(series, "flexslurm_lending_tick_duration_seconds_count") > 0, True, "ticks timed")

    # The lender wakes: the loan is taken back, counted and timed.
    _telemetry(c, f"busy 80\njob {lender} busy 80\n")
    _wait_value(node_file, "flexslurm_job_busy_ratio", 0.8, "the lender's use", jobid=lender)
    _wait_value(ctld_file, "flexslurm_reclaims_total", 1, "the reclaim counted", reason="lender-busy")
    wait_until(lambda: c.job_state(borrower) != "RUNNING", 30, "borrower off the device")
    _wait_value(ctld_file, "flexslurm_reclaim_duration_seconds_count", 1, "the reclaim timed", timeout=30)
    _wait_value(ctld_file, "flexslurm_slices_borrowed", 0, "nothing borrowed", Hostname=node, device=0)
    wait_until(lambda: dcgm.read_text() == f"{lender}\n", 15, "DCGM file: the lender alone")
    series, _ = _read(node_file)
    eq(_value(series, "flexslurm_device_last_activity_age_seconds", Hostname=node, gpu=0) <= 3, True,
       "the device active just now")
    eq(_value(series, "flexslurm_device_busy_ratio", Hostname=node, gpu=0), 0.8, "device busy")

    c.run(["scancel", str(borrower), str(lender)], check=False)
    wait_until(lambda: not c.run(["squeue", "-h", "-o", "%i"]).stdout.strip(), 30, "the queue empty")
    wait_until(lambda: not dcgm.exists(), 15, "no DCGM mapping file once the jobs left")
    _wait_value(ctld_file, "flexslurm_slices_allocated", 0, "nothing allocated", Hostname=node, device=0)
    contains(_read(node_file)[1], 'flexslurm_slice_borrower_info', "the family stays declared")


def test_the_format_check_refuses_what_prometheus_would(c):
    """The strict parser above is what makes the file checks meaningful: it must refuse bad text."""
    good = "# HELP flexslurm_x_total X\n# TYPE flexslurm_x_total counter\nflexslurm_x_total{reason=\"a\"} 1\n"
    eq(len(parse_exposition(good)), 1, "a good file")
    bad = {
        "no TYPE": "# HELP flexslurm_x_total X\nflexslurm_x_total 1\n",
        "counter without _total": "# HELP flexslurm_x X\n# TYPE flexslurm_x counter\nflexslurm_x 1\n",
        "a series twice": good + "flexslurm_x_total{reason=\"a\"} 2\n",
        "unescaped quote": good.replace('"a"', '"a"b"'),
        "bad value": good.replace("} 1", "} one"),
        "foreign family": good + "node_x 1\n",
        "two units": "# HELP flexslurm_x_bytes_seconds X\n# TYPE flexslurm_x_bytes_seconds gauge\n"
                     "flexslurm_x_bytes_seconds 1\n",
        "no newline at the end": good.rstrip("\n"),
        "histogram without +Inf": "# HELP flexslurm_h_seconds H\n# TYPE flexslurm_h_seconds histogram\n"
                                  "flexslurm_h_seconds_bucket{le=\"1\"} 1\nflexslurm_h_seconds_sum 1\n"
                                  "flexslurm_h_seconds_count 1\n",
    }
    for what, text in bad.items():
        try:
            parse_exposition(text)
        except (AssertionError, ValueError, KeyError):
            continue
        raise AssertionError(f"{what}: accepted:\n{text}")
