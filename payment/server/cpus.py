"""How many CPUs this process may really use: the default worker count.

`os.cpu_count()` is the host's count. A container limited to two CPUs on a
64-core host would start 64 workers, each with its pool of database
connections, and be throttled by its quota all the same. What counts is the
smaller of the CPUs the process may be scheduled on (its affinity) and its
cgroup's CPU quota (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` over
`cpu.cfs_period_us`), on its own cgroup and every parent's.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def usable_cpus(affinity: int | None = None, cgroup_root: Path = CGROUP_ROOT,
                proc_self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """At least 1; the quota rounded up (1.5 CPUs of quota make 2 workers,
    which mostly wait on I/O)."""
    if affinity is None:
        affinity = _affinity()
    quota = cpu_quota(cgroup_root, _read(proc_self_cgroup) or "")
    count = affinity if quota is None else min(affinity, math.ceil(quota))
    return max(1, count)


def cpu_quota(cgroup_root: Path, self_cgroup: str) -> float | None:
    """The tightest CPU quota, in CPUs, over the process's cgroup and its
    parents; None when there is none."""
    quotas = [q for q in (_v2_quota(d) for d in _v2_dirs(cgroup_root, self_cgroup)) if q is not None]
    quotas += [q for q in (_v1_quota(d) for d in _v1_dirs(cgroup_root, self_cgroup)) if q is not None]
    return min(quotas, default=None)


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _own_path(self_cgroup: str, controller: str | None) -> str | None:
    """The process's cgroup path for a v1 controller, or the v2 one (None)."""
    for line in self_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if controller is None and hierarchy == "0" and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


def _with_parents(base: Path, path: str | None) -> list[Path]:
    """`base/a/b`, `base/a`, `base`: a quota on any of them applies. In a
    container with its own cgroup namespace the path is `/` and the mount's
    root is the container's cgroup."""
    dirs = [base]
    parts = [p for p in (path or "/").split("/") if p]
    for i in range(1, len(parts) + 1):
        dirs.append(base.joinpath(*parts[:i]))
    return [d for d in reversed(dirs) if d.is_dir()]


def _v2_dirs(root: Path, self_cgroup: str) -> list[Path]:
    if not (root / "cgroup.controllers").exists():
        return []
    return _with_parents(root, _own_path(self_cgroup, None))


def _v2_quota(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")
    if not text:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _v1_dirs(root: Path, self_cgroup: str) -> list[Path]:
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        if (root / name / "cpu.cfs_quota_us").exists():
            # Inside a container the mount shows only its own cgroup, whose
            # host path (in /proc/self/cgroup) is not below the mount: only the
            # directories that exist are read.
            return _with_parents(root / name, _own_path(self_cgroup, "cpu"))
    return []


def _v1_quota(directory: Path) -> float | None:
    quota = (_read(directory / "cpu.cfs_quota_us") or "").strip()
    period = (_read(directory / "cpu.cfs_period_us") or "").strip()
    if not quota or quota.startswith("-"):
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us
