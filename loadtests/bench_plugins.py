"""What plugins cost a request they do not apply to: the gateway with no `plugins:` section against
the same gateway with guardrails and the cache configured for a team and a key the load's key is not.

    python loadtests/bench_plugins.py [--quick] [--duration 3] [--concurrency 1,16]

Targets, all against the same fake upstream: `direct` (the upstream itself), `plugins-none` (no
plugins configured), `plugins-elsewhere` (every built-in configured for another team and another
key: the load, sent with the master key, matches none of them) and `plugins-applied` (PII masking,
injection heuristics and request limits for every request: what they cost when they do apply,
for scale). The target is no measurable difference at p50 between `plugins-elsewhere` and
`plugins-none`: the table gives each target's p50 added over `direct`, and that as a multiple of
`plugins-none`'s (1.00 is no difference). `plugins-none-again` and `plugins-elsewhere-again` repeat
the two, alternating, so the spread between runs of the same gateway can be seen beside the difference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from matrix import Plan
from report import matrix_report, run_and_write, verdict
from targets import Launcher, direct, gateway_target

from gateway.config.plugins import PluginsSection

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "plugins-none"

GUARDRAILS: list[dict[str, Any]] = [
    {"name": "request_limits", "config": {"max_tokens": 4096, "max_prompt_chars": 100_000}},
    {"name": "pii", "config": {"mode": "mask"}},
    {"name": "injection", "config": {"action": "flag"}},
]
ELSEWHERE = {
    "plugins": {
        "teams": {"team_not_the_loads": [*GUARDRAILS, {"name": "content", "config": {"deny": ["x"]}},
                                         {"name": "cache"}]},
        "keys": {"key_not_the_loads": [{"name": "cache", "config": {"opt_in": "header"}}]},
    }
}
APPLIED = {"plugins": {"global": GUARDRAILS}}

# The two that are compared run twice, alternating, so that what differs between two runs of the
# same gateway (the process, the machine's other work) shows beside what differs between them.
TARGETS: dict[str, Launcher] = {
    "direct": direct,
    "plugins-none": gateway_target(),
    "plugins-elsewhere": gateway_target(ELSEWHERE),
    "plugins-none-again": gateway_target(),
    "plugins-elsewhere-again": gateway_target(ELSEWHERE),
    "plugins-applied": gateway_target(APPLIED),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated")
    parser.add_argument("--quick", action="store_true", help="1 s cells at concurrency 1, a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write plugins-<date>.{json,md}")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.concurrency = 1.0, 0.3, "1"
    return args


def resolution_ns(section: dict[str, Any], calls: int = 200_000) -> float:
    """In process, without I/O: what deciding that no plugin applies costs a request, in ns."""
    from gateway.accounting.pricing import PriceBook
    from gateway.config.settings import Settings
    from gateway.identity.auth import MASTER
    from gateway.plugins.registry import build_plugins

    config = {**section.get("plugins", {})}
    plugins = build_plugins(PluginsSection.model_validate(config), Settings(), PriceBook({}))
    start = plugins.start
    began = time.perf_counter_ns()
    for _ in range(calls):
        start(MASTER)
    return (time.perf_counter_ns() - began) / calls


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan(
        duration_s=args.duration,
        warmup_s=args.warmup,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
        quiet_wait_s=10.0,
    )

    def below(derived: list[dict[str, Any]]) -> str:
        none, elsewhere = resolution_ns({}), resolution_ns(ELSEWHERE)
        compared = ("plugins-elsewhere", "plugins-none-again", "plugins-elsewhere-again", "plugins-applied")
        return verdict(derived, BASELINE, compared) + (
            f"\nIn process, per request, deciding that no plugin applies: {none:.0f} ns with no plugins "
            f"configured, {elsewhere:.0f} ns with plugins configured for other teams and keys.\n"
        )

    return await matrix_report("plugins", plan, TARGETS, BASELINE, extra=below)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_and_write("plugins", "Plugins benchmark", bench(args), args.out, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
