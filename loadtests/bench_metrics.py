"""What observability costs: the gateway with metrics (and request logs) on against the same gateway with both off.

    python loadtests/bench_metrics.py [--quick] [--duration 3] [--concurrency 1,16]

Targets, all against the same fake upstream: `direct` (the upstream itself), `obs-off` (metrics and
request logs off), `metrics` (metrics on, logs off) and `obs-on` (the defaults: metrics and one JSON
log line per request). The target is no measurable difference at p50: the table gives each
target's p50 added over `direct`, and that as a multiple of `obs-off`'s (1.00 is no difference).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from matrix import Plan
from report import matrix_report, run_and_write, verdict
from targets import Launcher, direct, gateway_target

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "obs-off"


def _settings(metrics: bool, logs: bool) -> dict[str, Any]:
    return {"settings": {"metrics_enabled": metrics, "log_requests": logs}}


TARGETS: dict[str, Launcher] = {
    "direct": direct,
    "obs-off": gateway_target(_settings(metrics=False, logs=False)),
    "metrics": gateway_target(_settings(metrics=True, logs=False)),
    "obs-on": gateway_target(_settings(metrics=True, logs=True)),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="1 s cells at concurrency 1, a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write metrics-<date>.{json,md}")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.concurrency = 1.0, 0.3, "1"
    return args


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan(
        duration_s=args.duration,
        warmup_s=args.warmup,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
        quiet_wait_s=10.0,
    )
    return await matrix_report("metrics", plan, TARGETS, BASELINE,
                               extra=lambda derived: verdict(derived, BASELINE, ("metrics", "obs-on")))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_and_write("metrics", "Metrics benchmark", bench(args), args.out, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
