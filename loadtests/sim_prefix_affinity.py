"""Prefix affinity against least-busy and random routing, over fake vLLM replicas with a prefix cache.

    python loadtests/sim_prefix_affinity.py [--quick] [--requests 800] [--concurrency 16]

Four fake replicas (tests/routing/fake_vllm.py) each keep an LRU prefix cache of 64-character
blocks, too small to hold every system prompt of the workload but big enough for 12 of the 32;
a prompt's uncached tokens cost prefill time (60 ms per thousand), and at most 8 requests
run at once per replica (the rest wait, as vLLM's scheduler makes them). The workload: 32
system prompts of about 1,000 tokens, drawn with a Zipf-like skew, each followed by a short
unique question, the same seeded sequence for every strategy.

One gateway serves three groups over the same four replicas: `prefix-affinity`, `least-busy`
and `weighted` with equal weights (uniform random). The caches are emptied between strategies.
Reported per strategy: the prefix-cache hit rate (cached prompt tokens / prompt tokens, read
from the replicas), how evenly requests spread (max / mean per replica), p50/p99 latency and
throughput. Results go to loadtests/results/prefix-affinity-<UTC date>.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvloop
import yaml
from loadgen import percentile_ms
from procs import REPO, Server, free_port, start, wait_ready
from targets import MASTER_KEY

RESULTS = Path(__file__).resolve().parent / "results"
HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}
GATEWAY_CPU, LOAD_CPU = 0, 1
REPLICAS = 4
PROMPTS = 32
PROMPT_CHARS = 4000
# About what prefilling a thousand tokens takes a 70B model on one modern GPU; a hit skips it.
PREFILL_MS_PER_KTOK = 60
CACHE_BLOCKS = 12 * (PROMPT_CHARS // 64 + 2)  # room for 12 of the 32 prompts per replica
GROUPS = {"prefix-affinity": "prefix-affinity", "least-busy": "least-busy", "random": "weighted"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=800, help="requests per strategy")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true", help="200 requests per strategy")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.requests = 200
    return args


def workload(n: int, seed: int) -> list[list[dict[str, str]]]:
    """`n` chat requests: a skewed pick of system prompts, each with its own short question."""
    rng = random.Random(seed)
    prompts = []
    for p in range(PROMPTS):
        words = [f"w{rng.randrange(10_000)}" for _ in range(PROMPT_CHARS // 6)]
        prompts.append(f"System prompt {p}: " + " ".join(words)[:PROMPT_CHARS])
    weights = [1 / (rank + 1) ** 0.8 for rank in range(PROMPTS)]
    picks = rng.choices(range(PROMPTS), weights=weights, k=n)
    return [[{"role": "system", "content": prompts[p]}, {"role": "user", "content": f"Question {i}?"}]
            for i, p in enumerate(picks)]


async def start_replica(workdir: Path, i: int) -> tuple[Server, str]:
    port = free_port()
    argv = [sys.executable, "-m", "tests.routing.fake_vllm", "--port", str(port), "--name", f"r{i}",
            "--latency-ms", "5", "--prefill-ms-per-ktok", str(PREFILL_MS_PER_KTOK), "--max-running", "8",
            "--cache-blocks", str(CACHE_BLOCKS), "--block-chars", "64"]
    server = start(f"replica-{i}", argv, log_dir=workdir, cpu=LOAD_CPU, cwd=REPO)
    await wait_ready(server, f"http://127.0.0.1:{port}/_fake/stats")
    return server, f"http://127.0.0.1:{port}"


async def start_gateway(workdir: Path, roots: list[str]) -> tuple[Server, str]:
    port = free_port()
    models = [
        {"name": name, "strategy": strategy, "deployments": [
            {"provider": "vllm", "base_url": root + "/v1", "model": "fake", "id": f"{name}/r{i}"}
            for i, root in enumerate(roots)
        ]}
        for name, strategy in GROUPS.items()
    ]
    path = workdir / f"gateway-{port}.yaml"
    path.write_text(yaml.safe_dump({"models": models, "routing": {"metrics_interval_s": 0.5}}, sort_keys=False))
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(path), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]
    server = start("gateway", argv, log_dir=workdir, cpu=GATEWAY_CPU, env={"GATEWAY_MASTER_KEY": MASTER_KEY})
    await wait_ready(server, f"http://127.0.0.1:{port}/healthz")
    return server, f"http://127.0.0.1:{port}/v1"


async def drive(url: str, model: str, requests: list[list[dict[str, str]]], concurrency: int) -> dict[str, Any]:
    """Closed loop: `concurrency` clients take the next request of the sequence as they finish one."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    errors = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while queue:
            messages = queue.pop()
            started = time.perf_counter()
            response = await http.post(url + "/chat/completions", json={"model": model, "messages": messages})
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=HEADERS, timeout=60, limits=limits, trust_env=False) as http:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {"ok": len(latencies), "errors": errors, "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": percentile_ms(latencies, 50), "p99_ms": percentile_ms(latencies, 99)}


