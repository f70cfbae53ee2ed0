"""The manual against what it describes: benchmark figures name their result files, settings are real.

The convention for figures (docs/development.md, "This documentation"): a section (the text under
one heading) that quotes a measured figure, a number with a unit of throughput or time, names the
result file it was read from as `loadtests/results/<file>`; a section whose figures come from a
measurement with no result file says so in `<!-- figures: no result file: <why> -->`.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from tests.deploy.code import gateway_env_names

REPO = Path(__file__).resolve().parents[2]
PAGES = [*sorted((REPO / "docs").rglob("*.md")), REPO / "README.md"]

_RESULT = re.compile(r"loadtests/results/([A-Za-z0-9_.\-]+)")
_FIGURE = re.compile(r"\d[\d,.]*\s?(?:req/s|requests/s|rows/s|streams/s|rps|ms|µs|ns)(?![A-Za-z])")
_EXEMPT = re.compile(r"<!--\s*figures:\s*no result file:\s*(\S[^>]*?)\s*-->")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_HEADING = re.compile(r"^#{1,6} .*$", re.MULTILINE)
_ENV = re.compile(r"GATEWAY_[A-Z0-9_]+")


@dataclass(frozen=True)
class Section:
    page: Path
    heading: str
    text: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(REPO)}: {self.heading or '(top)'}"


def sections(page: Path) -> list[Section]:
    # Headings inside fenced code (a shell comment, say) are not headings.
    text = _FENCE.sub(lambda m: re.sub(r"^#", " #", m.group(0), flags=re.MULTILINE), page.read_text())
    starts = [0, *(m.start() for m in _HEADING.finditer(text)), len(text)]
    found = []
    for start, end in pairwise(starts):
        body = text[start:end]
        heading = body.splitlines()[0] if _HEADING.match(body) else ""
        found.append(Section(page, heading, body))
    return found


def figures(section: Section) -> list[str]:
    """Measured-looking figures in the prose: not in code, comments or the heading itself."""
    prose = section.text.removeprefix(section.heading)
    for pattern in (_FENCE, _COMMENT, _CODE_SPAN):
        prose = pattern.sub(" ", prose)
    return _FIGURE.findall(prose)


ALL_SECTIONS = [s for page in PAGES for s in sections(page)]


def test_the_convention_finds_figures_at_all() -> None:
    # Guards the checks below against a pattern that silently matches nothing.
    performance = [s for s in ALL_SECTIONS if s.page.name == "performance.md" and figures(s)]
    assert len(performance) >= 2


@pytest.mark.parametrize("section", [s for s in ALL_SECTIONS if figures(s)], ids=str)
def test_every_section_with_benchmark_figures_names_its_result_file(section: Section) -> None:
    cited = _RESULT.findall(section.text)
    exempt = _EXEMPT.search(section.text)
    assert cited or exempt, (
        f"{section} quotes {figures(section)[:3]} but names no loadtests/results/<file> "
        "(or <!-- figures: no result file: why -->)"
    )


def test_every_result_file_the_docs_name_exists() -> None:
    named = {(page.relative_to(REPO).as_posix(), name) for page in PAGES for name in _RESULT.findall(page.read_text())}
    assert named, "the docs cite benchmark results"
    missing = sorted((page, name) for page, name in named if not (REPO / "loadtests" / "results" / name).is_file())
    assert missing == []


def test_every_gateway_variable_is_documented_on_the_configuration_page() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    spans = {span.strip("`") for span in _CODE_SPAN.findall(page)}
    undocumented = sorted(
        name for name in gateway_env_names()
        if name not in page and name.removeprefix("GATEWAY_") not in spans
    )
    assert undocumented == []


def test_every_gateway_variable_the_docs_name_is_real() -> None:
    known = set(gateway_env_names()) | _names_read_by_tests()
    mentioned = {(page.relative_to(REPO).as_posix(), name) for page in PAGES for name in _ENV.findall(page.read_text())}
    invented = sorted((page, name) for page, name in mentioned if name not in known)
    assert invented == []


def _names_read_by_tests() -> set[str]:
    """The test suite's own variables (GATEWAY_TEST_PG, ...), which the development page describes."""
    names: set[str] = set()
    for path in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and _ENV.fullmatch(node.value):
                names.add(node.value)
    return names


