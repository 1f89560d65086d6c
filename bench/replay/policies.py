# SPDX-License-Identifier: GPL-2.0-or-later
"""The replay's policies P0-P4: what differs in slurm.conf, gres.conf and
flexslurm.yaml, each job's --gres request, and the job scripts (README.md)."""
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "tools"))

from localcluster import DEFAULT_YAML  # noqa: E402

ALL_POLICIES = ["P0", "P1", "P2", "P3", "P4"]
GTYPE = "t4"  # the GRES type of tools/localcluster.py's nvidia shapes

# The same for every policy: the compressed clock wants a scheduler pass
# every second; time limits are in minutes (Slurm's granularity).
SCHED_PARAMS = ("SchedulerParameters=sched_interval=1,bf_interval=1,bf_resolution=60,bf_window=60,"
                "bf_continue,bf_max_job_test=2000,default_queue_depth=500")
COMMON_CONF = SCHED_PARAMS + "\nMinJobAge=3600\n"

# Product defaults (src/core/model/lending.hpp) in real seconds; the replay
# divides them by the duration compression, like the jobs' durations.
LENDING_REAL_S = {"idle_window": 600, "min_loan": 120, "max_loan": 3600, "cooldown": 300, "grace": 60}
LENDING_FLOOR_S = {"idle_window": 2, "min_loan": 2, "max_loan": 10, "cooldown": 1, "grace": 1}
IDLE_BELOW = 5  # lending.idle_below_percent (product default)


# ------------------------------------------------------------------ policies
def lending_timers(dur_div):
    return {k: max(LENDING_FLOOR_S[k], int(round(v / dur_div))) for k, v in LENDING_REAL_S.items()}


def flex_yaml(slices, lending, dur_div):
    # Slices reserve 80 % of a device's memory, so that lending has the
    # other 20 % to give (a device whose slices reserve all is never lent).
    y = DEFAULT_YAML.replace("    slices: 4\n", f"    slices: {slices}\n    memory_percent: {80 // slices}\n")
    if not lending:
        return y
    t = lending_timers(dur_div)
    return y + f"""\
lending:
  enabled: true
  whole_devices: true
  free_slices: true
  port: {{lending_port}}
  idle_below_percent: {IDLE_BELOW}
  idle_window: {t['idle_window']}s
  busy_above_percent: 20
  busy_samples: 2
  min_loan: {t['min_loan']}s
  max_loan: {t['max_loan']}s
  cooldown: {t['cooldown']}s
  grace: {t['grace']}s
  report_interval: 1s
  telemetry_timeout: 4s
  hard_stop_after: 2s
  telemetry: file
  telemetry_dir: {{dir}}/telemetry/%n
"""


def cluster_kwargs(policy, a):
    """LocalCluster arguments of one policy: only the lines that define it differ."""
    g, S = a.gpus_per_node, a.slices
    nodes = [f"y{i}" for i in range(1, a.nodes + 1)]
    devs = f"nvidia[0-{g - 1}]" if g > 1 else "nvidia0"

    def prepare(c):
        for n in c.nodes:
            (c.dir / "telemetry" / n).mkdir(parents=True, exist_ok=True)
            for d in range(g):
                (c.dir / "telemetry" / n / f"nvidia{d}").write_text("busy 0\n")

    kw = dict(nodes=a.nodes, prefix="y", shape=f"nvidia-{g}gpu", cpus=max(4, 2 * g * S), slices=S,
              prepare=prepare, extra_conf=COMMON_CONF, flexslurm_yaml=flex_yaml(S, False, a.dur_div))
    if policy == "P0":
        kw.update(select="select/cons_tres", gres_per_node={n: f"gpu:{GTYPE}:{g}" for n in nodes},
                  extra_conf=COMMON_CONF + "GresTypes=gpu\n")
    elif policy == "P1":
        kw.update(select="select/cons_tres",
                  gres_per_node={n: f"gpu:{GTYPE}:{g},shard:{g * S}" for n in nodes},
                  extra_conf=COMMON_CONF + "GresTypes=gpu,shard\n",
                  gres_conf="AutoDetect=off\n" + "".join(
                      f"NodeName={n} Name=gpu Type={GTYPE} File={{dir}}/dev/{n}/{devs}\n"
                      f"NodeName={n} Name=shard Count={g * S} File={{dir}}/dev/{n}/{devs}\n" for n in nodes))
    elif policy == "P2":
        kw.update(select="select/flex")
    else:  # P3, P4: lending
        kw.update(select="select/flex", lending=True, node_addrs=True,
                  flexslurm_yaml=flex_yaml(S, True, a.dur_div))
    return kw


def gres_request(policy, job, S):
    """(--gres value, kind) for a trace job under a policy; kind is owner or borrower.
    Under P3/P4 a whole-GPU owner's idle device lends its slices too (lending.whole_devices)."""
    n = job["whole_gpus"]
    k = max(1, math.ceil(job["gpus"] * S - 1e-9))
    if policy in ("P3", "P4") and job["qos"] == "BE":
        return f"vborrow:{k if job['fractional'] else n * S}", "borrower"
    if not job["fractional"] or policy == "P0":
        return f"gpu:{n}", "owner"
    return (f"shard:{k}" if policy == "P1" else f"vslice:{k}"), "owner"


OWNER_SCRIPT = "#!/bin/bash\nsleep {dur}\n"
# A borrower works in steps of C seconds of its own run time and saves its
# progress after each; requeued, it resumes from the last save and loses the
# part of the step it was in.
BORROWER_SCRIPT = """#!/bin/bash
f={ckpt}/$SLURM_JOB_ID
done=$(cat "$f" 2>/dev/null || echo 0)
while [ "$done" -lt {dur} ]; do
	step=$(( {dur} - done < {c} ? {dur} - done : {c} ))
	sleep "$step"
	done=$((done + step))
	echo "$done" >"$f.tmp" && mv "$f.tmp" "$f"
done
"""


# ------------------------------------------------------------------ parsing
