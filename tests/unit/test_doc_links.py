"""Every link of the README and docs/ leads to a file of this repository, and
a link to a heading (`file.md#heading`) to a heading that file has: the
documentation moves with the code, and a reader never follows a link out of
the checkout or into a page that is gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]\n]+\]:\s*(\S+)", re.MULTILINE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


def prose(page: Path) -> str:
    """The page without its code: a path in a code block is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", page.read_text()))


def links(page: Path) -> list[str]:
    text = prose(page)
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def anchors(page: Path) -> set[str]:
    """The heading ids GitHub gives a page: lower case, punctuation dropped,
    spaces as hyphens, a repeated one numbered."""
    ids: set[str] = set()
    counts: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", FENCE.sub("", page.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        repeat = counts.get(slug, 0)
        counts[slug] = repeat + 1
        ids.add(slug if repeat == 0 else f"{slug}-{repeat}")
    return ids


def broken(page: Path, target: str) -> str | None:
    """What is wrong with one link of `page`, or None."""
    if SCHEME.match(target):
        return "points outside the repository"
    path_part, _, fragment = target.partition("#")
    resolved = (page.parent / path_part).resolve() if path_part else page
    if not resolved.is_relative_to(ROOT):
        return "points outside the repository"
    if not resolved.exists():
        return "names no file of the repository"
    if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
        return f"names no heading of {resolved.relative_to(ROOT)}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(page):
    problems = [f"{target}: {problem}" for target in links(page) if (problem := broken(page, target))]
    assert problems == []


def test_the_readme_links_to_every_page_of_docs():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(ROOT / "README.md")}
    assert [page.name for page in PAGES[1:] if page.resolve() not in linked] == []


def test_links_are_found_and_judged():
    """The reading itself: a link in prose counts, one in code does not, and
    each kind of fault is named."""
    readme = ROOT / "README.md"
    assert "docs/api.md" in links(readme)
    assert broken(readme, "docs/api.md#errors") is None
    assert broken(readme, "docs/api.md#no-such-heading") == "names no heading of docs/api.md"
    assert broken(readme, "docs/nothing.md") == "names no file of the repository"
    assert broken(readme, "../shared/contract/payments-api.md") == "points outside the repository"
    assert broken(readme, "https://example.com/") == "points outside the repository"
