"""The core benchmark: what the gateway costs over the least a proxy can cost.

    python loadtests/bench_core.py [--quick] [--targets direct,nginx,...] [--litellm]
    python loadtests/bench_core.py --tree before=/path/to/other/checkout --targets floor-aiohttp,gateway-prod

Every target proxies the same fake upstream; see loadtests/README.md for how to read the output.
`--tree NAME=PATH` adds `<target>@NAME` for each gateway target chosen: the same target run from the
source tree at PATH (PYTHONPATH=PATH), so a before/after comparison is one run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from matrix import Plan
from production import embedded_keyed_target, production_target
from report import matrix_report, run_and_write
from targets import Launcher, direct, floor, gateway_target, litellm, nginx, responses_target

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "floor-aiohttp"  # the upstream client the gateway uses
HEADLINE = "gateway-prod"
CHAT_PATH = "gateway"  # what the Responses targets are compared with
RESPONSES_TARGETS = ("gateway-responses", "gateway-responses-native")


def gateway_targets(tree: Path | None = None) -> dict[str, Launcher]:
    """The gateway's targets, from this source tree or from `tree`."""
    return {
        # What teams deploy: a budgeted virtual key on a budgeted team, limits in Redis, keys and the
        # ledger in PostgreSQL, metrics and a JSON log line per request (loadtests/production.py).
        "gateway-prod": production_target(tree),
        # The embedded default (SQLite, limits in-process, ledger, metrics, logs) with such a key.
        "gateway-keyed": embedded_keyed_target(tree),
        # The embedded default called with the master key: no limits apply.
        "gateway": gateway_target(tree=tree),
        # The same with the recorders off: what the proxy path itself (auth, routing) costs.
        "gateway-proxy": gateway_target(env={
            "GATEWAY_LEDGER_ENABLED": "false", "GATEWAY_METRICS_ENABLED": "false", "GATEWAY_LOG_REQUESTS": "false",
        }, tree=tree),
        # `gateway` driven through POST /v1/responses: translated to the fake's chat API, and relayed
        # to its native Responses API. Compared with `gateway` (the chat path) in the same run.
        "gateway-responses": responses_target(native=False, tree=tree),
        "gateway-responses-native": responses_target(native=True, tree=tree),
    }  # fmt: skip


TARGETS: dict[str, Launcher] = {
    "direct": direct,
    "floor-httpx": floor("floor_httpx"),
    "floor-aiohttp": floor("floor_aiohttp"),
    **gateway_targets(),
    "nginx": nginx,
    "litellm": litellm,
}
DEFAULT_TARGETS = [name for name in TARGETS if name != "litellm"]
GATEWAY_TARGETS = list(gateway_targets())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", help=f"comma-separated subset of {', '.join(TARGETS)} (and <gateway target>@TREE)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH",
                        help="also run the chosen gateway targets from the source tree at PATH, as <target>@NAME")
    parser.add_argument("--litellm", action="store_true", help="add the LiteLLM proxy (installs it into /tmp)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; cells and ratios are medians")
    parser.add_argument("--upstream-latency-ms", type=float, default=0.0,
                        help="the fake upstream waits this long before answering (and before a stream's first event)")
    parser.add_argument("--quiet-wait", type=float, default=30.0,
                        help="longest wait, before each cell, for other work to leave the cores")
    parser.add_argument("--noisy-retries", type=int, default=2,
                        help="reruns of a cell that shared its cores with other work (0 on an always busy machine)")
    parser.add_argument("--quick", action="store_true", help="1 s cells, a smoke test")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write core-<date>.{json,md}")
    args = parser.parse_args(argv)  # fmt: skip
    targets = dict(TARGETS)
    trees: dict[str, Path] = {}
    for spec in args.tree:
        name, _, path = spec.partition("=")
        if not name or not path or not Path(path).is_dir():
            parser.error(f"--tree {spec!r}: expected NAME=PATH to a source tree")
        trees[name] = Path(path)
        targets.update({f"{target}@{name}": launch for target, launch in gateway_targets(Path(path)).items()})
    names = args.targets.split(",") if args.targets else list(DEFAULT_TARGETS)
    # Each gateway target chosen is also run from every other tree, right after it.
    names = [variant for n in names for variant in [n, *(f"{n}@{t}" for t in trees if n in GATEWAY_TARGETS)]]
    if args.litellm and "litellm" not in names:
        names.append("litellm")
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in targets]
    if unknown:
        parser.error(f"unknown targets {unknown}; choose from {list(targets)}")
    args.chosen = {name: targets[name] for name in names}
    args.trees = {name: str(path.resolve()) for name, path in trees.items()}
    if args.quick:
        args.duration, args.warmup, args.quiet_wait = 1.0, 0.3, min(args.quiet_wait, 5.0)
    return args


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan(
        duration_s=args.duration,
        warmup_s=args.warmup,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
        rounds=args.rounds,
        upstream_latency_ms=args.upstream_latency_ms,
        quiet_wait_s=args.quiet_wait,
        noisy_retries=args.noisy_retries,
    )
    report = await matrix_report("core", plan, args.chosen, BASELINE, extra=headline)
    report["trees"] = args.trees
    return report


