"""The classifier's evaluation measures what the features' evaluation held out: its weight-0 rows are
the features' held-out figures, with the fake embeddings run here and in the committed MiniLM result."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "loadtests" / "results"
FIGURES = ("shares", "under_routed", "over_routed", "severe_of_large", "cost_vs_all_large")


def test_weight_zero_is_the_features_held_out_and_the_results_agree() -> None:
    sys.path.insert(0, str(REPO / "loadtests"))  # a folder of scripts that import each other
    try:
        import eval_complexity_classifier
    finally:
        sys.path.remove(str(REPO / "loadtests"))
    held_out = json.loads((RESULTS / "complexity-2026-12-07.json").read_text())["held_out"]
    fake = asyncio.run(eval_complexity_classifier.run("fake"))
    minilm = json.loads((RESULTS / "complexity-classifier-minilm-2026-12-07.json").read_text())
    committed_fake = json.loads((RESULTS / "complexity-classifier-fake-2026-12-07.json").read_text())
    assert fake["rows"] == committed_fake["rows"]
    for result in (fake, minilm):
        for row in result["rows"]:
            if row["weight"] == 0.0:
                assert {k: row[k] for k in FIGURES} == {k: held_out[k] for k in FIGURES}
