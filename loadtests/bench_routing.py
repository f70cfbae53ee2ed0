"""The routing benchmark: each strategy over the same three deployments, and what routing costs.

    python loadtests/bench_routing.py [--quick] [--duration 4] [--concurrency 16]

Part 1, strategies side by side: three fake replicas (tests/routing/fake_vllm.py) of different
latency, the fastest failing a quarter of its requests; one gateway, one model group per
strategy over the same three. Each group gets the same closed-loop load; the table gives the
success rate seen by the client, p50/p99 and where the requests went.

Part 2, the overhead of routing: (a) in process, the router's own time per request (plan, pick,
record) for every strategy, with no I/O; (b) end to end at concurrency 1 against a zero-latency
fake upstream, the latency the gateway adds over calling the fake directly, for a one-deployment
group and for each strategy over three deployments.

The gateway runs on core 0; fakes and the load generator on core 1. Results go to
loadtests/results/routing-<UTC date>.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from loadgen import chat_body, run_load
from procs import REPO, Server, free_port, start, wait_ready
from report import run_and_write
from targets import MASTER_KEY, start_fake_upstream

from gateway.config.file import config_from_dict
from gateway.core.types import Endpoint, Principal, Usage
from gateway.pipeline.context import RequestContext
from gateway.routing.router import Router
from gateway.routing.strategies import STRATEGIES

try:
    from gateway.core.request import ClientRequest
except ImportError:  # trees before the request value: the router reads the context
    ClientRequest = None  # type: ignore[assignment,misc]

RESULTS = Path(__file__).resolve().parent / "results"
HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}
CALLER = Principal(key_id="master", key_prefix="sk-master", is_master=True)
GATEWAY_CPU, LOAD_CPU = 0, 1
STRATEGY_NAMES = ("priority", "weighted", "least-busy", "latency", "cost")

# name, latency ms, failure rate, weight, price (input, output per Mtok): fast but flaky, and dearer
REPLICAS = (
    ("fast", 20.0, 0.25, 3, ("0.50", "1.50")),
    ("mid", 60.0, 0.0, 2, ("0.30", "1.20")),
    ("slow", 150.0, 0.0, 1, ("0.10", "0.40")),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="1 s cells, a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 1.0, 0.3
    return args


# --- processes ---------------------------------------------------------------------------------


async def start_replica(workdir: Path, name: str, latency_ms: float, fail_rate: float) -> tuple[Server, str]:
    port = free_port()
    argv = [sys.executable, "-m", "tests.routing.fake_vllm", "--port", str(port), "--name", name,
            "--latency-ms", str(latency_ms), "--fail-rate", str(fail_rate), "--seed", "42", "--max-running", "256"]
    server = start(f"replica-{name}", argv, log_dir=workdir, cpu=LOAD_CPU, cwd=REPO)
    await wait_ready(server, f"http://127.0.0.1:{port}/_fake/stats")
    return server, f"http://127.0.0.1:{port}"


async def start_gateway(workdir: Path, models: list[dict[str, Any]], routing: dict[str, Any]) -> tuple[Server, str]:
    port = free_port()
    path = workdir / f"gateway-{port}.yaml"
    path.write_text(yaml.safe_dump({"models": models, "routing": routing}, sort_keys=False))
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]
    server = start("gateway", argv, log_dir=workdir, cpu=GATEWAY_CPU, env={"GATEWAY_MASTER_KEY": MASTER_KEY})
    await wait_ready(server, f"http://127.0.0.1:{port}/healthz")
    return server, f"http://127.0.0.1:{port}/v1"


class PhaseMarks:
    """When the load generator's measured window began and ended, on CLOCK_MONOTONIC."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def __call__(self, phase: str) -> None:
        self.at.setdefault(phase, time.monotonic())


async def attempts_between(roots: dict[str, str], start: float, end: float) -> dict[str, int]:
    """Upstream calls each replica received in [start, end) of CLOCK_MONOTONIC (the fakes log arrivals on it)."""
    counts = {}
    async with httpx.AsyncClient(trust_env=False, timeout=10) as control:
        for name, root in roots.items():
            served = (await control.get(root + "/_fake/stats")).json()["served"]
            counts[name] = sum(1 for s in served if start <= s["at"] < end)
    return counts


# --- part 1: strategies ------------------------------------------------------------------------


