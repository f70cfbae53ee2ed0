"""The cost ledger at the size it is built for: 50 million rows over 30 daily partitions.

    python loadtests/bench_ledger_scale.py [--rows 50000000] [--days 30] [--keep] [--reuse DSN]

1. Fill, over the last `--days` UTC days; 100 teams, 2,000 keys (Zipf-skewed traffic, s = 0.8),
   20 models on 5 providers, 3% errors:
   - every day but today: rows generated inside PostgreSQL (the same columns and distribution
     as below) into a table of their own, indexed like a partition, attached as that day's
     partition, and rolled up into `ledger_daily` by the aggregate the gateway's replay statement
     uses (`postgres._INSERT`). Inserting 48 million rows one batch at a time into indexes larger
     than the shared server's 128 MB of shared_buffers ran at ~2,600 rows/s here: days, not an
     hour; building each day's indexes once, sorted, takes minutes.
   - today: rows built in Python as `LedgerRow`s and written through `PostgresSink.write`, the
     request path's writer (binary COPY into the partition plus the rollup upsert computed in
     Python, one transaction per batch of 2,000): its rows per second into a partition growing
     to a full day, next to 29 full ones. Today's rollup is the gateway's own, row by row.
   Bytes per row (heap, indexes, rollup) from the relation sizes after VACUUM ANALYZE.
2. Queries: exactly the statements the admin API runs (`PostgresQueries.spend` and `.rows`), with
   the arguments the admin UI's pages and the API's defaults give them: spend by team, key and
   model over a day, a week and a month; the overview's totals and groups; a key's recent
   requests; the newest rows of the day. p50/p95/max over `--repeat` runs each, cycling through
   teams, keys and models, with EXPLAIN ANALYZE of each: the day partitions left in the plan once
   the time range pruned the others, and those it ran. Target: p95 < 100 ms.
3. The rollup equals the sum of its rows, day by day (requests, tokens, cost).
4. Retention: the oldest day is dropped by the gateway's own `maintain_partitions` while a writer
   keeps inserting (batches of 500 every 50 ms); the drop's time, and each insert's latency
   before and during it. Target: under a second, inserts not blocked.

A private database on the shared PostgreSQL (dropped at the end unless `--keep`; `--reuse DSN`
skips the fill and measures an existing one). Mind the disk: ~0.6 KB a row with its indexes;
the run refuses to start when the estimate does not fit with 20% to spare.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime as dt
import os
import platform
import random
import re
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from pg import PG_SERVER, admin_sql
from procs import REPO
from report import cancel_on_sigterm, run_and_write

sys.path.insert(0, str(REPO))

from gateway.accounting.ledger.partitions import PARENT, partition_name
from gateway.accounting.ledger.postgres import PostgresSink, maintain_partitions
from gateway.accounting.ledger.queries import PostgresQueries, RowQuery, SpendQuery
from gateway.accounting.ledger.row import EPOCH, US_PER_DAY, LedgerRow
from gateway.db.migrate import migrate_postgres

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_P95_MS = 100.0
TARGET_DROP_S = 1.0
BATCH = 2000
TEAMS, KEYS, MODELS = 100, 2000, 20
PROVIDERS = ("openai", "anthropic", "azure", "bedrock", "vertex")
# Bytes a row is expected to take with its indexes, for the disk check before the fill.
EXPECTED_BYTES_PER_ROW = 600
SEGMENTS = 10


class World:
    """Who sends the traffic: teams, keys (each in one team, using three models), models."""

    def __init__(self, seed: int = 20) -> None:
        rng = random.Random(seed)
        self.teams = [f"team_{i:012x}{rng.getrandbits(64):016x}" for i in range(TEAMS)]
        self.keys = [f"key_{i:012x}{rng.getrandbits(64):016x}" for i in range(KEYS)]
        self.team_of = [self.teams[i % TEAMS] for i in range(KEYS)]
        self.prefix_of = [f"sk-gw-{rng.getrandbits(24):06x}" for _ in range(KEYS)]
        self.models = [f"model-{i:02d}" for i in range(MODELS)]
        self.provider_of = [PROVIDERS[i % len(PROVIDERS)] for i in range(MODELS)]
        self.models_of = [rng.sample(range(MODELS), 3) for _ in range(KEYS)]
        weights = [1 / (rank + 1) ** 0.8 for rank in range(KEYS)]
        total = sum(weights)
        self.cumulative = list(_accumulate(w / total for w in weights))

    def key_at(self, u: float) -> int:
        """The key at quantile `u` of the traffic."""
        return min(bisect.bisect(self.cumulative, u), KEYS - 1)

    def key(self, rng: random.Random) -> int:
        return self.key_at(rng.random())


def _accumulate(values: Iterator[float]) -> Iterator[float]:
    running = 0.0
    for v in values:
        running += v
        yield running


def rows(world: World, first_day: dt.date, days: int, count: int, *, seed: int = 1,
         batch_size: int = BATCH) -> Iterator[list[LedgerRow]]:  # fmt: skip
    """`count` rows in time order over `days` days from `first_day`, in batches."""
    rng = random.Random(seed)
    start_us = (dt.datetime.combine(first_day, dt.time(), dt.UTC) - EPOCH) // dt.timedelta(microseconds=1)
    step = days * US_PER_DAY / count
    run = secrets.token_hex(6)
    batch: list[LedgerRow] = []
    for i in range(count):
        k = world.key(rng)
        m = world.models_of[k][min(int(rng.random() * 3.3), 2)]
        provider = world.provider_of[m]
        failed = rng.random() < 0.03
        prompt, completion = (0, 0) if failed else (rng.randint(20, 4000), rng.randint(1, 800))
        cost = Decimal(prompt * 150 + completion * 600) / 1_000_000_000 if not failed else Decimal(0)
        latency = rng.uniform(200, 8000)
        stream = rng.random() < 0.6
        batch.append(LedgerRow(
            int(start_us + i * step), f"req_{run}{i:012x}", "chat", world.keys[k], world.prefix_of[k],
            world.team_of[k], None, world.models[m], world.models[m] + "-2026", provider, f"{provider}/{m}",
            1, False, stream, 502 if failed else 200, "upstream_error" if failed else None, False, prompt,
            completion, 0, False, cost.quantize(Decimal("0.000000001")), latency,
            latency * 0.2 if stream else None, latency - 0.4, 0.4, False,
            {"feature": f"f{k % 7}"} if k % 3 == 0 else {},
        ))  # fmt: skip
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


PICK_SLOTS = 100_000
# One day's rows, made by the server as `rows()` makes them in Python: the same columns and distribution.
_GENERATE = f"""
INSERT INTO bench_day
SELECT $1::timestamptz + make_interval(secs => (s.g * $3::float8) / 1e6),
       'req_' || $4 || lpad(to_hex(s.g), 12, '0'), 'chat', k.key_id, k.key_prefix, k.team_id, NULL,
       m.name, m.name || '-2026', m.provider, m.provider || '/' || m.idx, 1, false, s.stream,
       CASE WHEN s.failed THEN 502 ELSE 200 END, CASE WHEN s.failed THEN 'upstream_error' END, false,
       s.prompt, s.completion, 0, false, round((s.prompt * 150 + s.completion * 600)::numeric / 1e9, 9),
       s.latency, CASE WHEN s.stream THEN s.latency * 0.2 END, s.latency - 0.4, 0.4, false,
       CASE WHEN k.idx % 3 = 0 THEN jsonb_build_object('feature', 'f' || (k.idx % 7)) ELSE '{{}}'::jsonb END
