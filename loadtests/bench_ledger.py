"""What the cost ledger sustains and what it costs the request path.

    python loadtests/bench_ledger.py [--quick] [--rows 200000] [--concurrency 1,16] [--stream]

Two measurements:
1. Writer throughput, in this process against the local PostgreSQL (a fresh database, dropped
   afterwards): rows per second through `PostgresSink.write` (COPY into staging, idempotent
   insert, rollup upsert, one transaction per batch), and end to end through `Ledger` (rows
   recorded as the request path records them, until the writer has written the last one), plus
   what one `record()` costs the request path. Target: at least 20,000 rows/s. The SQLite sink of
   the embedded default is measured the same way, for reference.
2. Added latency, ledger on vs off: `gateway serve --workers 1` with `ledger_enabled: false`,
   with the ledger on Postgres, and on SQLite, in front of the same fake upstream (see README.md
   here for the pinning and the load generator). Target: no measurable difference at p50.

Results go to loadtests/results/ledger-<date>.{json,md}. On a shared machine the figures move
with whatever else runs; the run records the other CPU load next to every cell.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import secrets
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from matrix import Plan, TargetResult, as_json, markdown, run_matrix
from procs import REPO
from production import create_database, drop_database
from report import cancel_on_sigterm, run_and_write
from targets import Launcher, Running, Stack, start_gateway

sys.path.insert(0, str(REPO))

from gateway.accounting.ledger.postgres import PostgresSink
from gateway.accounting.ledger.row import LedgerRow
from gateway.accounting.ledger.sink import Sink
from gateway.accounting.ledger.spill import Spill
from gateway.accounting.ledger.sqlite import SQLiteSink
from gateway.accounting.ledger.writer import Ledger, LedgerOptions
from gateway.config.file import Deployment
from gateway.core.types import Endpoint, Usage
from gateway.db.connect import open_sqlite
from gateway.db.migrate import migrate_postgres, migrate_sqlite
from gateway.pipeline.record import RequestRecord

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "ledger-off"
PRICE = {"input_per_mtok": "0.15", "output_per_mtok": "0.60"}
TARGET_ROWS_PER_S = 20_000
DEPLOYMENT = Deployment(provider="openai", base_url="http://127.0.0.1:1/v1", model="bench-up", id="bench/0")


def records(count: int) -> list[RequestRecord]:
    """Finished requests as the proxy hands them to recorders: 50 teams, 500 keys, 4 models."""
    now = time.perf_counter()
    return [
        RequestRecord(
            f"req_bench_{i:09d}_{secrets.token_hex(4)}", Endpoint.CHAT, Endpoint.CHAT.value, now, now, now, now,
            f"key-{i % 500}", "sk-gw-bench", f"team-{i % 50}", None, f"model-{i % 4}", False, DEPLOYMENT, 1,
            status=200, usage=Usage(prompt_tokens=120 + i % 50, completion_tokens=30 + i % 20),
            cost_usd=Decimal("0.000036"), tags={"feature": "bench"},
        )
        for i in range(count)
    ]


async def sink_rate(sink: Sink, rows: list[LedgerRow], batch: int) -> dict[str, Any]:
    await sink.open()
    try:
        started = time.perf_counter()
        written = 0
        for i in range(0, len(rows), batch):
            written += await sink.write(rows[i : i + batch])
        seconds = time.perf_counter() - started
    finally:
        await sink.close()
    assert written == len(rows), f"{written} of {len(rows)} rows written"
    return {"rows": len(rows), "batch": batch, "seconds": round(seconds, 3), "rows_per_s": round(len(rows) / seconds)}


async def ledger_rate(sink: Sink, spill_dir: Path, done: list[RequestRecord], batch: int) -> dict[str, Any]:
    """Rows recorded in bursts of 1000 (yielding between, as requests would), timed until all are written."""
    ledger = Ledger(sink, Spill(spill_dir), LedgerOptions(batch_size=batch, flush_s=0.05,
                                                         queue_size=len(done) + 1))  # fmt: skip
    await ledger.start()
    record_s = 0.0
    started = time.perf_counter()
    for i in range(0, len(done), 1000):
        t0 = time.perf_counter()
        for record in done[i : i + 1000]:
            ledger.record(record)
        record_s += time.perf_counter() - t0
        await asyncio.sleep(0)
    while True:  # polled: the writer keeps no event for "all written"
        if ledger.stats.written + ledger.stats.spilled >= len(done):
            break
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - started
    await ledger.stop()
    stats = ledger.status()
    return {
        "rows": len(done), "batch": batch, "seconds": round(seconds, 3), "rows_per_s": round(len(done) / seconds),
        "record_us_per_row": round(1e6 * record_s / len(done), 2), "written": stats["written"],
        "spilled": stats["spilled"],
    }  # fmt: skip


async def writer_throughput(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    dsn = await create_database()
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await migrate_postgres(conn)
        finally:
            await conn.close()
        rows = [LedgerRow.from_record(record) for record in records(args.rows)]
        pg = {
            "sink": await sink_rate(PostgresSink(dsn, premake_days=2, retention_days=0), rows, args.batch),
            # Fresh request ids: the same rows again would be (correctly) skipped as replays.
            "ledger": await ledger_rate(PostgresSink(dsn, premake_days=2, retention_days=0), workdir / "spill-pg",
                                        records(args.rows), args.batch),
        }
    finally:
        await drop_database(dsn)
    lite_rows = rows[: min(len(rows), 50_000)]
    lite_db = open_sqlite(workdir / "bench.db")
    migrate_sqlite(lite_db)
    lite_db.close()
    lite = {"sink": await sink_rate(SQLiteSink(workdir / "bench.db", retention_days=0), lite_rows, args.batch)}
    return {"postgres": pg, "sqlite": lite, "target_rows_per_s": TARGET_ROWS_PER_S}


def ledger_gateway(settings: dict[str, Any]) -> Launcher:
    async def launch(stack: Stack) -> Running:
        return await start_gateway(stack, {"settings": settings}, price=PRICE)

    return launch


def added(results: dict[str, TargetResult]) -> list[dict[str, Any]]:
    cells = {(c["target"], c["mode"], c["concurrency"]): c for r in results.values() for c in r.cells}
    rows = []
    for (target, mode, concurrency), cell in cells.items():
        base = cells.get((BASELINE, mode, concurrency))
        if target == BASELINE or base is None:
            continue
        rows.append({
            "target": target, "mode": mode, "concurrency": concurrency,
            "added_p50_ms": _minus(cell["latency_ms"]["p50"], base["latency_ms"]["p50"]),
            "added_p99_ms": _minus(cell["latency_ms"]["p99"], base["latency_ms"]["p99"]),
            "rps_vs_off": round(cell["rps"] / base["rps"], 3) if base["rps"] else None,
        })  # fmt: skip
    return rows


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def report_markdown(throughput: dict[str, Any], results: dict[str, TargetResult], rows: list[dict[str, Any]]) -> str:
    pg, lite = throughput["postgres"], throughput["sqlite"]
    lines = [
        f"Writer throughput (target: {TARGET_ROWS_PER_S:,} rows/s into Postgres).",
        "",
        "| path | rows | batch | seconds | rows/s | record() µs/row |",
        "|---|--:|--:|--:|--:|--:|",
        f"| PostgresSink.write | {pg['sink']['rows']} | {pg['sink']['batch']} | {pg['sink']['seconds']} "
        f"| {pg['sink']['rows_per_s']:,} | - |",
        f"| Ledger (record → writer → Postgres) | {pg['ledger']['rows']} | {pg['ledger']['batch']} "
        f"| {pg['ledger']['seconds']} | {pg['ledger']['rows_per_s']:,} | {pg['ledger']['record_us_per_row']} |",
        f"| SQLiteSink.write (embedded default) | {lite['sink']['rows']} | {lite['sink']['batch']} "
        f"| {lite['sink']['seconds']} | {lite['sink']['rows_per_s']:,} | - |",
        "",
    ]
    if results:
        lines += [markdown(results, [], BASELINE), "",
                  f"Added by the ledger over `{BASELINE}` (target: no measurable difference at p50).", "",
                  "| target | mode | conc | added p50 ms | added p99 ms | rps ÷ ledger-off |",
                  "|---|---|--:|--:|--:|--:|"]  # fmt: skip
        lines += [f"| {r['target']} | {r['mode']} | {r['concurrency']} | {r['added_p50_ms']} | {r['added_p99_ms']} "
                  f"| {r['rps_vs_off']} |" for r in rows]  # fmt: skip
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows for the throughput measurement")
    parser.add_argument("--batch", type=int, default=2000, help="rows per write (the writer's batch size)")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per latency cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    parser.add_argument("--concurrency", default="1,16", help="comma-separated")
    parser.add_argument("--stream", action="store_true", help="also measure streamed requests")
    parser.add_argument("--no-latency", action="store_true", help="only the writer throughput")
    parser.add_argument("--quick", action="store_true", help="50k rows and 1 s cells, a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write ledger-<date>.{json,md}")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.duration, args.warmup = 50_000, 1.0, 0.3
    return args


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_sigterm()
    started = dt.datetime.now(dt.UTC)
    plan = Plan(
        duration_s=args.duration,
        warmup_s=args.warmup,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
        modes=("non-stream", "stream") if args.stream else ("non-stream",),
    )
    results: dict[str, TargetResult] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        throughput = await writer_throughput(args, Path(tmp))
        if not args.no_latency:
            dsn = await create_database()
            try:
                targets: dict[str, Launcher] = {
                    BASELINE: ledger_gateway({"ledger_enabled": False}),
                    "ledger-postgres": ledger_gateway({"database_url": dsn}),
                    "ledger-sqlite": ledger_gateway({}),
                }
                results = await run_matrix(plan, targets, Path(tmp))
            finally:
                await drop_database(dsn)
    rows = added(results)
    return {
        "benchmark": "ledger",
        "started": started.isoformat(timespec="seconds"),
        "plan": plan.__dict__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg()},
        "throughput": throughput,
        "targets": as_json(results),
        "added": rows,
        "markdown": report_markdown(throughput, results, rows),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def header(report: dict[str, Any]) -> str:
        return f"Plan: {report['plan']}\nLoad average at start: {report['machine']['load_average_at_start']}"

    return run_and_write("ledger", "Ledger benchmark", bench(args), args.out, quick=args.quick, header=header)


if __name__ == "__main__":
    sys.exit(main())
