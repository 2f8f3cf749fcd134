"""The default worker count from hand-written cgroup files in a temp dir."""

from __future__ import annotations

from pathlib import Path

from payment.server.cpus import cpu_quota, usable_cpus


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def cgroup_v2(root: Path, cpu_max: str | None, own: str = "") -> Path:
    write(root, "cgroup.controllers", "cpuset cpu io memory pids\n")
    if cpu_max is not None:
        write(root, f"{own}/cpu.max".lstrip("/"), cpu_max)
    return root


def self_cgroup(tmp_path: Path, text: str) -> Path:
    write(tmp_path, "proc-self-cgroup", text)
    return tmp_path / "proc-self-cgroup"


def test_no_cgroup_files_means_the_affinity(tmp_path):
    assert usable_cpus(affinity=6, cgroup_root=tmp_path / "none", proc_self_cgroup=tmp_path / "none") == 6


def test_cgroup_v2_quota_in_a_container(tmp_path):
    root = cgroup_v2(tmp_path / "cg", "200000 100000\n")
    assert usable_cpus(affinity=64, cgroup_root=root, proc_self_cgroup=self_cgroup(tmp_path, "0::/\n")) == 2


def test_cgroup_v2_fractional_quota_rounds_up_and_never_to_zero(tmp_path):
    root = cgroup_v2(tmp_path / "cg", "150000 100000\n")
    assert usable_cpus(affinity=8, cgroup_root=root, proc_self_cgroup=self_cgroup(tmp_path, "0::/\n")) == 2
    write(root, "cpu.max", "10000 100000\n")
    assert usable_cpus(affinity=8, cgroup_root=root, proc_self_cgroup=self_cgroup(tmp_path, "0::/\n")) == 1


def test_cgroup_v2_unlimited_means_the_affinity(tmp_path):
    root = cgroup_v2(tmp_path / "cg", "max 100000\n")
    assert usable_cpus(affinity=3, cgroup_root=root, proc_self_cgroup=self_cgroup(tmp_path, "0::/\n")) == 3


def test_affinity_below_the_quota_wins(tmp_path):
    root = cgroup_v2(tmp_path / "cg", "800000 100000\n")
    assert usable_cpus(affinity=2, cgroup_root=root, proc_self_cgroup=self_cgroup(tmp_path, "0::/\n")) == 2


def test_cgroup_v2_tightest_quota_among_the_parents(tmp_path):
    root = cgroup_v2(tmp_path / "cg", "400000 100000\n", own="/system.slice")
    write(root, "system.slice/payment.service/cpu.max", "max 100000\n")
    proc = self_cgroup(tmp_path, "0::/system.slice/payment.service\n")
    assert cpu_quota(root, proc.read_text()) == 4.0
    assert usable_cpus(affinity=16, cgroup_root=root, proc_self_cgroup=proc) == 4


def test_cgroup_v1_quota_over_period(tmp_path):
    root = tmp_path / "cg"
    write(root, "cpu,cpuacct/cpu.cfs_quota_us", "300000\n")
    write(root, "cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    proc = self_cgroup(tmp_path, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    assert usable_cpus(affinity=32, cgroup_root=root, proc_self_cgroup=proc) == 3


def test_cgroup_v1_no_quota(tmp_path):
    root = tmp_path / "cg"
    write(root, "cpu/cpu.cfs_quota_us", "-1\n")
    write(root, "cpu/cpu.cfs_period_us", "100000\n")
    proc = self_cgroup(tmp_path, "1:cpu:/\n")
    assert usable_cpus(affinity=5, cgroup_root=root, proc_self_cgroup=proc) == 5


def test_unreadable_values_are_no_quota(tmp_path):
    root = cgroup_v2(tmp_path / "cg", "garbage\n")
    assert usable_cpus(affinity=4, cgroup_root=root, proc_self_cgroup=self_cgroup(tmp_path, "0::/\n")) == 4