FROM (SELECT g, slot, choice, stream, failed,
             CASE WHEN failed THEN 0 ELSE 20 + floor(random() * 3981)::int END AS prompt,
             CASE WHEN failed THEN 0 ELSE 1 + floor(random() * 800)::int END AS completion,
             200 + random() * 7800 AS latency
      FROM (SELECT g, floor(random() * {PICK_SLOTS})::int AS slot, least(floor(random() * 3.3)::int, 2) AS choice,
                   random() < 0.6 AS stream, random() < 0.03 AS failed
            FROM generate_series($2::bigint, $5::bigint) g) raw) s
JOIN bench_pick p ON p.slot = s.slot
JOIN bench_keys k ON k.idx = p.idx
JOIN bench_models m ON m.idx = k.models[1 + s.choice]
ORDER BY 1
"""
# The indexes of a partition (postgres/0100, 0110), built once the day's rows are in.
_DAY_INDEXES = """
ALTER TABLE bench_day ADD PRIMARY KEY (request_id, ts);
CREATE INDEX ON bench_day (team_id, ts);
CREATE INDEX ON bench_day (key_id, ts);
CREATE INDEX ON bench_day (requested_model, ts);
CREATE INDEX ON bench_day (ts);
"""
# The rollups of one day's rows (postgres/0100, 0111): the aggregate of the gateway's replay
# statement (postgres._INSERT), with and without the key.
_AGGREGATE = """count(*), count(*) FILTER (WHERE error_type IS NOT NULL OR (status >= 400 AND status <> 499)),
       sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens),
       count(*) FILTER (WHERE tokens_estimated), count(*) FILTER (WHERE cost_usd IS NULL), coalesce(sum(cost_usd), 0)"""
_COUNTS = "requests, errors, prompt_tokens, completion_tokens, cached_tokens, estimated, unpriced, cost_usd"
_ROLL_UP = f"""
INSERT INTO ledger_daily (day, team_id, key_id, model, provider, {_COUNTS})
SELECT (ts AT TIME ZONE 'UTC')::date, coalesce(team_id, ''), coalesce(key_id, ''),
       coalesce(requested_model, ''), coalesce(provider, ''), {_AGGREGATE}
