"""What the ledger's in-memory queue loses when the gateway is SIGKILLed under load.

    python loadtests/bench_ledger_crash.py [--kills 5] [--concurrency 32] [--seconds 4]

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
import sys
import tempfile
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


async def one_round(workdir: Path, upstream_url: str, dsn: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    group = {"name": MODEL, "deployments": [{"provider": "openai", "base_url": upstream_url, "model": MODEL,
                                             "price": {"input_per_mtok": "1", "output_per_mtok": "1"}}]}  # fmt: skip
    settings = {"database_url": dsn, "log_requests": False, "data_dir": str(workdir / f"data-{n}")}
    config = workdir / f"gateway-{n}.yaml"
    config.write_text(yaml.safe_dump({"settings": settings, "models": [group]}))
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]  # fmt: skip
    server = start(f"gateway-{n}", argv, log_dir=workdir, env={"GATEWAY_MASTER_KEY": MASTER_KEY,
                                                                "GATEWAY_REDIS_URL": None})  # fmt: skip
    answered: list[str] = []
    failed = 0
    stop = asyncio.Event()
    try:
        await wait_ready(server, f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {MASTER_KEY}"}

        async def caller(client: httpx.AsyncClient) -> None:
            nonlocal failed
            while not stop.is_set():
                try:
                    response = await client.post(url, json=BODY, headers=headers)
                except httpx.HTTPError:
                    failed += 1  # in flight at the kill
                    continue
                if response.status_code == 200:
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
    conn = await asyncpg.connect(dsn)
    try:
        kept = await conn.fetchval("SELECT count(*) FROM ledger_requests WHERE request_id = ANY($1::text[])", answered)
    finally:
        await conn.close()
    lost = len(answered) - kept
    lost_ms = round(1000 * lost / rate, 1) if rate else None
    return {"round": n, "answered": len(answered), "kept": kept, "lost": lost, "cut": failed,
            "answered_per_s": round(rate, 1), "lost_ms_of_traffic": lost_ms}  # fmt: skip


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_sigterm()
    started = dt.datetime.now(dt.UTC)
    rounds: list[dict[str, Any]] = []
    async with private_database("crash") as dsn:
        with tempfile.TemporaryDirectory(prefix="bench-crash-") as tmp:
            workdir = Path(tmp)
            upstream, upstream_port = await start_fake_upstream(workdir, cpu=None, tokens=16)
            try:
                for n in range(args.kills):
                    rounds.append(await one_round(workdir, f"http://127.0.0.1:{upstream_port}/v1", dsn, n, args))
                    print(f"  round {n}: {rounds[-1]}", file=sys.stderr)
            finally:
                upstream.stop()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0, help="load before each kill")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    def header(report: dict[str, Any]) -> str:
        return f"Plan: {report['plan']}\nLoad average at start: {report['machine']['load_average']}"

    return run_and_write("ledger-crash", "Ledger rows lost to a SIGKILL", bench(args), args.out, quick=False,
                         header=header)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
