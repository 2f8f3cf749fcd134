"""requirements.lock and requirements-dev.lock: every package pinned with its
hashes, every transitive runtime dependency covered (followed through the
installed packages' own metadata), the two locks agreeing, and the image and
`make install` installing from them with --require-hashes."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def locked(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of a pip-compile lock file."""
    entries: dict[str, tuple[str, frozenset[str]]] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)", line)
        assert match, f"{path.name}: not an exact pin with hashes: {line[:80]}"
        hashes = frozenset(re.findall(r"sha256:([0-9a-f]{64})", match[3]))
        entries[canonicalize_name(match[1])] = (match[2], hashes)
    return entries


def requirements(path: Path) -> list[Requirement]:
    found = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


RUNTIME = locked(ROOT / "requirements.lock")
DEV = locked(ROOT / "requirements-dev.lock")


@pytest.mark.parametrize("source, lock", [("requirements.txt", RUNTIME), ("requirements-dev.txt", DEV)])
def test_every_direct_pin_is_locked_at_its_version(source, lock):
    for requirement in requirements(ROOT / source):
        [spec] = requirement.specifier
        assert spec.operator == "==", requirement
        assert lock[canonicalize_name(requirement.name)][0] == spec.version, requirement.name


def dependencies(name: str, extras: set[str]) -> set[tuple[str, frozenset[str]]]:
    """What an installed package requires here (this interpreter, these extras)."""
    found = set()
    for text in metadata.requires(name) or []:
        requirement = Requirement(text)
        wanted = extras or {""}
        if requirement.marker and not any(requirement.marker.evaluate({"extra": extra}) for extra in wanted):
            continue
        found.add((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return found


def test_the_runtime_lock_is_exactly_the_transitive_closure_of_requirements_txt():
    # This environment was installed from the locks (make install): each
    # package's own metadata says what it needs.
    pending = [(canonicalize_name(r.name), frozenset(r.extras)) for r in requirements(ROOT / "requirements.txt")]
    reached: set[str] = set()
    seen = set()
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        reached.add(name)
        assert metadata.version(name) == RUNTIME[name][0], name
        pending.extend(dependencies(name, set(extras)))
    assert reached == set(RUNTIME)


def test_the_dev_lock_holds_the_runtime_lock_unchanged():
    for name, (version, hashes) in RUNTIME.items():
        assert DEV[name] == (version, hashes), name


def test_locks_say_how_they_are_made():
    for name in ("requirements.lock", "requirements-dev.lock"):
        head = (ROOT / name).read_text().splitlines()[:6]
        assert "#    make lock" in head, name
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lock:\n(\t.*\n)*\t\$\(PIP_COMPILE\) --output-file requirements.lock requirements.txt$",
                     makefile, re.MULTILINE)
    assert "pip-compile --quiet --generate-hashes" in makefile


def test_make_install_installs_the_locks_checked_by_hash():
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^\$\(VENV\)/\.installed: (.*)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert rule and set(rule[1].split()) == {"requirements.lock", "requirements-dev.lock"}
    installs = [line.strip() for line in rule[2].splitlines() if "pip install" in line]
    assert installs == [
        f"$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r {lock}"
        for lock in ("requirements.lock", "requirements-dev.lock")]