FROM {PARENT} WHERE ts >= $1 AND ts < $2
GROUP BY 1, 2, 3, 4, 5
"""
_ROLL_UP_TEAMS = f"""
INSERT INTO ledger_daily_teams (day, team_id, model, provider, {_COUNTS})
SELECT (ts AT TIME ZONE 'UTC')::date, coalesce(team_id, ''), coalesce(requested_model, ''), coalesce(provider, ''),
       {_AGGREGATE}
FROM {PARENT} WHERE ts >= $1 AND ts < $2
GROUP BY 1, 2, 3, 4
"""


async def _world_tables(conn: asyncpg.Connection, world: World) -> None:
    await conn.execute("""
        CREATE TEMP TABLE bench_keys (idx int PRIMARY KEY, key_id text, key_prefix text, team_id text, models int[]);
        CREATE TEMP TABLE bench_models (idx int PRIMARY KEY, name text, provider text);
        CREATE TEMP TABLE bench_pick (slot int PRIMARY KEY, idx int)""")  # fmt: skip
    await conn.copy_records_to_table("bench_keys", records=[
        (i, world.keys[i], world.prefix_of[i], world.team_of[i], world.models_of[i]) for i in range(KEYS)])
    await conn.copy_records_to_table("bench_models", records=[
        (i, world.models[i], world.provider_of[i]) for i in range(MODELS)])
    # Each key gets slots in proportion to its share of the traffic.
    await conn.copy_records_to_table("bench_pick", records=[
        (slot, world.key_at((slot + 0.5) / PICK_SLOTS)) for slot in range(PICK_SLOTS)])  # fmt: skip


async def fill(dsn: str, world: World, today: dt.date, args: argparse.Namespace) -> dict[str, Any]:
    per_day = args.rows // args.days
    first = today - dt.timedelta(days=args.days - 1)
    step_us = US_PER_DAY / per_day
    bulk = per_day * (args.days - 1)
    # The days before today, generated by the server, a day at a time.
    conn = await asyncpg.connect(dsn)
    started = time.perf_counter()
    chunks: list[dict[str, Any]] = []
    try:
        await _world_tables(conn, world)
        run = secrets.token_hex(6)
        start_ts = dt.datetime.combine(first, dt.time(), dt.UTC)
        for n in range(args.days - 1):
            day = first + dt.timedelta(days=n)
            lo = dt.datetime.combine(day, dt.time(), dt.UTC)
            t0 = time.perf_counter()
            table = partition_name(day)
            async with conn.transaction():
                await conn.execute(f"CREATE TABLE {table} (LIKE {PARENT} INCLUDING DEFAULTS)")
                await conn.execute(_GENERATE.replace("bench_day", table), start_ts, n * per_day, step_us, run,
                                   (n + 1) * per_day - 1)  # fmt: skip
                await conn.execute(_DAY_INDEXES.replace("bench_day", table))
                # Its indexes match the parent's, so they are attached, not built again.
                await conn.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {table} FOR VALUES "
                                   f"FROM ('{lo.isoformat()}') TO ('{(lo + dt.timedelta(days=1)).isoformat()}')")
                await conn.execute(_ROLL_UP, lo, lo + dt.timedelta(days=1))
                await conn.execute(_ROLL_UP_TEAMS, lo, lo + dt.timedelta(days=1))
            chunks.append({"rows_so_far": (n + 1) * per_day, "rows_per_s": round(per_day / (time.perf_counter() - t0)),
                           "load_average": os.getloadavg()[0]})  # fmt: skip
            print(f"  {(n + 1) * per_day:,} rows (server-side), {chunks[-1]['rows_per_s']:,} rows/s", file=sys.stderr)
    finally:
        await conn.close()
    bulk_s = time.perf_counter() - started
    # Today through the request path's writer.
    sink = PostgresSink(dsn, premake_days=1, retention_days=0)
    await sink.open()
    segments: list[dict[str, Any]] = []
    written = 0
    started = seg_started = time.perf_counter()
    seg_written = 0
    try:
        for batch in rows(world, today, 1, per_day):
            written += await sink.write(batch)
            seg_written += len(batch)
            if seg_written >= per_day // 5 or written == per_day:
                now = time.perf_counter()
                segments.append({"rows_so_far": written, "rows_per_s": round(seg_written / (now - seg_started)),
                                 "load_average": os.getloadavg()[0]})  # fmt: skip
                print(f"  {written:,} rows (PostgresSink.write), {segments[-1]['rows_per_s']:,} rows/s",
                      file=sys.stderr)  # fmt: skip
                seg_started, seg_written = now, 0
    finally:
        await sink.close()
    copy_s = time.perf_counter() - started
    assert written == per_day, f"{written} of {per_day} rows written"
    return {
        "rows": bulk + written, "per_day": per_day,
        "server_side": {"rows": bulk, "seconds": round(bulk_s, 1), "rows_per_s": round(bulk / bulk_s),
                        "chunks": chunks},
        "sink": {"rows": written, "seconds": round(copy_s, 1), "rows_per_s": round(written / copy_s),
                 "batch": BATCH, "segments": segments},
    }  # fmt: skip


async def sizes(conn: asyncpg.Connection) -> dict[str, Any]:
    parts = await conn.fetch(
        """SELECT c.relname, pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes,
                  pg_total_relation_size(c.oid) AS total, c.reltuples::bigint AS estimate
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = $1::regclass ORDER BY c.relname""",
        PARENT,
    )
    rows = await conn.fetchval(f"SELECT count(*) FROM {PARENT}")
    heap = sum(p["heap"] for p in parts)
    indexes = sum(p["indexes"] for p in parts)
    total = sum(p["total"] for p in parts)
    rollup_rows = await conn.fetchval("SELECT count(*) FROM ledger_daily")
    rollup_bytes = await conn.fetchval("SELECT pg_total_relation_size('ledger_daily')")
    teams_rows = await conn.fetchval("SELECT count(*) FROM ledger_daily_teams")
    teams_bytes = await conn.fetchval("SELECT pg_total_relation_size('ledger_daily_teams')")
    index_sizes = await conn.fetch(
        """SELECT regexp_replace(ci.relname, '^ledger_requests_p\\d{8}_?(.*?)\\d*$', '\\1') AS name,
                  sum(pg_relation_size(ci.oid)) AS bytes
           FROM pg_inherits i JOIN pg_index x ON x.indrelid = i.inhrelid JOIN pg_class ci ON ci.oid = x.indexrelid
           WHERE i.inhparent = $1::regclass GROUP BY 1 ORDER BY 2 DESC""",
        PARENT,
    )  # fmt: skip
    return {
        "rows": rows,
        "partitions": len(parts),
        "heap_bytes": heap,
        "index_bytes": indexes,
        "total_bytes": total,
        "bytes_per_row": round(total / rows, 1) if rows else None,
        "heap_bytes_per_row": round(heap / rows, 1) if rows else None,
        "index_bytes_per_row": round(indexes / rows, 1) if rows else None,
        "index_bytes_by_name": {r["name"]: int(r["bytes"]) for r in index_sizes},
        "rollup_rows": rollup_rows,
        "rollup_bytes": rollup_bytes,
        "rollup_teams_rows": teams_rows,
        "rollup_teams_bytes": teams_bytes,
        "database_bytes": await conn.fetchval("SELECT pg_database_size(current_database())"),
    }


async def rollup_check(conn: asyncpg.Connection) -> dict[str, Any]:
    """Per day: the rows' totals against each rollup's."""
    from_rows = {
        r["day"]: tuple(r)[1:]
        for r in await conn.fetch(f"""
            SELECT (ts AT TIME ZONE 'UTC')::date AS day, count(*), sum(prompt_tokens), sum(completion_tokens),
                   coalesce(sum(cost_usd), 0) FROM {PARENT} GROUP BY 1""")
    }  # fmt: skip
    report: dict[str, Any] = {"days": len(from_rows), "rows": sum(v[0] for v in from_rows.values()),
                              "cost_from_rows": str(sum((v[3] for v in from_rows.values()), Decimal(0)))}  # fmt: skip
    for table in ("ledger_daily", "ledger_daily_teams"):
        from_rollup = {
            r["day"]: tuple(r)[1:]
            for r in await conn.fetch(
                f"SELECT day, sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) "
                f"FROM {table} GROUP BY 1")
        }  # fmt: skip
        days = set(from_rows) | set(from_rollup)
        report[table] = {
            "cost": str(sum((v[3] for v in from_rollup.values()), Decimal(0))),
            "mismatched_days": sorted(str(d) for d in days if from_rows.get(d) != from_rollup.get(d)),
        }
    report["equal"] = not any(report[t]["mismatched_days"] for t in ("ledger_daily", "ledger_daily_teams"))
    return report


def query_plan(world: World, today: dt.date) -> list[tuple[str, str, Callable[[int], SpendQuery | RowQuery]]]:
    """(name, who runs it, query for the n-th repetition): what the admin API and UI ask."""
    week, month = today - dt.timedelta(days=6), today - dt.timedelta(days=29)
    first = today.replace(day=1)
    midnight = dt.datetime.combine(today, dt.time(), dt.UTC)
    now = midnight + dt.timedelta(hours=23, minutes=59)

    def team(n: int) -> str:
        return world.teams[n % TEAMS]

    def key(n: int) -> str:
        return world.keys[(n * 37) % 200]  # among the busier fifth of keys

    def model(n: int) -> str:
        return world.models[n % MODELS]

    plans: list[tuple[str, str, Callable[[int], SpendQuery | RowQuery]]] = []
    for label, start in (("day", today), ("week", week), ("month", month)):
        plans += [
            (f"spend of a team by model, {label}", "API spend?team=&group_by=model",
             lambda n, s=start: SpendQuery(s, today, ("model",), team=team(n))),
            (f"spend of a key by model, {label}", "API spend?key=&group_by=model",
             lambda n, s=start: SpendQuery(s, today, ("model",), key=key(n))),
            (f"spend of a model by team, {label}", "API spend?model=&group_by=team",
             lambda n, s=start: SpendQuery(s, today, ("team",), model=model(n))),
        ]  # fmt: skip
    plans += [
        ("total, month", "UI overview", lambda n: SpendQuery(first, today)),
        ("by day, month", "UI overview (chart)", lambda n: SpendQuery(month, today, ("day",))),
        ("by team, month", "UI overview", lambda n: SpendQuery(month, today, ("team",))),
        ("by model, month", "UI overview", lambda n: SpendQuery(month, today, ("model",))),
        ("by key, month", "UI budgets (period spend)", lambda n: SpendQuery(month, today, ("key",))),
        ("a team's keys, month", "UI team page", lambda n: SpendQuery(month, today, ("key",), team=team(n))),
        ("a key's recent requests (100), day", "API requests?key=",
         lambda n: RowQuery(now - dt.timedelta(days=1), now, key=key(n), limit=100)),
        ("a key's recent requests (100), 30 days", "API requests?key= (default range)",
         lambda n: RowQuery(now - dt.timedelta(days=30), now, key=key(n), limit=100)),
        ("a team's recent requests (100), 30 days", "API requests?team=",
         lambda n: RowQuery(now - dt.timedelta(days=30), now, team=team(n), limit=100)),
        ("the day's newest rows (1000)", "UI overview/models (latency sample)",
         lambda n: RowQuery(midnight, now, limit=1000)),
    ]  # fmt: skip
    return plans


_PARTITION = re.compile(rf"\b{PARENT}_p\d{{8}}\b")


async def explain(conn: asyncpg.Connection, sql: str, args: list[object]) -> tuple[str, int]:
    """The plan as run (ANALYZE), and how many day partitions it touched."""
    lines = [r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) {sql}", *args)]
    touched = {m.group(0) for line in lines if "never executed" not in line for m in _PARTITION.finditer(line)}
    return "\n".join(lines), len(touched)


async def measure_queries(dsn: str, world: World, today: dt.date, repeat: int) -> list[dict[str, Any]]:
    queries = PostgresQueries(dsn, pool_size=1)
    conn = await asyncpg.connect(dsn)
    results = []
    try:
        for name, who, make in query_plan(world, today):
            timings = []
            for n in range(repeat):
                query = make(n)
                t0 = time.perf_counter()
                if isinstance(query, SpendQuery):
                    answer: Any = await queries.spend(query)
                else:
                    answer = await queries.rows(query)
                timings.append((time.perf_counter() - t0) * 1000)
            sample = make(0)
            if isinstance(sample, SpendQuery):
                sql, args = PostgresQueries.spend_sql(sample)
            else:
                sql, args = PostgresQueries.rows_sql(sample)
                sql += f" LIMIT {sample.limit + 1}"
            plan, touched = await explain(conn, sql, args)
            timings.sort()
            results.append({
                "query": name, "who": who, "runs": repeat,
                "p50_ms": round(statistics.median(timings), 2), "p95_ms": round(_p95(timings), 2),
                "max_ms": round(timings[-1], 2),
                "partitions_touched": touched if isinstance(sample, RowQuery) else None,
                "answer_size": len(answer) if isinstance(answer, list) else len(answer.rows), "plan": plan,
            })  # fmt: skip
            print(f"  {name}: p95 {results[-1]['p95_ms']} ms", file=sys.stderr)
    finally:
        await conn.close()
        await queries.close()
    return results


def _p95(sorted_values: list[float]) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(0.95 * (len(sorted_values) - 1)))]


async def drop_under_load(dsn: str, world: World, today: dt.date, days: int) -> dict[str, Any]:
    """Drop the oldest day while a writer inserts into today's partition: a retention of days - 2
    keeps today - (days - 2) and later, so today - (days - 1) is past it."""
    conn = await asyncpg.connect(dsn)
    await maintain_partitions(conn, today, premake_days=2, retention_days=0)  # make the days ahead first
    oldest = today - dt.timedelta(days=days - 1)
    oldest_rows = await conn.fetchval(f"SELECT count(*) FROM {partition_name(oldest)}")
    sink = PostgresSink(dsn, premake_days=2, retention_days=0)
    await sink.open()
    latencies: list[tuple[float, float]] = []  # (start, ms)
    stop = asyncio.Event()

    async def writer() -> None:
        batches = rows(world, today, 1, 500 * 1000, seed=7, batch_size=500)
        while not stop.is_set():
            batch = next(batches)
            t0 = time.perf_counter()
            await sink.write(batch)
            latencies.append((t0, (time.perf_counter() - t0) * 1000))
            await asyncio.sleep(0.05)

    task = asyncio.create_task(writer())
    try:
        await asyncio.sleep(3)
        t0 = time.perf_counter()
        report, _ = await maintain_partitions(conn, today, premake_days=2, retention_days=days - 2)
        drop_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        await asyncio.sleep(3)
    finally:
        stop.set()
        await task
        await sink.close()
        await conn.close()
    before = [ms for start, ms in latencies if start < t0]
    # An insert is "during" the drop if it was running at any moment of it.
    during = [ms for start, ms in latencies if start < t1 and start + ms / 1000 > t0]
    after = [ms for start, ms in latencies if start >= t1]
    return {
        "dropped": report.dropped, "rows_in_dropped_day": oldest_rows, "drop_s": round(drop_s, 3),
        "insert_batch_rows": 500,
        "insert_ms_before": _summary(before), "insert_ms_during": _summary(during), "insert_ms_after": _summary(after),
    }  # fmt: skip


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 1), "max": round(ordered[-1], 1)}


def check_disk(rows: int) -> dict[str, Any]:
    free = shutil.disk_usage("/var/lib/postgresql" if Path("/var/lib/postgresql").exists() else "/").free
    needed = rows * EXPECTED_BYTES_PER_ROW
    if needed * 1.2 > free:
        raise SystemExit(f"not enough disk: {rows:,} rows need ~{needed / 1e9:.1f} GB (+20%), "
                         f"{free / 1e9:.1f} GB free; scale down with --rows")  # fmt: skip
    return {"free_bytes_before": free, "estimated_bytes": needed}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cancel_on_sigterm()
    started = dt.datetime.now(dt.UTC)
    today = started.date()
    world = World()
    report: dict[str, Any] = {
        "benchmark": "ledger-scale",
        "started": started.isoformat(timespec="seconds"),
        "plan": {"rows": args.rows, "days": args.days, "batch": BATCH, "teams": TEAMS, "keys": KEYS,
                 "models": MODELS, "repeat": args.repeat},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg(), "postgres": None},
    }  # fmt: skip
    name = None
    if args.reuse:
        dsn = args.reuse
    else:
        report["disk"] = check_disk(args.rows)
        name = "gw_bench_scale_" + secrets.token_hex(4)
        dsn = f"{PG_SERVER}/{name}"
        await admin_sql(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            report["machine"]["postgres"] = await conn.fetchval("SHOW server_version")
            await migrate_postgres(conn)
        finally:
            await conn.close()
        if not args.reuse:
            print(f"filling {dsn} with {args.rows:,} rows", file=sys.stderr)
            report["fill"] = await fill(dsn, world, today, args)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("VACUUM ANALYZE")  # what autovacuum does after a bulk load, done now
            report["size"] = await sizes(conn)
            report["rollup"] = await rollup_check(conn)
        finally:
            await conn.close()
        report["queries"] = await measure_queries(dsn, world, today, args.repeat)
        report["retention"] = await drop_under_load(dsn, world, today, args.days)
    finally:
        if name is not None and not args.keep:
            await admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        elif name is not None:
            print(f"kept {dsn}", file=sys.stderr)
    report["markdown"] = report_markdown(report)
    return report


def report_markdown(report: dict[str, Any]) -> str:
    size, rollup, fill_ = report["size"], report["rollup"], report.get("fill")
    lines = [f"Load average at start: {report['machine']['load_average_at_start']}; "
             f"PostgreSQL {report['machine']['postgres']}, shared with other work.", ""]  # fmt: skip
    if fill_:
        bulk, sink = fill_["server_side"], fill_["sink"]
        lines += [
            "## Writing", "",
            f"{fill_['rows']:,} rows, {fill_['per_day']:,} a day. The {bulk['rows']:,} rows before today: generated "
            f"by the server a day at a time, indexed, attached as the day's partition and rolled up, in "
            f"{bulk['seconds']:,} s ({bulk['rows_per_s']:,} rows/s: a bulk load, not the gateway's path). Today's "
            f"{sink['rows']:,}: built in Python and written by `PostgresSink.write` (the request path's writer, "
            f"batches of {sink['batch']}, COPY and rollup upsert) in {sink['seconds']:,} s: "
            f"**{sink['rows_per_s']:,} rows/s**, building the rows in Python included.", "",
            "| path | rows so far | rows/s in the segment | load average |", "|---|--:|--:|--:|",
            *(f"| server-side bulk load, a day at a time | {c['rows_so_far']:,} | {c['rows_per_s']:,} "
              f"| {c['load_average']:.1f} |" for c in bulk["chunks"][4::5]),
            *(f"| PostgresSink.write | {c['rows_so_far']:,} | {c['rows_per_s']:,} | {c['load_average']:.1f} |"
              for c in sink["segments"]),
            "",
        ]  # fmt: skip
    lines += [
        "## Size", "",
        f"{size['rows']:,} rows in {size['partitions']} day partitions: **{size['bytes_per_row']} bytes per row** "
        f"({size['heap_bytes_per_row']} heap + {size['index_bytes_per_row']} indexes); "
        f"{size['total_bytes'] / 1e9:.2f} GB in all. Rollups: `ledger_daily` {size['rollup_rows']:,} rows, "
        f"{size['rollup_bytes'] / 1e6:.1f} MB; `ledger_daily_teams` {size['rollup_teams_rows']:,} rows, "
        f"{size['rollup_teams_bytes'] / 1e6:.1f} MB.", "",
        "| index (all partitions) | MB | bytes per row |", "|---|--:|--:|",
        *(f"| {n} | {b / 1e6:,.0f} | {b / size['rows']:.1f} |" for n, b in size["index_bytes_by_name"].items()),
        "",
        "## Rollup against rows", "",
        f"{rollup['days']} days, {rollup['rows']:,} rows: cost from the rows {rollup['cost_from_rows']}, from "
        f"`ledger_daily` {rollup['ledger_daily']['cost']}, from `ledger_daily_teams` "
        f"{rollup['ledger_daily_teams']['cost']}; days on which requests, tokens or cost differ: "
        f"{rollup['ledger_daily']['mismatched_days'] or 'none'} and "
        f"{rollup['ledger_daily_teams']['mismatched_days'] or 'none'} "
        f"(**{'equal' if rollup['equal'] else 'NOT equal'}**). Today's rollup rows are the gateway's own "
        "(`PostgresSink.write`: the batch's totals computed in Python, upserted with the rows); the other days' come "
        "from the aggregate of the gateway's replay statement, run once per day.", "",
        f"## Queries (target p95 < {TARGET_P95_MS:g} ms; {report['plan']['repeat']} runs each)", "",
        f"Partitions: those left in the plan once the range pruned the rest (of {report['size']['partitions']}), "
        "and those it ran (a LIMIT stops at the newest ones).", "",
        "| query | asked by | p50 ms | p95 ms | max ms | partitions in plan / run | rows back |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]  # fmt: skip
    for q in report["queries"]:
        mark = "" if q["p95_ms"] < TARGET_P95_MS else " **over**"
        planned = len(set(_PARTITION.findall(q["plan"])))
        parts = f"{planned} / {q['partitions_touched']}" if q["partitions_touched"] is not None else "rollup"
        lines.append(f"| {q['query']} | {q['who']} | {q['p50_ms']} | {q['p95_ms']}{mark} | {q['max_ms']} "
                     f"| {parts} | {q['answer_size']} |")  # fmt: skip
    r = report["retention"]
    lines += [
        "", "## Dropping a day past retention", "",
        f"`maintain_partitions` dropped {', '.join(r['dropped']) or 'nothing'} ({r['rows_in_dropped_day']:,} rows) "
        f"in **{r['drop_s']} s** (target < {TARGET_DROP_S:g} s) while a writer inserted batches of "
        f"{r['insert_batch_rows']} rows every 50 ms.", "",
        "| inserts | n | p50 ms | max ms |", "|---|--:|--:|--:|",
        *(f"| {label} | {s.get('n')} | {s.get('p50', '-')} | {s.get('max', '-')} |"
          for label, s in (("before the drop", r["insert_ms_before"]), ("overlapping it", r["insert_ms_during"]),
                           ("after", r["insert_ms_after"]))),
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=40, help="runs of each query")
    parser.add_argument("--keep", action="store_true", help="keep the database (its DSN is printed)")
    parser.add_argument("--reuse", metavar="DSN", help="measure this filled database instead of filling one")
    parser.add_argument("--quick", action="store_true", help="200k rows, a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, metavar="JSON", help="write the .md of an earlier run's .json again")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 200_000, 10
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        # The tables again from a run's JSON (after a change to how they are written).
        report = orjson.loads(args.render.read_bytes())
        report.pop("markdown", None)
        md = args.render.with_suffix(".md")
        md.write_text(f"# Ledger at scale, {report['started']}\n\nPlan: {report['plan']}\n\n{report_markdown(report)}")
        return 0

    def header(report: dict[str, Any]) -> str:
        return f"Plan: {report['plan']}"

    return run_and_write("ledger-scale", "Ledger at scale", bench(args), args.out, quick=args.quick, header=header)


if __name__ == "__main__":
    sys.exit(main())
