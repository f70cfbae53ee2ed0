"""How well the complexity router's score sends prompts to the tier they need.

    python loadtests/eval_complexity.py [--out loadtests/results/complexity-DATE]

The gateway's own scorer (gateway/routing/complexity.py) runs over the labelled set
`complexity_prompts.yaml` (304 prompts, each labelled with the smallest tier that should serve it).
For each pair of thresholds (small's and medium's `max_score`) it reports:

    shares          the share of prompts sent to each tier
    under-routed    prompts sent to a tier below their label (a quality risk)
    severe          large prompts sent to the small tier
    over-routed     prompts sent to a tier above their label (money spent for nothing)
    cost            what the routed set costs relative to sending everything to the large tier,
                    with the relative prices below and every prompt the same size

What this can claim: how the score orders and splits *this* set against *these* labels. It cannot
claim quality: there are no model outputs here, so "under-routed" counts prompts a small model
*might* fail, judged by the label's author, not answers that were wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from gateway.config.routing import ComplexityOptions, Tier
from gateway.routing.complexity import score, tier_for

HERE = Path(__file__).resolve().parent
PROMPTS = HERE / "complexity_prompts.yaml"
TIERS = ("small", "medium", "large")
# Relative price per token, roughly gpt-4o-mini : gpt-4o : o3 list prices (blended input/output).
PRICE = {"small": 1.0, "medium": 16.0, "large": 40.0}
SMALL_MAX = (0.05, 0.1, 0.15, 0.2, 0.25)
MEDIUM_MAX = (0.25, 0.3, 0.35, 0.4, 0.5)
EARLIER_TURN = [{"role": "user", "content": "Earlier question."}, {"role": "assistant", "content": "Earlier answer."}]
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look something up.",
                                         "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}


def body(prompt: str, flags: dict[str, Any]) -> dict[str, Any]:
    turns = int(flags.get("turns", 1))
    earlier = (EARLIER_TURN * turns)[: max(0, turns - 1)]
    request: dict[str, Any] = {"model": "auto", "messages": [*earlier, {"role": "user", "content": prompt}]}
    if flags.get("tools"):
        request["tools"] = [TOOL]
    if flags.get("json"):
        request["response_format"] = {"type": "json_schema", "json_schema": {"name": "out", "schema": {}}}
    return request


def load() -> list[tuple[str, float]]:
    items = yaml.safe_load(PROMPTS.read_text())["prompts"]
    return [(item[0], score(body(item[1], item[2] if len(item) > 2 else {}))) for item in items]


def evaluate(scored: list[tuple[str, float]], small_max: float, medium_max: float) -> dict[str, Any]:
    options = ComplexityOptions(tiers=[Tier(name="small", model="s", max_score=small_max),
                                       Tier(name="medium", model="m", max_score=medium_max),
                                       Tier(name="large", model="l")])
    routed = [(label, tier_for(options, value).name) for label, value in scored]
    n = len(routed)
    rank = {t: i for i, t in enumerate(TIERS)}
    under = sum(rank[got] < rank[label] for label, got in routed)
    over = sum(rank[got] > rank[label] for label, got in routed)
    severe = sum(label == "large" and got == "small" for label, got in routed)
    large = sum(label == "large" for label, _ in routed)
    cost = sum(PRICE[got] for _, got in routed) / (PRICE["large"] * n)
    return {"small_max": small_max, "medium_max": medium_max,
            "shares": {t: round(sum(got == t for _, got in routed) / n, 3) for t in TIERS},
            "under_routed": round(under / n, 3), "over_routed": round(over / n, 3),
            "severe_of_large": round(severe / large, 3), "cost_vs_all_large": round(cost, 3)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", help="write <out>.json and <out>.md")
    args = parser.parse_args()
    scored = load()
    rows = [evaluate(scored, s, m) for s in SMALL_MAX for m in MEDIUM_MAX if m > s]
    # Thresholds picked on half the set (even positions: fewest misrouted, under-routing counted
    # twice), then measured on the other half, which the pick never saw.
    tune, held = scored[0::2], scored[1::2]
    best = min(((s, m) for s in SMALL_MAX for m in MEDIUM_MAX if m > s),
               key=lambda p: 2 * evaluate(tune, *p)["under_routed"] + evaluate(tune, *p)["over_routed"])
    held_out = {"picked_on": "even positions", "measured_on": "odd positions", **evaluate(held, *best)}
    n = len(scored)
    labels = {t: sum(label == t for label, _ in scored) for t in TIERS}
    oracle = sum(PRICE[label] for label, _ in scored) / (PRICE["large"] * n)
    means = {t: round(sum(v for label, v in scored if label == t) / labels[t], 3) for t in TIERS}
    result = {"prompts": n, "labels": labels, "mean_score_by_label": means, "price": PRICE,
              "oracle_cost_vs_all_large": round(oracle, 3), "held_out": held_out, "thresholds": rows,
              "date": datetime.now(UTC).date().isoformat()}
    lines = [f"# Complexity routing evaluation, {result['date']}", "",
             f"`python loadtests/eval_complexity.py`: {n} labelled prompts ({labels['small']} small, "
             f"{labels['medium']} medium, {labels['large']} large; `loadtests/complexity_prompts.yaml`).",
             f"Mean score by label: small {means['small']}, medium {means['medium']}, large {means['large']}.",
             f"Relative prices small : medium : large = {PRICE['small']:g} : {PRICE['medium']:g} : {PRICE['large']:g};"
             f" routing each prompt to its label (the oracle) costs {oracle:.3f} of all-large.", "",
             f"Held out: thresholds picked on the even-numbered half (small max {best[0]}, medium max {best[1]}), "
             f"measured on the odd half: shares {held_out['shares']}, under-routed {held_out['under_routed']:.1%} "
             f"(large→small {held_out['severe_of_large']:.1%} of large), over-routed {held_out['over_routed']:.1%}, "
             f"cost {held_out['cost_vs_all_large']:.3f} of all-large.", "", "Every threshold pair, whole set:", "",
             "| small max | medium max | small | medium | large | under-routed | large→small | over-routed "
             "| cost vs all-large |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['small_max']} | {r['medium_max']} | {cells(r)}" for r in rows]
    publish("\n".join(lines) + "\n", result, args.out)
    return 0


def cells(r: dict[str, Any]) -> str:
    """An evaluated row's table cells: shares, under-, severe and over-routing, cost."""
    s = r["shares"]
    return (f"{s['small']:.1%} | {s['medium']:.1%} | {s['large']:.1%} | {r['under_routed']:.1%} | "
            f"{r['severe_of_large']:.1%} | {r['over_routed']:.1%} | {r['cost_vs_all_large']:.3f} |")


def publish(text: str, result: dict[str, Any], out: str | None) -> None:
    print(text)
    if out:
        Path(out + ".json").write_text(json.dumps(result, indent=2) + "\n")
        Path(out + ".md").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
