"""The manual builds as a site with `mkdocs build --strict`, lists every page, and the README's links land.

Under --strict (and the `validation:` levels in mkdocs.yml) a link to a missing page or anchor,
or a page left out of the nav, is a warning and fails the build; this test fails on any warning
line even if someone relaxes the config.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
# [text](target): the targets the README points at.
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def nav_pages(entries: list[object]) -> set[str]:
    pages: set[str] = set()
    for entry in entries:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            if isinstance(value, list):
                pages |= nav_pages(value)
            elif isinstance(value, str):
                pages.add(value)
    return pages


def test_the_site_builds_strict_without_a_warning(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor, not ours
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert not re.search(r"^(WARNING|ERROR)\b", output, re.MULTILINE), output
    built = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    assert "index.html" in built and "architecture/index.html" in built, sorted(built)


def test_the_config_is_strict_and_the_nav_lists_every_page() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert config["strict"] is True
    assert config["docs_dir"] == "docs"
    assert config["theme"]["name"] == "material"
    listed = nav_pages(config["nav"])
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - listed == set(), "pages missing from the nav in mkdocs.yml"
    assert listed - pages == set(), "nav entries with no page"


def test_the_readme_links_land_on_files_that_exist() -> None:
    targets = _LINK.findall((REPO / "README.md").read_text())
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert local, "the README links into the manual"
    missing = [t for t in local if not (REPO / t.split("#", 1)[0]).exists()]
    assert missing == []


def test_the_readme_is_a_front_door_and_starts_with_the_two_commands() -> None:
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150, "the manual lives in docs/; the README stays a few screens"
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in first_block.splitlines()]
    assert commands == ["pip install -e '.[demo]' && gateway demo", "scripts/test"]
