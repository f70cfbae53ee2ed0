"""What the ledger's in-memory queue loses when the gateway is SIGKILLed under load, and what
the durable mode (`ledger_durable`) costs to lose nothing.

    python loadtests/bench_ledger_crash.py [--kills 5] [--concurrency 32] [--seconds 4] [--durable off|on|both]

With `--durable both` the rounds alternate, durable off then on, on the same machine in the same
minutes (side by side), and the report compares the two: rows lost, answered requests per
second, and the latency callers saw (p50, p99). A durable round is checked after a restart on the
same data directory, which replays what the killed worker had journaled.

Each round starts `gateway serve --workers 1` with its ledger on a private PostgreSQL database,
drives it with `--concurrency` callers (one request at a time each, unary, against the fake
upstream), SIGKILLs the whole process group after `--seconds`, and then counts which of the
requests that were answered 200 have a row in `ledger_requests`. A row is built when its request
finishes and sits in the worker's queue until the writer's next batch (every `LEDGER_FLUSH_S`,
0.2 s, or at 2,000 rows); a SIGKILL loses the queue and the batch in flight. The loss is reported
in rows and as milliseconds of the round's traffic (rows lost ÷ rows answered per second).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml
from pg import private_database
from procs import REPO, start, wait_ready
from report import cancel_on_sigterm, machine, run_and_write
from targets import MASTER_KEY, MODEL, free_port, start_fake_upstream

sys.path.insert(0, str(REPO))

RESULTS = Path(__file__).resolve().parent / "results"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


async def one_round(
    workdir: Path, upstream_url: str, dsn: str, n: int, args: argparse.Namespace, durable: bool = False
) -> dict[str, Any]:
    port = free_port()
    group = {"name": MODEL, "deployments": [{"provider": "openai", "base_url": upstream_url, "model": MODEL,
                                             "price": {"input_per_mtok": "1", "output_per_mtok": "1"}}]}  # fmt: skip
    settings = {"database_url": dsn, "log_requests": False, "data_dir": str(workdir / f"data-{n}"),
                "ledger_durable": durable}  # fmt: skip
    config = workdir / f"gateway-{n}.yaml"
    config.write_text(yaml.safe_dump({"settings": settings, "models": [group]}))
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]  # fmt: skip
    server = start(f"gateway-{n}", argv, log_dir=workdir, env={"GATEWAY_MASTER_KEY": MASTER_KEY,
                                                                "GATEWAY_REDIS_URL": None})  # fmt: skip
    answered: list[str] = []
    latencies: list[float] = []
    failed = 0
    stop = asyncio.Event()
    try:
        await wait_ready(server, f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}

        async def caller(client: httpx.AsyncClient) -> None:
            nonlocal failed
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    response = await client.post(url, json=BODY, headers=headers)
                except httpx.HTTPError:
                    failed += 1  # in flight at the kill
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - began)
                    answered.append(response.headers["x-request-id"])

        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=args.concurrency)) as client:
            callers = [asyncio.create_task(caller(client)) for _ in range(args.concurrency)]
            await asyncio.sleep(args.seconds)
            stop.set()  # no new requests: what fails now was in flight at the kill
            os.killpg(server.pid, signal.SIGKILL)
            await asyncio.gather(*callers)
        rate = len(answered) / args.seconds
    finally:
        server.stop()
    if durable:
        await replay(config, workdir, n)
    conn = await asyncpg.connect(dsn)
    try:
        kept = await conn.fetchval("SELECT count(*) FROM ledger_requests WHERE request_id = ANY($1::text[])", answered)
    finally:
        await conn.close()
    lost = len(answered) - kept
    lost_ms = round(1000 * lost / rate, 1) if rate else None
    latencies.sort()
    return {"round": n, "durable": durable, "answered": len(answered), "kept": kept, "lost": lost, "cut": failed,
            "answered_per_s": round(rate, 1), "lost_ms_of_traffic": lost_ms,
            "p50_ms": _quantile_ms(latencies, 0.50), "p99_ms": _quantile_ms(latencies, 0.99)}  # fmt: skip


def _quantile_ms(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def replay(config: Path, workdir: Path, n: int) -> None:
    """Start the gateway again on the killed one's data directory: it hands what the dead worker
    journaled to the spill and replays it; a SIGTERM then writes everything before it exits."""
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]  # fmt: skip
    server = start(f"gateway-{n}-replay", argv, log_dir=workdir, env={"GATEWAY_MASTER_KEY": MASTER_KEY,
                                                                       "GATEWAY_REDIS_URL": None})  # fmt: skip
    try:
        await wait_ready(server, f"http://127.0.0.1:{port}/healthz")
        data = workdir / f"data-{n}" / "ledger-spill"
        for _ in range(600):  # the replay is done when the spill directory is empty again
            if not any(data.glob("*")):
                break
            await asyncio.sleep(0.05)
    finally:
        server.stop()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_sigterm()
    started = dt.datetime.now(dt.UTC)
    rounds: list[dict[str, Any]] = []
    async with private_database("crash") as dsn:
        with tempfile.TemporaryDirectory(prefix="bench-crash-") as tmp:
            workdir = Path(tmp)
            upstream, upstream_port = await start_fake_upstream(workdir, cpu=None, tokens=16)
            try:
                modes = {"off": [False], "on": [True], "both": [False, True]}[args.durable]
                for n in range(args.kills * len(modes)):
                    durable = modes[n % len(modes)]
                    rounds.append(await one_round(workdir, f"http://127.0.0.1:{upstream_port}/v1", dsn, n, args,
                                                  durable))  # fmt: skip
                    print(f"  round {n}: {rounds[-1]}", file=sys.stderr)
            finally:
                upstream.stop()
    if args.durable == "both":
        return side_by_side(started, args, rounds)
    answered = sum(r["answered"] for r in rounds)
    lost = sum(r["lost"] for r in rounds)
    report = {
        "benchmark": "ledger-crash",
        "started": started.isoformat(timespec="seconds"),
        "plan": {"kills": args.kills, "concurrency": args.concurrency, "seconds": args.seconds,
                 "ledger_flush_s": 0.2, "ledger_batch_size": 2000},
        "machine": machine(),
        "rounds": rounds,
        "total": {"answered": answered, "lost": lost,
                  "lost_pct": round(100 * lost / answered, 2) if answered else None},
    }  # fmt: skip
    lines = ["| round | answered | rows kept | lost | cut by the kill | answered/s | lost, as ms of traffic |",
             "|--:|--:|--:|--:|--:|--:|--:|"]  # fmt: skip
    lines += [f"| {r['round']} | {r['answered']} | {r['kept']} | {r['lost']} | {r['cut']} | {r['answered_per_s']} "
              f"| {r['lost_ms_of_traffic']} |" for r in rounds]  # fmt: skip
    worst = max((r["lost_ms_of_traffic"] or 0 for r in rounds), default=0)
    lines += ["", f"In all: {lost} of {answered} answered requests had no row ({report['total']['lost_pct']}%); "
              f"the worst round lost {worst} ms of traffic (the writer flushes every 0.2 s)."]  # fmt: skip
    report["markdown"] = "\n".join(lines) + "\n"
    return report


def side_by_side(started: dt.datetime, args: argparse.Namespace, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def median(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return round(statistics.median(known), 1) if known else None

    def summary(durable: bool) -> dict[str, Any]:
        mine = [r for r in rounds if r["durable"] is durable]
        answered = sum(r["answered"] for r in mine)
        lost = sum(r["lost"] for r in mine)
        return {"rounds": len(mine), "answered": answered, "lost": lost,
                "lost_pct": round(100 * lost / answered, 2) if answered else None,
                "worst_lost_ms_of_traffic": max((r["lost_ms_of_traffic"] or 0 for r in mine), default=0),
                "answered_per_s": round(answered / (args.seconds * len(mine)), 1) if mine else None,
                "p50_ms": median([r["p50_ms"] for r in mine]),
                "p99_ms": median([r["p99_ms"] for r in mine])}  # fmt: skip

    off, on = summary(False), summary(True)
    ratio = round(on["answered_per_s"] / off["answered_per_s"], 3) if off["answered_per_s"] else None
    report = {
        "benchmark": "ledger-durable",
        "started": started.isoformat(timespec="seconds"),
        "plan": {"kills_per_mode": args.kills, "concurrency": args.concurrency, "seconds": args.seconds,
                 "ledger_flush_s": 0.2, "ledger_batch_size": 2000, "order": "alternating, off first"},
        "machine": machine(),
        "rounds": rounds,
        "off": off,
        "on": on,
        "throughput_ratio_on_over_off": ratio,
    }  # fmt: skip
    lines = ["| round | durable | answered | rows kept | lost | answered/s | p50 ms | p99 ms |",
             "|--:|:--|--:|--:|--:|--:|--:|--:|"]  # fmt: skip
    lines += [f"| {r['round']} | {'on' if r['durable'] else 'off'} | {r['answered']} | {r['kept']} | {r['lost']} "
              f"| {r['answered_per_s']} | {r['p50_ms']} | {r['p99_ms']} |" for r in rounds]  # fmt: skip
    lines += ["", "| durable | answered | lost | lost % | worst round, ms of traffic lost | answered/s | "
              "p50 ms (median of rounds) | p99 ms (median of rounds) |", "|:--|--:|--:|--:|--:|--:|--:|--:|"]
    for name, s in (("off", off), ("on", on)):
        lines.append(f"| {name} | {s['answered']} | {s['lost']} | {s['lost_pct']} | {s['worst_lost_ms_of_traffic']} "
                     f"| {s['answered_per_s']} | {s['p50_ms']} | {s['p99_ms']} |")  # fmt: skip
    lines += ["", f"Durable on answered {ratio}x the requests per second of durable off, side by side; "
              f"it lost {on['lost']} of {on['answered']} answered requests' rows to SIGKILL, "
              f"durable off {off['lost']} of {off['answered']}."]  # fmt: skip
    report["markdown"] = "\n".join(lines) + "\n"
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0, help="load before each kill")
    parser.add_argument("--durable", choices=["off", "on", "both"], default="off",
                        help="the ledger's durable mode; `both` alternates rounds and compares")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    def header(report: dict[str, Any]) -> str:
        return f"Plan: {report['plan']}\nLoad average at start: {report['machine']['load_average']}"

    if args.durable == "both":
        return run_and_write("ledger-durable", "Ledger rows lost to a SIGKILL, durable mode off and on, side by side",
                             bench(args), args.out, quick=False, header=header)  # fmt: skip
    return run_and_write("ledger-crash", "Ledger rows lost to a SIGKILL", bench(args), args.out, quick=False,
                         header=header)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
