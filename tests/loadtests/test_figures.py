"""Measured figures in the repository's Markdown agree with the result files they cite
(loadtests/figures.py), and the figure syntax does what its docstring says."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# loadtests/ is a folder of scripts, not a package: load the module from its file.
_spec = importlib.util.spec_from_file_location("figures", REPO / "loadtests" / "figures.py")
assert _spec is not None and _spec.loader is not None
figures = importlib.util.module_from_spec(_spec)
sys.modules["figures"] = figures  # dataclasses look their module up by name
_spec.loader.exec_module(figures)


def markdown_files() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / line for line in tracked.stdout.splitlines() if (REPO / line).exists()]


def test_every_document_agrees_with_its_result_files() -> None:
    with_figures = [p for p in markdown_files() if "<!--fig " in p.read_text()]
    assert REPO / "docs" / "capacity.md" in with_figures
    found = figures.differences(with_figures)
    assert not found, "run python loadtests/figures.py on: " + "; ".join(
        f"{d.path.relative_to(REPO)}:{d.line} says {d.written!r}, the file {d.measured!r}" for d in found
    )


def test_the_capacity_guide_quotes_the_core_and_ledger_runs() -> None:
    text = (REPO / "docs" / "capacity.md").read_text()
    assert text.count("<!--fig ") >= 15
    for stale in ("4,763", "4,145", "3,045", "2,824", "21,578", "14,827"):  # the figures that had drifted
        assert stale not in text


@pytest.fixture
def results(tmp_path: Path) -> Path:
    run = {"cells": [{"mode": "a", "c": 1, "rps": 1234.4}, {"mode": "b", "c": 1, "rps": 617.2},
                     {"mode": "b", "c": 2, "rps": 700.0}],
           "summary": {"64": {"keys-redis": {"us": 166.1}}}}  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(run))
    return tmp_path


def test_a_figure_that_drifted_is_found_and_rewritten(results: Path) -> None:
    doc = (
        "<!--figures r=run.json-->\n"
        "| a | <!--fig r:cells[mode=a,c=1].rps |,.0f-->1,300<!--/fig--> req/s |\n"
        "ratio <!--fig r:cells[mode=a,c=1].rps / r:cells[mode=b,c=1].rps |.1f-->2.0<!--/fig-->, "
        "cpu <!--fig r:summary.64.keys-redis.us / 1000 |.2f--><!--/fig--> ms, "
        "rounded <!--fig round(r:cells[mode=b,c=2].rps * 3, -3) |,.0f-->?<!--/fig-->\n"
    )
    text, changed = figures.render(doc, results)
    assert [(line, written, measured) for line, _, written, measured in changed] == [
        (2, "1,300", "1,234"), (3, "", "0.17"), (3, "?", "2,000")
    ]
    assert "-->1,234<!--/fig--> req/s |" in text and "-->2.0<!--/fig-->" in text
    assert figures.render(text, results)[1] == []  # rendered once, it agrees


@pytest.mark.parametrize("expr, error", [
    ("r:cells[mode=b].rps", "matches 2 elements"),
    ("r:cells[mode=z].rps", "matches 0 elements"),
    ("r:nothing.here", "no key 'nothing'"),
    ("q:cells[0].rps", "no result file named 'q'"),
    ("__import__('os')", "only references"),
])  # fmt: skip
def test_a_figure_that_cannot_be_read_is_an_error(results: Path, expr: str, error: str) -> None:
    with pytest.raises(figures.FigureError, match=error):
        figures.render(f"<!--figures r=run.json--><!--fig {expr}-->1<!--/fig-->", results)


def test_the_command_rewrites_and_checks(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    result = REPO / "loadtests" / "results" / "ledger-2026-11-23.json"
    rows = json.loads(result.read_text())["throughput"]["postgres"]["sink"]["rows_per_s"]
    doc.write_text(f"<!--figures l={result.relative_to(REPO)}-->\n"
                   "<!--fig l:throughput.postgres.sink.rows_per_s |,.0f-->1<!--/fig--> rows/s\n")  # fmt: skip
    script = [sys.executable, str(REPO / "loadtests" / "figures.py")]
    check = subprocess.run([*script, "--check", str(doc)], capture_output=True, text=True)
    assert check.returncode == 1 and f"'1' but the result file says '{rows:,.0f}'" in check.stdout
    subprocess.run([*script, str(doc)], check=True, capture_output=True)
    assert f"-->{rows:,.0f}<!--/fig--> rows/s" in doc.read_text()
    assert subprocess.run([*script, "--check", str(doc)]).returncode == 0
