"""The worker's memory under steady load: RSS every few seconds over a long run at concurrency 64.

    python loadtests/soak_rss.py [--minutes 10] [--every 5] [--target gateway-prod] [--quick]

The target (by default the production configuration of loadtests/production.py) runs on core 0, the
fake upstream and the load generator on core 1. Half the connections send unary requests, half
20-event streams, one request at a time each, for `--minutes`; meanwhile the worker's resident set
(VmRSS) is read every `--every` seconds. The target (issue 18): at most 150 MB, flat. "Flat" is judged
on the second half of the run, after caches and pools have filled: its least-squares slope in MB per
minute. Results go to loadtests/results/rss-<date>.{json,md} (`-quick` added for `--quick`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_core import gateway_targets
from loadgen import chat_body, run_load
from procs import REPO
from report import cancel_on_sigterm, machine, run_and_write
from targets import MODEL, serving

RESULTS = Path(__file__).resolve().parent / "results"
PROXY_CPU, LOAD_CPU = 0, 1
TARGET_MB = 150.0


def rss_mb(pid: int) -> tuple[float, float]:
    """The process's resident set and its peak so far, in MB."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024  # kB
    return round(fields["VmRSS"], 1), round(fields["VmHWM"], 1)


def slope_mb_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return round(60 * sum((t - mean_t) * (m - mean_m) for t, m in points) / var, 3)


async def sample(pid: int, every: float, began: float, curve: list[dict[str, Any]], server_cpu: Any) -> None:
    while True:
        rss, hwm = rss_mb(pid)
        curve.append({"t_s": round(time.perf_counter() - began, 1), "rss_mb": rss, "peak_mb": hwm,
                      "cpu_s": round(server_cpu(), 2)})  # fmt: skip
        await asyncio.sleep(every)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_sigterm()
    os.sched_setaffinity(0, {LOAD_CPU})
    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    seconds = args.minutes * 60
    curve: list[dict[str, Any]] = []
    launch = gateway_targets(args.tree if args.tree != REPO else None)[args.target]
    with tempfile.TemporaryDirectory(prefix="soak-rss-") as tmp:
        async with serving(launch, Path(tmp), proxy_cpu=PROXY_CPU, load_cpu=LOAD_CPU, tokens=20) as running:
            assert running.server is not None
            pid = running.server.busiest_pid()
            url = f"{running.base_url}/chat/completions"
            began = time.perf_counter()
            sampler = asyncio.create_task(sample(pid, args.every, began, curve, running.server.cpu_seconds))
            print(f"[{args.target}] pid {pid}: {args.concurrency} connections for {args.minutes:g} min, RSS every "
                  f"{args.every:g} s", file=sys.stderr, flush=True)  # fmt: skip
            try:
                half = args.concurrency // 2
                loads = await asyncio.gather(
                    run_load(url, chat_body(MODEL, False), running.headers, args.concurrency - half, seconds, 0.0),
                    run_load(url, chat_body(MODEL, True), running.headers, half, seconds, 0.0),
                )
            finally:
                sampler.cancel()
            rss, peak = rss_mb(pid)
            curve.append({"t_s": round(time.perf_counter() - began, 1), "rss_mb": rss, "peak_mb": peak,
                          "cpu_s": round(running.server.cpu_seconds(), 2)})  # fmt: skip
    summary = summarise(curve, loads)
    return {
        "benchmark": "rss",
        "started": started.isoformat(timespec="seconds"),
        "target": args.target,
        "tree": str(args.tree),
        "plan": {"minutes": args.minutes, "every_s": args.every, "concurrency": args.concurrency,
                 "mix": "half unary, half 20-event streams"},
        "machine": {**machine(), "load_average_before": load_before},
        "summary": summary,
        "loads": [{k: v for k, v in load.items() if k != "url"} for load in loads],
        "curve": curve,
        "markdown": markdown(summary, curve),
    }  # fmt: skip


def summarise(curve: list[dict[str, Any]], loads: list[dict[str, Any]]) -> dict[str, Any]:
    end = curve[-1]["t_s"]
    second_half = [(p["t_s"], p["rss_mb"]) for p in curve if p["t_s"] >= end / 2]
    peak = max(p["peak_mb"] for p in curve)
    return {
        "first_mb": curve[0]["rss_mb"],
        "last_mb": curve[-1]["rss_mb"],
        "peak_mb": peak,
        "second_half_slope_mb_per_min": slope_mb_per_min(second_half),
        "under_target": peak <= TARGET_MB,
        "requests": sum(load["ok"] for load in loads),
        "errors": sum(load["errors"] for load in loads),
        "rps": {("stream" if load["stream"] else "non-stream"): load["rps"] for load in loads},
    }


def markdown(summary: dict[str, Any], curve: list[dict[str, Any]]) -> str:
    lines = [
        f"Peak RSS {summary['peak_mb']} MB (target ≤ {TARGET_MB:g} MB: "
        f"{'met' if summary['under_target'] else 'NOT met'}); first sample {summary['first_mb']} MB, last "
        f"{summary['last_mb']} MB; slope over the second half {summary['second_half_slope_mb_per_min']} MB/min. "
        f"{summary['requests']} requests, {summary['errors']} errors; requests/s {summary['rps']}.",
        "",
        "| t s | RSS MB | peak MB | worker CPU s |",
        "|--:|--:|--:|--:|",
    ]
    # About 40 rows whatever the length of the run; the JSON has every sample.
    step = max(1, len(curve) // 40)
    shown = curve[::step] + ([curve[-1]] if (len(curve) - 1) % step else [])
    lines += [f"| {p['t_s']} | {p['rss_mb']} | {p['peak_mb']} | {p['cpu_s']} |" for p in shown]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="gateway-prod", choices=list(gateway_targets()))
    parser.add_argument("--tree", type=Path, default=REPO, help="the source tree to run the gateway from")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--concurrency", type=int, default=64, help="connections, half unary, half streams")
    parser.add_argument("--quick", action="store_true", help="1 minute, a sample a second: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write rss-<date>.{json,md}")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.every = 1.0, 1.0
    args.tree = args.tree.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def header(report: dict[str, Any]) -> str:
        m, p = report["machine"], report["plan"]
        return (f"Target `{report['target']}` from {report['tree']}; {p['concurrency']} connections ({p['mix']}) "
                f"for {p['minutes']:g} min; RSS of the worker every {p['every_s']:g} s. Load average before: "
                f"{' / '.join(f'{x:.1f}' for x in m['load_average_before'])}, after: "
                f"{' / '.join(f'{x:.1f}' for x in m['load_average'])}.")  # fmt: skip

    return run_and_write("rss", "RSS soak", soak(args), args.out, quick=args.quick, header=header)


if __name__ == "__main__":
    sys.exit(main())