def headline(derived: list[dict[str, Any]]) -> str:
    """One line per target: the figures the targets of issue 18 are stated in, as ratios to the floor."""
    cells = {(d["target"], d["mode"], d["concurrency"]): d for d in derived}
    top = max((d["concurrency"] for d in derived), default=0)
    targets = list(dict.fromkeys(d["target"] for d in derived if d["target"] not in ("direct", BASELINE)))
    if not targets or top == 0:
        return ""

    def value(target: str, mode: str, concurrency: int, key: str) -> str:
        figure = cells.get((target, mode, concurrency), {}).get(key)
        return "-" if figure is None else f"{figure:.2f}"

    lines = ["", f"Headline ({HEADLINE} leads the README): at concurrency {top}, requests/s ÷ {BASELINE}'s and "
             f"the proxy's CPU per request ÷ {BASELINE}'s (on a shared core the second is the steadier figure); "
             f"at concurrency 1, the p50 added over direct ÷ {BASELINE}'s.", "",
             f"| target | c={top} rps ÷ floor, non-stream | stream | c={top} CPU/req ÷ floor's, non-stream "
             "| stream | c=1 added p50 ÷ floor's, non-stream | stream |",
             "|---|--:|--:|--:|--:|--:|--:|"]  # fmt: skip
    for target in targets:
        row = [value(target, mode, concurrency, key) for concurrency, key in
               ((top, "rps_vs_baseline"), (top, "cpu_vs_baseline"), (1, "added_vs_baseline"))
               for mode in ("non-stream", "stream")]  # fmt: skip
        name = f"**{target}**" if target == HEADLINE else target
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return "\n".join(lines + responses_lines(cells, top)) + "\n"


def responses_lines(cells: dict[tuple[str, str, int], dict[str, Any]], top: int) -> list[str]:
    """The Responses API's targets against the chat path of the same gateway, in the same run: each
    figure is the target's ratio to the floor divided by `gateway`'s (so the floor cancels out)."""
    chosen = [t for t in RESPONSES_TARGETS if any(key[0] == t for key in cells)]
    if not chosen or not any(key[0] == CHAT_PATH for key in cells):
        return []

    def versus_chat(target: str, mode: str, key: str) -> str:
        mine = cells.get((target, mode, top), {}).get(key)
        chat = cells.get((CHAT_PATH, mode, top), {}).get(key)
        return "-" if mine is None or not chat else f"{mine / chat:.2f}"

    lines = ["", f"Responses API ÷ chat path: at concurrency {top}, requests/s and the proxy's CPU per request "
             f"of POST /v1/responses ÷ those of POST /v1/chat/completions on `{CHAT_PATH}` (same config, same run).",
             "", "| target | rps ÷ chat, non-stream | stream | CPU/req ÷ chat, non-stream | stream |",
             "|---|--:|--:|--:|--:|"]  # fmt: skip
    for target in chosen:
        row = [versus_chat(target, mode, key) for key in ("rps_vs_baseline", "cpu_vs_baseline")
               for mode in ("non-stream", "stream")]
        lines.append(f"| {target} | " + " | ".join(row) + " |")
    return lines


def describe(report: dict[str, Any]) -> str:
    plan, load = report["plan"], report["machine"]["load_average"]
    concurrencies = ", ".join(str(c) for c in plan["concurrencies"])
    trees = "".join(f" `@{name}`: the gateway from {path}." for name, path in report.get("trees", {}).items())
    return (
        f"Each cell: {plan['duration_s']:g} s measured after {plan['warmup_s']:g} s of warm-up; concurrency "
        f"{concurrencies}; {plan['stream_tokens']} tokens per stream; upstream latency "
        f"{plan['upstream_latency_ms']:g} ms; {plan['rounds']} interleaved round(s), medians. The proxy on core "
        f"{plan['proxy_cpu']}, the fake upstream and the load generator on core {plan['load_cpu']}. Load average "
        f"at the start: {' / '.join(f'{x:.1f}' for x in load)}.{trees} Read it with loadtests/README.md."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_and_write("core", "Core benchmark", bench(args), args.out, quick=args.quick,
                         header=describe)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
