"""What the limiter's two script calls per request cost, on each side of the socket.

    python loadtests/bench_limiter_calls.py [--rounds 3] [--seconds 3] [--tree NAME=PATH]

In-process, no HTTP: a `Limiter` on `RedisBackend` admits and settles a virtual key on a team,
both with rpm, tpm and a budget (the production configuration's six checks), at concurrency 1
and 64, on core 0. Redis is a private `redis-server` started here, so its CPU is ours alone:
once on core 1 (its own core, as beside a real gateway) and once on core 0 (sharing the
worker's core, as the shared Redis often does in `bench_core.py`). Per cell: admit+settle pairs
a second, the worker's CPU per pair, Redis's CPU per pair and its time per EVALSHA
(`INFO commandstats`), and the CPU and wall time the worker spends in each batched socket write
to Redis (the frame py-spy profiles charge most of admission to). With `--tree`, the same from
another source tree, interleaved.
Results go to loadtests/results/limiter-calls-<date>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import inspect
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
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 20}


async def _child(concurrency: int, seconds: float, url: str) -> dict[str, float]:
    import redis

    from gateway.accounting.limits import Limiter, LimiterOptions
    from gateway.accounting.limits.redis_backend import RedisBackend
    from gateway.config.file import Price
    from gateway.core.types import BudgetPeriod, Endpoint, Limits, Principal, Usage
    from gateway.pipeline.context import RequestContext

    try:
        from gateway.core.request import ClientRequest
    except ImportError:  # trees before the request value: admit reads the context
        ClientRequest = None  # type: ignore[assignment,misc]
    outcome_api = "outcome" in inspect.signature(Limiter.settle).parameters
    if outcome_api:
        from gateway.core.types import RequestOutcome
    price = Price(input_per_mtok=Decimal("0.15"), output_per_mtok=Decimal("0.60"))
    limiter = Limiter(RedisBackend(url, timeout_s=1.0), options=LimiterOptions(prefix="lc:" + secrets.token_hex(4)),
                      model_prices={"m": price})  # fmt: skip
    await limiter.start()
    caps = (100_000_000, 10**12, None, Decimal(10**9))
    principal = Principal(key_id="k1", key_prefix="sk-gw-bench", team_id="t1",
                          key_limits=Limits(*caps, BudgetPeriod.DAILY),
                          team_limits=Limits(*caps, BudgetPeriod.MONTHLY))  # fmt: skip
    done, running = 0, True

    async def one_after_another() -> None:
        nonlocal done
        while running:
            ctx = RequestContext("r", Endpoint.CHAT, 0.0)
            if ClientRequest is not None:
                reservation = await limiter.admit(ClientRequest("r", Endpoint.CHAT, "", principal, "m", dict(BODY)))
            else:
                ctx.principal, ctx.body, ctx.model = principal, dict(BODY), "m"
                reservation = await limiter.admit(ctx)
            await asyncio.sleep(0)  # the upstream call
            usage = Usage(prompt_tokens=5, completion_tokens=7)
            if outcome_api:
                await limiter.settle(reservation, RequestOutcome(200, usage=usage, cost_usd=Decimal("5E-6")))
            else:  # trees before the Exchange (main before 7c37a81): settle reads the context
                ctx.status, ctx.usage, ctx.cost_usd = 200, usage, Decimal("5E-6")
                await limiter.settle(ctx)
            done += 1

    server = redis.Redis.from_url(url)
    writes = _time_batched_writes()

    def redis_state() -> tuple[float, int, int]:
        cpu = server.info("cpu")
        calls = server.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
        return cpu["used_cpu_user"] + cpu["used_cpu_sys"], calls["calls"], calls["usec"]

    tasks = [asyncio.create_task(one_after_another()) for _ in range(concurrency)]
    await asyncio.sleep(1.0)
    r0, n0, u0 = redis_state()
    writes.update(n=0, cpu=0.0, wall=0.0)
    d0, c0, t0 = done, time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    d1, c1, t1 = done, time.process_time(), time.perf_counter()
    r1, n1, u1 = redis_state()
    w = dict(writes)
    running = False
    await asyncio.gather(*tasks)
    await limiter.close()
    pairs = d1 - d0
    return {"pairs_s": pairs / (t1 - t0), "worker_us": (c1 - c0) / pairs * 1e6, "redis_us": (r1 - r0) / pairs * 1e6,
            "evalsha_us": (u1 - u0) / max(1, n1 - n0),
            "write_cpu_us": w["cpu"] / max(1, w["n"]) * 1e6,
            "write_wall_us": w["wall"] / max(1, w["n"]) * 1e6}  # fmt: skip


def _time_batched_writes() -> dict[str, float]:
    """CPU and wall time inside the connection's batched socket writes (`_Connection._flush`):
    a write wakes Redis, and a Redis woken onto the worker's core runs while the worker waits."""
    from gateway.accounting.limits import resp

    spent = {"n": 0, "cpu": 0.0, "wall": 0.0}
    flush = resp._Connection._flush

    def timed(self: object) -> None:
        cpu, wall = time.thread_time(), time.perf_counter()
        flush(self)  # type: ignore[arg-type]
        spent["n"] += 1
        spent["cpu"] += time.thread_time() - cpu
        spent["wall"] += time.perf_counter() - wall

    resp._Connection._flush = timed  # type: ignore[method-assign]
    return spent


def _cell(tree: Path, concurrency: int, seconds: float, url: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    child = [sys.executable, __file__, "--child", str(concurrency), str(seconds), url]
    command = ["taskset", "-c", str(WORKER_CPU), *child]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=seconds + 60)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from procs import private_redis  # loadtests/ is on the path once this script runs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH: also this source tree")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    trees = {"this": REPO, **{n: Path(p) for n, p in (t.split("=", 1) for t in args.tree)}}
    rows: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    for redis_core in (1, 0):
        proc, url = private_redis(redis_core)
        try:
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    for concurrency in (1, 64):
                        where = "own core" if redis_core != WORKER_CPU else "worker's core"
                        cell = _cell(tree, concurrency, args.seconds, url)
                        rows.setdefault((name, concurrency, where), []).append(cell)
                        print(name, concurrency, where, cell, flush=True)
        finally:
            proc.terminate()
            proc.wait()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [f"# Limiter script calls, {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}", "",
             f"loadtests/bench_limiter_calls.py: {args.rounds} rounds of {args.seconds:g} s per cell, medians; "
             f"a private redis-server; load average at the end {load}. Trees: "
             + ", ".join(f"`{name}` {path}" for name, path in trees.items()) + ".", "",
             "| tree | concurrency | Redis on | admit+settle pairs/s | worker CPU µs/pair | Redis CPU µs/pair "
             "| Redis µs per EVALSHA | batched write: CPU µs | its wall µs |",
             "|---|--:|---|--:|--:|--:|--:|--:|--:|"]  # fmt: skip
    for (name, concurrency, where), cells in rows.items():
        med = {k: statistics.median(c[k] for c in cells) for k in cells[0]}
        lines.append(f"| {name} | {concurrency} | {where} | {med['pairs_s']:.0f} | {med['worker_us']:.1f} "
                     f"| {med['redis_us']:.1f} | {med['evalsha_us']:.1f} | {med['write_cpu_us']:.1f} "
                     f"| {med['write_wall_us']:.1f} |")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"limiter-calls-{dt.date.today().isoformat()}.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines), f"\nwrote {path}", sep="\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        import uvloop

        print(json.dumps(uvloop.run(_child(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))))
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        main()
