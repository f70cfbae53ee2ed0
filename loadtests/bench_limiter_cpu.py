"""The worker CPU the limiter spends per request: one admit and its settle, on each backend.

    python loadtests/bench_limiter_cpu.py [--backend memory|redis ...] [--rounds 3] [--seconds 3]
                                          [--tree NAME=PATH]

In-process, no HTTP: a `Limiter` admits and settles a virtual key on a team, both with rpm, tpm
and a budget (the production configuration's six checks), 64 tasks at once on uvloop, the
worker pinned to core 0. `memory` is the embedded default (`MemoryBackend`); `redis` is
`RedisBackend` on a private `redis-server` pinned to core 1 (its own core, as beside a real
gateway). Per cell: the worker's CPU (`time.process_time`) per admit+settle pair. With `--tree`,
the same from another source tree, interleaved cell by cell so that a busy moment of the machine
falls on both. Results go to loadtests/results/limiter-cpu-<date>.md (and .json).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "loadtests" / "results"
WORKER_CPU = 0
REDIS_CPU = 1
CONCURRENCY = 64
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 20}


async def _child(backend_name: str, seconds: float, url: str) -> dict[str, float]:
    from gateway.accounting.limits import Limiter, LimiterOptions
    from gateway.accounting.limits.checks import Backend
    from gateway.accounting.limits.memory import MemoryBackend
    from gateway.accounting.limits.redis_backend import RedisBackend
    from gateway.config.file import Price
    from gateway.core.request import ClientRequest
    from gateway.core.types import BudgetPeriod, Endpoint, Limits, Principal, RequestOutcome, Usage

    price = Price(input_per_mtok=Decimal("0.15"), output_per_mtok=Decimal("0.60"))
    backend: Backend = MemoryBackend() if backend_name == "memory" else RedisBackend(url, timeout_s=1.0)
    options = LimiterOptions(prefix="lcpu:" + secrets.token_hex(4))
    limiter = Limiter(backend, options=options, model_prices={"m": price})
    await limiter.start()
    caps = (100_000_000, 10**12, None, Decimal(10**9))
    principal = Principal(key_id="k1", key_prefix="sk-gw-bench", team_id="t1",
                          key_limits=Limits(*caps, BudgetPeriod.DAILY),
                          team_limits=Limits(*caps, BudgetPeriod.MONTHLY))  # fmt: skip
    outcome = RequestOutcome(200, usage=Usage(prompt_tokens=5, completion_tokens=7), cost_usd=Decimal("5E-6"))
    done, running = 0, True

    async def one_after_another() -> None:
        nonlocal done
        while running:
            reservation = await limiter.admit(ClientRequest("r", Endpoint.CHAT, "", principal, "m", dict(BODY)))
            assert reservation is not None
            await asyncio.sleep(0)  # the upstream call
            await limiter.settle(reservation, outcome)
            done += 1

    tasks = [asyncio.create_task(one_after_another()) for _ in range(CONCURRENCY)]
    await asyncio.sleep(1.0)
    d0, c0, t0 = done, time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    d1, c1, t1 = done, time.process_time(), time.perf_counter()
    running = False
    await asyncio.gather(*tasks)
    await limiter.close()
    pairs = d1 - d0
    return {"pairs_s": pairs / (t1 - t0), "cpu_us": (c1 - c0) / pairs * 1e6}


def _cell(tree: Path, backend: str, seconds: float, url: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    child = [sys.executable, __file__, "--child", backend, str(seconds), url]
    command = ["taskset", "-c", str(WORKER_CPU), *child]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=seconds + 60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from procs import private_redis  # loadtests/ is on the path once this script runs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", action="append", choices=("memory", "redis"), default=[])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH: also this source tree")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--name", default="", help="a suffix for the results file's name")
    args = parser.parse_args()
    backends = args.backend or ["memory", "redis"]
    trees = {"this": REPO, **{n: Path(p) for n, p in (t.split("=", 1) for t in args.tree)}}
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    proc, url = private_redis(REDIS_CPU) if "redis" in backends else (None, "")
    try:
        for _ in range(args.rounds):
            for backend in backends:
                for name, tree in trees.items():
                    cell = _cell(tree, backend, args.seconds, url)
                    rows.setdefault((backend, name), []).append(cell)
                    print(backend, name, cell, flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    lines = [f"# Limiter CPU per request, {stamp}", "",
             f"loadtests/bench_limiter_cpu.py: {args.rounds} rounds of {args.seconds:g} s per cell, interleaved, "
             f"medians; {CONCURRENCY} tasks, uvloop, worker on core {WORKER_CPU}, Redis (a private redis-server) "
             f"on core {REDIS_CPU}; load average at the end {load}. Trees: "
             + ", ".join(f"`{name}` {path}" for name, path in trees.items()) + ".", "",
             "| backend | tree | worker CPU µs per admit+settle | pairs/s | each round's µs |",
             "|---|---|--:|--:|---|"]  # fmt: skip
    for (backend, name), cells in rows.items():
        cpu = statistics.median(c["cpu_us"] for c in cells)
        rate = statistics.median(c["pairs_s"] for c in cells)
        each = ", ".join(f"{c['cpu_us']:.1f}" for c in cells)
        lines.append(f"| {backend} | {name} | {cpu:.1f} | {rate:.0f} | {each} |")
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = f"-{args.name}" if args.name else ""
    path = args.out / f"limiter-cpu-{dt.date.today().isoformat()}{suffix}"
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    raw = {f"{backend}/{name}": cells for (backend, name), cells in rows.items()}
    path.with_suffix(".json").write_text(json.dumps({"at": stamp, "trees": {n: str(p) for n, p in trees.items()},
                                                     "cells": raw}, indent=1) + "\n")  # fmt: skip
    print("\n".join(lines), f"\nwrote {path}.md", sep="\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        import uvloop

        print(json.dumps(uvloop.run(_child(sys.argv[2], float(sys.argv[3]), sys.argv[4]))))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        main()