async def simulate(args: argparse.Namespace) -> dict[str, Any]:
    os.sched_setaffinity(0, {LOAD_CPU})
    requests = workload(args.requests, args.seed)
    rows = []
    control = httpx.AsyncClient(trust_env=False, timeout=10)
    with tempfile.TemporaryDirectory(prefix="sim-prefix-") as tmp:
        workdir = Path(tmp)
        servers: list[Server] = []
        try:
            roots = []
            for i in range(REPLICAS):
                server, root = await start_replica(workdir, i)
                servers.append(server)
                roots.append(root)
            gateway, url = await start_gateway(workdir, roots)
            servers.append(gateway)
            for name in GROUPS:
                for root in roots:
                    (await control.post(root + "/_fake/reset")).raise_for_status()
                result = await drive(url, name, requests, args.concurrency)
                stats = [(await control.get(root + "/_fake/stats")).json() for root in roots]
                served = [len(s["served"]) for s in stats]
                queries = sum(s["prefix_cache"]["queries_tokens"] for s in stats)
                hits = sum(s["prefix_cache"]["hits_tokens"] for s in stats)
                rows.append({
                    "strategy": name,
                    **result,
                    "hit_rate_pct": round(100 * hits / queries, 1) if queries else None,
                    "requests_per_replica": served,
                    "max_over_mean": round(max(served) / statistics.mean(served), 2) if any(served) else None,
                })
                print(f"[sim] {rows[-1]}", file=sys.stderr, flush=True)
        finally:
            await control.aclose()
            for server in servers:
                server.stop()
    return {
        "simulation": "prefix-affinity",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "plan": {"requests": args.requests, "concurrency": args.concurrency, "replicas": REPLICAS,
                 "prompts": PROMPTS, "prompt_chars": PROMPT_CHARS, "cache_blocks_per_replica": CACHE_BLOCKS},
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "results": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    plan = report["plan"]
    lines = [
        f"{plan['replicas']} replicas, {plan['prompts']} system prompts of ~1,000 tokens (Zipf-like), "
        f"{plan['requests']} requests per strategy at concurrency {plan['concurrency']}",
        "",
        "| strategy | prefix-cache hit rate % | requests per replica | max / mean | p50 ms | p99 ms | req/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        spread = " / ".join(str(n) for n in r["requests_per_replica"])
        lines.append(f"| {r['strategy']} | {r['hit_rate_pct']} | {spread} | {r['max_over_mean']} "
                     f"| {r['p50_ms']} | {r['p99_ms']} | {r['rps']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = uvloop.run(simulate(args))
    table = markdown(report)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"prefix-affinity-{report['started'][:10]}{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    load = ", ".join(f"{x:.1f}" for x in report["machine"]["load_average"])
    stem.with_suffix(".md").write_text(f"# Prefix affinity, {report['started']} (load average {load})\n\n" + table)
    print(f"wrote {stem}.json and {stem}.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
