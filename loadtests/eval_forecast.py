"""How far the budget forecast's projection lands from the truth, on synthetic ledgers whose future is known.

    python loadtests/eval_forecast.py [--out loadtests/results/forecast-DATE]

Each scenario is a daily spend series with a weekly shape (weekdays busy, weekends at ~40%): flat,
with noise, with a slow trend, with a step change to 2x ten days before the forecast. Eight weeks of
history, then the total of the next 3, 10 and 28 days is projected (gateway/accounting/forecast.py)
and compared with what the series really did, over 200 seeds each. Reported: the median and 90th
percentile of the relative error, how often the 80% interval held the truth, and the same error for
a naive forecast (the last 28 days' mean per day), the baseline the weekday model has to beat.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.accounting.forecast import project

START = date(2026, 1, 5)
WEEK = (1.2, 1.3, 1.25, 1.2, 1.1, 0.45, 0.5)
HISTORY = 56
HORIZONS = (3, 10, 28)
SEEDS = 200
SCENARIOS: dict[str, dict[str, float]] = {
    "weekly shape, 5% noise": {"noise": 0.05},
    "weekly shape, 15% noise": {"noise": 0.15},
    "slow trend +0.5%/day, 5% noise": {"noise": 0.05, "trend": 0.005},
    "step to 2x 10 days ago, 5% noise": {"noise": 0.05, "step_at": HISTORY - 10, "step": 2.0},
}


def series(days: int, seed: int, noise: float = 0.0, trend: float = 0.0, step_at: float = -1,
           step: float = 1.0) -> list[tuple[date, Decimal]]:
    rng = random.Random(seed)
    offset = rng.randrange(7)  # start on any weekday
    out = []
    for i in range(days):
        day = START + timedelta(days=i + offset)
        level = 100.0 * (1 + trend * i) * (step if 0 <= step_at <= i else 1.0)
        out.append((day, Decimal(str(round(max(0.0, level * WEEK[day.weekday()] * (1 + rng.gauss(0, noise))), 2)))))
    return out


def run(shape: dict[str, float], horizon: int) -> dict[str, Any]:
    errors, naive_errors, held = [], [], 0
    for seed in range(SEEDS):
        full = series(HISTORY + horizon, seed, **shape)
        history, future = full[:HISTORY], full[HISTORY:]
        p = project(history, Decimal(0), future[0][0], future[-1][0], None)
        truth = float(sum((v for _, v in future), Decimal(0)))
        errors.append(abs(float(p.projected) - truth) / truth)
        naive = float(sum((v for _, v in history[-28:]), Decimal(0))) / 28 * horizon
        naive_errors.append(abs(naive - truth) / truth)
        held += float(p.low) <= truth <= float(p.high)
    q = statistics.quantiles
    return {"horizon_days": horizon, "median_error": round(statistics.median(errors), 4),
            "p90_error": round(q(errors, n=10)[-1], 4), "interval_coverage": round(held / SEEDS, 3),
            "naive_median_error": round(statistics.median(naive_errors), 4)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", help="write <out>.json and <out>.md")
    args = parser.parse_args()
    results = {name: [run(shape, h) for h in HORIZONS] for name, shape in SCENARIOS.items()}
    today = datetime.now(UTC).date().isoformat()
    lines = [f"# Budget forecast evaluation, {today}", "",
             f"`python loadtests/eval_forecast.py`: {HISTORY} days of history, {SEEDS} seeds per scenario; the error "
             "is that of the projected total over the horizon. Naive: the last 28 days' mean per day.", "",
             "| scenario | horizon | median error | p90 error | 80% interval held | naive median error |",
             "|---|---|---|---|---|---|"]
    for name, rows in results.items():
        for r in rows:
            lines.append(f"| {name} | {r['horizon_days']} d | {r['median_error']:.1%} | {r['p90_error']:.1%} | "
                         f"{r['interval_coverage']:.0%} | {r['naive_median_error']:.1%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out + ".json").write_text(json.dumps({"date": today, "scenarios": results}, indent=2) + "\n")
        Path(args.out + ".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
