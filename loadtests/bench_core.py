"""The core benchmark: what the gateway costs over the least a proxy can cost.

    python loadtests/bench_core.py [--quick] [--targets direct,nginx,...] [--litellm]

Every target proxies the same fake upstream; see loadtests/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from matrix import Plan
from report import matrix_report, run_and_write
from targets import Launcher, direct, floor, gateway_target, litellm, nginx

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "floor-aiohttp"  # the upstream client the gateway uses

TARGETS: dict[str, Launcher] = {
    "direct": direct,
    "floor-httpx": floor("floor_httpx"),
    "floor-aiohttp": floor("floor_aiohttp"),
    # The gateway as it starts by default: SQLite ledger, metrics and a JSON log line per request.
    "gateway": gateway_target(),
    # The same with those three off: what the proxy path itself (auth, routing, limits) costs.
    "gateway-proxy": gateway_target(env={
        "GATEWAY_LEDGER_ENABLED": "false", "GATEWAY_METRICS_ENABLED": "false", "GATEWAY_LOG_REQUESTS": "false",
    }),
    "nginx": nginx,
    "litellm": litellm,
}
DEFAULT_TARGETS = [name for name in TARGETS if name != "litellm"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", help=f"comma-separated subset of {', '.join(TARGETS)}")
    parser.add_argument("--litellm", action="store_true", help="add the LiteLLM proxy (installs it into /tmp)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    parser.add_argument("--quick", action="store_true", help="1 s cells, a smoke test")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write core-<date>.{json,md}")
    args = parser.parse_args(argv)
    names = args.targets.split(",") if args.targets else list(DEFAULT_TARGETS)
    if args.litellm and "litellm" not in names:
        names.append("litellm")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        parser.error(f"unknown targets {unknown}; choose from {list(TARGETS)}")
    args.names = names
    if args.quick:
        args.duration, args.warmup = 1.0, 0.3
    return args


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan(
        duration_s=args.duration,
        warmup_s=args.warmup,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
    )
    return await matrix_report("core", plan, {name: TARGETS[name] for name in args.names}, BASELINE)


def describe(plan: dict[str, Any]) -> str:
    concurrencies = ", ".join(str(c) for c in plan["concurrencies"])
    return (
        f"Each cell: {plan['duration_s']:g} s measured after {plan['warmup_s']:g} s of warm-up; concurrency "
        f"{concurrencies}; {plan['stream_tokens']} tokens per stream. The proxy on core {plan['proxy_cpu']}, "
        f"the fake upstream and the load generator on core {plan['load_cpu']}. "
        "Read it with loadtests/README.md."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_and_write("core", "Core benchmark", bench(args), args.out, quick=args.quick,
                         header=lambda report: describe(report["plan"]))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