_MEASURED = re.compile(r"\bmeasured\b", re.IGNORECASE)
_BY_HAND = re.compile(r"\b(?:by hand|measured|read off)\b", re.IGNORECASE)


def _claims_a_measurement(section: Section) -> bool:
    prose = section.text.removeprefix(section.heading)
    for pattern in (_FENCE, _COMMENT, _CODE_SPAN):
        prose = pattern.sub(" ", prose)
    return bool(figures(section)) and bool(_MEASURED.search(prose))


@pytest.mark.parametrize("section", [s for s in ALL_SECTIONS if _claims_a_measurement(s)], ids=str)
def test_a_section_that_says_measured_names_the_result_file(section: Section) -> None:
    """`<!-- figures: no result file -->` is for thresholds and arithmetic, not for a measurement
    kept nowhere: a figure called measured comes from a committed run."""
    assert _RESULT.findall(section.text), f"{section} calls figures measured but names no loadtests/results/<file>"


@pytest.mark.parametrize("section", [s for s in ALL_SECTIONS if _EXEMPT.search(s.text)], ids=str)
def test_no_result_file_is_never_a_measurement(section: Section) -> None:
    exempt = _EXEMPT.search(section.text)
    assert exempt and not _BY_HAND.search(exempt.group(1)), (
        f"{section}: '{exempt.group(1) if exempt else ''}' is a measurement; commit its run to loadtests/results/"
    )


_SPAN = re.compile(r"<!--fig\s.*?<!--/fig-->", re.DOTALL)
_SAYS_WHERE = re.compile(r"loadtests/results/|\bderived\b|\bestimate\b|\bassumption\b", re.IGNORECASE)


def _paragraphs_with_loose_figures(page: Path) -> list[str]:
    """Paragraphs quoting a figure not written by loadtests/figures.py that neither name a result file
    nor call it derived, an estimate or an assumption (in a section not marked as arithmetic or a threshold)."""
    loose = []
    for section in sections(page):
        if _EXEMPT.search(section.text):
            continue
        for paragraph in re.split(r"\n\s*\n", _FENCE.sub(" ", section.text.removeprefix(section.heading))):
            prose = paragraph
            for pattern in (_SPAN, _COMMENT, _CODE_SPAN):
                prose = pattern.sub(" ", prose)
            if _FIGURE.search(prose) and not _SAYS_WHERE.search(paragraph):
                loose.append(paragraph.strip()[:160])
    return loose


@pytest.mark.parametrize("page", [p for p in PAGES if "<!--figures " in p.read_text()], ids=lambda p: p.name)
def test_every_figure_of_a_measured_page_is_from_a_file_or_says_what_it_is(page: Path) -> None:
    assert _paragraphs_with_loose_figures(page) == []


def test_the_readme_measured_figures_are_read_from_their_result_files() -> None:
    """Each figure (a number with a decimal point) of the README's `## Measured` bullets is in a
    result file the bullet names, so a figure cannot drift from the committed measurement."""
    measured = (REPO / "README.md").read_text().split("## Measured", 1)[1].split("\n## ", 1)[0]
    cited_anywhere: set[str] = set()
    for bullet in re.split(r"\n- ", measured)[1:]:
        names = set(_RESULT.findall(bullet)) | set(re.findall(r"`([a-z0-9.\-]+\.md)`", bullet))
        assert names, bullet
        cited_anywhere |= names
        text = "".join((REPO / "loadtests" / "results" / name).read_text() for name in sorted(names))
        missing = [n for n in re.findall(r"\d+\.\d+", bullet) if n not in text]
        assert not missing, f"{missing} are in no result file that this bullet names: {bullet}"
    # The evaluations issue 22 asks the README to quote: complexity routing and forecasts.
    assert {"complexity-2026-12-07.md", "forecast-2026-12-07.md"} <= cited_anywhere
