"""The committed complexity and forecast evaluations (the README quotes them) are what the scripts
measure from the code as it is: a change to the scorer or the forecast that moves a figure fails
here until the evaluation is run again and its result files committed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "loadtests" / "results"


@pytest.mark.parametrize("script, committed", [("eval_complexity.py", "complexity-2026-12-07"),
                                               ("eval_forecast.py", "forecast-2026-12-07")])
def test_the_committed_result_is_what_the_script_measures(script: str, committed: str, tmp_path: Path) -> None:
    out = tmp_path / committed
    # PYTHONPATH: this checkout's gateway package, whichever one the environment has installed.
    done = subprocess.run([sys.executable, str(REPO / "loadtests" / script), "--out", str(out)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # The first line names the day it ran; the rest is the measurement.
    fresh = out.with_suffix(".md").read_text().splitlines()[1:]
    assert fresh == (RESULTS / f"{committed}.md").read_text().splitlines()[1:]
