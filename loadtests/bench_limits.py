"""What rate limits and budgets cost on the hot path: the gateway with limits off and on, side by side.

    python loadtests/bench_limits.py [--quick] [--rounds 5] [--concurrency 1,64] [--redis-url URL]

Three gateways (`gateway serve --workers 1`, pinned to core 0) run at once in front of one fake
upstream (core 1, with this load generator):
- `limits-off`: no limit applies to the request, so admission returns before doing anything.
- `limits-memory`: the model carries RPM, TPM, parallel and budget caps (never reached), checked
  in-process (the embedded default).
- `limits-redis`: the same caps in Redis: one EVALSHA to admit and one to settle per request.
  Failure mode `closed`, so a Redis that stopped answering shows as errors, not as a fallback.
- `keys-memory`, `keys-redis`: the same two gateways called with a virtual key (issued through
  the admin API) whose key and team carry caps too: auth through the key cache, and three scopes
  (key, team, model) checked in the one script call. This is the whole "auth plus limits" cost.

The caps are far above what a run reaches: checked on every request, never hit. This machine is
shared, so instead of one long cell per target the run interleaves short cells, target after
target, for several rounds (rotating the order), and reports medians and the median of each
round's difference from `limits-off`: slow drifts in the machine's load then cancel out. The
figure that matters is `added p50 ms` of `keys-redis` (target: under 0.5 ms). Results go to
loadtests/results/limits-<date>.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from loadgen import chat_body, run_load
from matrix import wait_for_quiet
from procs import Server, start, wait_ready
from production import issue_key
from report import cancel_on_sigterm, run_and_write
from targets import MASTER_KEY, MODEL, _ready_or_stop, free_port, start_fake_upstream

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "limits-off"
PROXY_CPU, LOAD_CPU = 0, 1
HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}
# Far above anything a run can reach: the caps are checked on every request, never hit.
CAPS = {"rpm": 100_000_000, "tpm": 1_000_000_000_000, "max_parallel": 100_000, "budget_usd": "1000000000"}
PRICE = {"input_per_mtok": "0.15", "output_per_mtok": "0.60"}


async def start_gateway(name: str, workdir: Path, upstream_url: str, caps: dict[str, Any] | None,
                        settings: dict[str, Any]) -> tuple[Server, str]:  # fmt: skip
    port = free_port()
    group: dict[str, Any] = {
        "name": MODEL,
        "deployments": [{"provider": "openai", "base_url": upstream_url, "model": MODEL, "price": PRICE}],
    }
    if caps:
        group["limits"] = caps
    config = {"settings": {"data_dir": str(workdir / f"data-{port}"), **settings}, "models": [group]}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {"GATEWAY_MASTER_KEY": MASTER_KEY, "GATEWAY_REDIS_URL": None, "GATEWAY_DATABASE_URL": None}
    server = start(name, argv, log_dir=workdir, cpu=PROXY_CPU, env=env)
    await _ready_or_stop(server, wait_ready(server, f"http://127.0.0.1:{port}/healthz"))
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as client:
        response = await client.post(url, content=chat_body(MODEL, False), headers=HEADERS)
    limited = "x-ratelimit-limit-requests" in response.headers
    if response.status_code != 200 or limited != bool(caps):
        server.stop()
        raise RuntimeError(f"{name}: {response.status_code}, limited={limited}: {response.text[:200]}")
    return server, url


async def cell(server: Server, url: str, headers: dict[str, str], concurrency: int, duration: float,
               warmup: float) -> dict[str, Any]:  # fmt: skip
    marks: dict[str, tuple[float, float]] = {}

    def on_phase(phase: str) -> None:
        marks[phase] = (time.perf_counter(), server.cpu_seconds())

    result = await run_load(url, chat_body(MODEL, False), headers, concurrency, duration, warmup, on_phase=on_phase)
    (t0, cpu0), (t1, cpu1) = marks["measure"], marks["end"]
    result["proxy_cpu_pct"] = round(100 * (cpu1 - cpu0) / (t1 - t0), 1)
    return result


def summarise(cells: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per target, and the median over rounds of each round's difference from the baseline."""
    out: dict[str, Any] = {}
    base = cells[BASELINE]
    for name, runs in cells.items():
        row: dict[str, Any] = {
            "p50_ms": statistics.median(r["latency_ms"]["p50"] for r in runs),
            "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in runs),
            "rps": statistics.median(r["rps"] for r in runs),
            "proxy_cpu_pct": statistics.median(r["proxy_cpu_pct"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
        }
        # CPU the proxy spent per request, in µs: what the limits cost when the proxy is the bottleneck.
        row["cpu_us_per_request"] = round(
            statistics.median(10_000 * r["proxy_cpu_pct"] / r["rps"] for r in runs if r["rps"]), 1
        )
        if name != BASELINE:
            pairs = list(zip(runs, base, strict=True))
            row["added_p50_ms"] = round(statistics.median(
                r["latency_ms"]["p50"] - b["latency_ms"]["p50"] for r, b in pairs), 3)  # fmt: skip
            row["rps_vs_off"] = round(statistics.median(r["rps"] / b["rps"] for r, b in pairs if b["rps"]), 3)
            row["added_cpu_us_per_request"] = round(row["cpu_us_per_request"] - out[BASELINE]["cpu_us_per_request"], 1)
        out[name] = row
    return out


def markdown(summary: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| conc | target | p50 ms | p99 ms | rps | proxy cpu% | cpu µs/req | added p50 ms | rps ÷ off "
        "| added cpu µs/req | errors |",
        "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for concurrency, rows in summary.items():
        for name, r in rows.items():
            lines.append(
                f"| {concurrency} | {name} | {r['p50_ms']:.3f} | {r['p99_ms']:.2f} | {r['rps']:.0f} "
                f"| {r['proxy_cpu_pct']:.0f} | {r['cpu_us_per_request']:.0f} | {r.get('added_p50_ms', '-')} "
                f"| {r.get('rps_vs_off', '-')} | {r.get('added_cpu_us_per_request', '-')} | {r['errors']} |"
            )
    return "\n".join(lines) + "\n"


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_sigterm()
    os.sched_setaffinity(0, {LOAD_CPU})
    prefix = "bench" + secrets.token_hex(4)
    started = dt.datetime.now(dt.UTC)
    servers: list[Server] = []
    cells: dict[int, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        workdir = Path(tmp)
        upstream, port = await start_fake_upstream(workdir, cpu=LOAD_CPU, tokens=20)
        servers.append(upstream)
        try:
            upstream_url = f"http://127.0.0.1:{port}/v1"
            redis = {"redis_url": args.redis_url, "redis_prefix": prefix, "limits_failure_mode": "closed"}
            # name -> (server, url, headers)
            targets: dict[str, tuple[Server, str, dict[str, str]]] = {}
            for name, caps, settings in ((BASELINE, None, {}), ("limits-memory", CAPS, {}),
                                         ("limits-redis", CAPS, redis)):  # fmt: skip
                server, url = await start_gateway(name, workdir, upstream_url, caps, settings)
                servers.append(server)
                targets[name] = (server, url, HEADERS)
            for backend in ("memory", "redis"):
                server, url, _ = targets[f"limits-{backend}"]
                headers = await issue_key(url.removesuffix("/chat/completions"), team_caps=CAPS, key_caps=CAPS)
                targets[f"keys-{backend}"] = (server, url, headers)
            names = list(targets)
            for concurrency in args.concurrencies:
                cells[concurrency] = {name: [] for name in names}
                for round_ in range(args.rounds):
                    await wait_for_quiet(30.0, 10.0)
                    order = names[round_ % len(names):] + names[: round_ % len(names)]
                    for name in order:
                        result = await cell(*targets[name], concurrency, args.duration, args.warmup)
                        cells[concurrency][name].append(result)
                        print(f"  c={concurrency:<3} round {round_ + 1} {name:<14} p50={result['latency_ms']['p50']}ms "
                              f"rps={result['rps']} cpu={result['proxy_cpu_pct']}% err={result['errors']}",
                              file=sys.stderr, flush=True)  # fmt: skip
        finally:
            for server in reversed(servers):
                server.stop()
            await _delete_keys(args.redis_url, prefix)
    summary = {str(c): summarise(per_target) for c, per_target in cells.items()}
    return {
        "benchmark": "limits",
        "started": started.isoformat(timespec="seconds"),
        "plan": {"rounds": args.rounds, "duration_s": args.duration, "warmup_s": args.warmup,
                 "concurrencies": args.concurrencies},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "summary": summary,
        "cells": {str(c): per_target for c, per_target in cells.items()},
        "markdown": markdown(summary),
    }


async def _delete_keys(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_timeout=5)
    try:
        async for key in client.scan_iter(match="{" + prefix + ":*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per concurrency")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each cell")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s cells, a smoke test")
    parser.add_argument("--concurrency", default="1,64", help="comma-separated")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write limits-<date>.{json,md}")
    args = parser.parse_args(argv)
    args.concurrencies = [int(c) for c in args.concurrency.split(",")]
    if args.quick:
        args.rounds, args.duration, args.warmup = 2, 1.0, 0.3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_and_write("limits", "Limits benchmark", bench(args), args.out, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
