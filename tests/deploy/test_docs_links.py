"""The README is a front page and a map (issue 10.11): every page under docs/ is linked from
it, and every relative link of the README and the docs reaches a file and heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()

    for page in PAGES[1:]:
        assert f"](docs/{page.name})" in readme, page.name


def test_relative_links_reach_existing_files_and_headings():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            destination = (page.parent / path).resolve() if path else page
            assert destination.exists(), f"{page.name}: {target}"
            if anchor:
                assert anchor in anchors(destination), f"{page.name}: {target}"


def test_the_readme_front_page_stays_short():
    # 80 lines, 7 more for the Citus commands issue 13 asks the front page to show, one row of
    # the map for docs/placement.md, and 11 for the moves issue 12 asks it to walk through.
    assert len((ROOT / "README.md").read_text().splitlines()) <= 99
