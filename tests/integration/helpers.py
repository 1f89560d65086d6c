# SPDX-License-Identifier: GPL-2.0-or-later
"""Small assertions and job scripts shared by the integration tests."""

import re
import time


def env_of(output):
    """KEY=VALUE lines printed by `env` in a job, as a dict."""
    env = {}
    for line in output.splitlines():
        if "=" in line and re.match(r"^[A-Z_][A-Z0-9_]*=", line):
            k, v = line.split("=", 1)
            env[k] = v
    return env


def open_probe(paths):
    """Shell lines that try to open each path and print `OPEN <path> ok|<error>`."""
    lines = []
    for p in paths:
        lines.append(f'if err=$( {{ exec 3<"{p}"; }} 2>&1 ); then echo "OPEN {p} ok"; '
                     f'else echo "OPEN {p} ${{err##*: }}"; fi')
    return "\n".join(lines)


def opened(output):
    """{path: 'ok' | 'Operation not permitted' | ...} from open_probe output."""
    return dict(m.groups() for m in re.finditer(r"^OPEN (\S+) (.*)$", output, re.M))


def eq(actual, expected, what=""):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def contains(haystack, needle, what=""):
    if needle not in haystack:
        raise AssertionError(f"{what}: {needle!r} not in:\n{haystack}")


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


VSLICE_ENV = "env | grep -E '^(SLURM_VSLICE|SLURM_VSLICES|CUDA_|ROCR_|ASCEND_)' | sort"