async def strategies(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    servers: list[Server] = []
    try:
        roots: dict[str, str] = {}
        for name, latency, fail, _, _ in REPLICAS:
            server, root = await start_replica(workdir, name, latency, fail)
            servers.append(server)
            roots[name] = root
        models = [
            {"name": f"s-{strategy}", "strategy": strategy, "deployments": [
                {"provider": "openai", "base_url": roots[name] + "/v1", "model": "fake", "id": f"{strategy}/{name}",
                 "weight": weight, "price": {"input_per_mtok": price[0], "output_per_mtok": price[1]}}
                for name, _, _, weight, price in REPLICAS
            ]}
            for strategy in STRATEGY_NAMES
        ]
        gateway, url = await start_gateway(workdir, models, {})
        servers.append(gateway)
        rows = []
        for strategy in STRATEGY_NAMES:
            window = PhaseMarks()
            result = await run_load(url + "/chat/completions", chat_body(f"s-{strategy}", False), HEADERS,
                                    args.concurrency, args.duration, args.warmup, on_phase=window)
            upstream_calls = await attempts_between(roots, window.at["measure"], window.at["end"])
            total = sum(upstream_calls.values()) or 1
            rows.append({
                "strategy": strategy,
                "requests": result["requests"],
                "success_pct": round(100 * result["ok"] / result["requests"], 2) if result["requests"] else None,
                "rps": result["rps"],
                "p50_ms": result["latency_ms"]["p50"],
                "p99_ms": result["latency_ms"]["p99"],
                # Upstream calls (attempts, retries included) by replica, in the measured window.
                "attempt_share_pct": {name: round(100 * n / total, 1) for name, n in upstream_calls.items()},
                "attempts_per_request": round(total / max(1, result["requests"]), 2),
            })
            _log(f"[strategies] {strategy}: {rows[-1]}")
        return rows
    finally:
        for server in servers:
            server.stop()


# --- part 2: overhead --------------------------------------------------------------------------


async def overhead_in_process(iterations: int) -> dict[str, float]:
    """Microseconds of router work per request (plan, pick, record), median of five batches."""
    deployments = [{"base_url": f"http://127.0.0.1:{9000 + i}/v1", "id": f"d{i}",
                    "price": {"input_per_mtok": "1", "output_per_mtok": "2"}} for i in range(3)]
    models = [{"name": name, "strategy": name, "deployments": deployments} for name in STRATEGIES]
    config, _ = config_from_dict({"models": models}, {"openai"})
    router = Router(config.models, config.routing, rng=random.Random(1))
    system = {"role": "system", "content": "You are a careful assistant. " * 60}
    results = {}
    for name in STRATEGIES:
        body = {"model": name, "messages": [system, {"role": "user", "content": "Say hello."}]}
        batches = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(iterations):
                if ClientRequest is not None:
                    plan = router.plan(ClientRequest("r", Endpoint.CHAT, "", CALLER, name, body))
                else:
                    plan = router.plan(RequestContext("r", Endpoint.CHAT, 0.0, body=body, model=name))
                attempt = await plan.next()
                assert attempt is not None
                attempt.succeeded(Usage(prompt_tokens=400, completion_tokens=20))
                plan.close()
            batches.append((time.perf_counter() - started) / iterations * 1e6)
        results[name] = round(statistics.median(batches), 2)
        _log(f"[overhead] in process, {name}: {results[name]} us/request")
    return results


async def overhead_end_to_end(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    upstream, port = await start_fake_upstream(workdir, cpu=LOAD_CPU, tokens=20)
    servers = [upstream]
    try:
        fake = f"http://127.0.0.1:{port}/v1"
        one = {"name": "one", "deployments": [{"provider": "openai", "base_url": fake, "model": "fake", "id": "one"}]}
        models: list[dict[str, Any]] = [one, *(
            {"name": f"o-{s}", "strategy": s, "deployments": [
                {"provider": "openai", "base_url": fake, "model": "fake", "id": f"{s}/{i}"} for i in range(3)]}
            for s in STRATEGY_NAMES
        )]
        gateway, url = await start_gateway(workdir, models, {})
        servers.append(gateway)
        cells = [("direct", fake, "fake")] + [(m["name"], url, m["name"]) for m in models]
        rows = []
        for label, base, model in cells:
            result = await run_load(base + "/chat/completions", chat_body(model, False), HEADERS, 1,
                                    args.duration, args.warmup)
            rows.append({"target": label, "p50_ms": result["latency_ms"]["p50"], "p99_ms": result["latency_ms"]["p99"],
                         "rps": result["rps"], "errors": result["errors"]})
            _log(f"[overhead] end to end, {label}: {rows[-1]}")
        direct = rows[0]["p50_ms"] or 0.0
        for row in rows:
            row["added_p50_ms"] = round((row["p50_ms"] or 0.0) - direct, 3)
        return rows
    finally:
        for server in servers:
            server.stop()


# --- report ------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "## Strategies, three deployments (fast 20 ms failing 25%, mid 60 ms, slow 150 ms), "
        f"concurrency {report['plan']['concurrency']}",
        "",
        "| strategy | success % | req/s | p50 ms | p99 ms | attempts/request | attempts fast / mid / slow % |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["strategies"]:
        share = row["attempt_share_pct"]
        lines.append(f"| {row['strategy']} | {row['success_pct']} | {row['rps']} | {row['p50_ms']} | {row['p99_ms']} "
                     f"| {row['attempts_per_request']} | {share['fast']} / {share['mid']} / {share['slow']} |")
    lines += ["", "## Router time per request, in process (no I/O)", "", "| strategy | µs |", "|---|---|"]
    lines += [f"| {name} | {us} |" for name, us in report["overhead_in_process_us"].items()]
    lines += ["", "## Added latency end to end, concurrency 1, zero-latency upstream", "",
              "| target | p50 ms | p99 ms | added p50 ms over direct |", "|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['p50_ms']} | {r['p99_ms']} | {r['added_p50_ms']} |"
              for r in report["overhead_end_to_end"]]
    return "\n".join(lines) + "\n"


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    os.sched_setaffinity(0, {LOAD_CPU})
    started = dt.datetime.now(dt.UTC)
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as tmp:
        workdir = Path(tmp)
        rows = await strategies(args, workdir)
        in_process = await overhead_in_process(300 if args.quick else 3000)
        end_to_end = await overhead_end_to_end(args, workdir)
    report: dict[str, Any] = {
        "benchmark": "routing",
        "started": started.isoformat(timespec="seconds"),
        "plan": {"duration_s": args.duration, "warmup_s": args.warmup, "concurrency": args.concurrency},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "strategies": rows,
        "overhead_in_process_us": in_process,
        "overhead_end_to_end": end_to_end,
    }
    report["markdown"] = markdown(report)
    return report


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def header(report: dict[str, Any]) -> str:
        return "Load average at start: " + ", ".join(f"{x:.1f}" for x in report["machine"]["load_average"])

    return run_and_write("routing", "Routing benchmark", bench(args), args.out, quick=args.quick, header=header)


if __name__ == "__main__":
    sys.exit(main())
