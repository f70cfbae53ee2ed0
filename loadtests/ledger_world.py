"""The benchmark ledger's traffic, made in Python (`rows`) and inside PostgreSQL (`GENERATE`): the
same columns and distribution. 100 teams, 2,000 keys (each in one team, using three models,
Zipf-skewed traffic, s = 0.8), 20 models on 5 providers, 3% errors. Used by bench_ledger_scale.py.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
import secrets
import sys
from collections.abc import Iterator
from decimal import Decimal

import asyncpg
from procs import REPO

sys.path.insert(0, str(REPO))

from gateway.accounting.ledger.partitions import PARENT
from gateway.accounting.ledger.row import EPOCH, US_PER_DAY, LedgerRow

BATCH = 2000
TEAMS, KEYS, MODELS = 100, 2000, 20
PROVIDERS = ("openai", "anthropic", "azure", "bedrock", "vertex")


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
GENERATE = f"""
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
DAY_INDEXES = """
ALTER TABLE bench_day ADD PRIMARY KEY (request_id, ts);
CREATE INDEX ON bench_day (team_id, ts);
CREATE INDEX ON bench_day (key_id, ts);
CREATE INDEX ON bench_day (requested_model, ts);
CREATE INDEX ON bench_day (ts);
"""
# The rollups of one day's rows (postgres/0100, 0111): the aggregate of the gateway's replay
# statement (postgres._INSERT), with and without the key.
AGGREGATE = """count(*), count(*) FILTER (WHERE error_type IS NOT NULL OR (status >= 400 AND status <> 499)),
       sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens),
       count(*) FILTER (WHERE tokens_estimated), count(*) FILTER (WHERE cost_usd IS NULL), coalesce(sum(cost_usd), 0)"""
COUNTS = "requests, errors, prompt_tokens, completion_tokens, cached_tokens, estimated, unpriced, cost_usd"
ROLL_UP = f"""
INSERT INTO ledger_daily (day, team_id, key_id, model, provider, {COUNTS})
SELECT (ts AT TIME ZONE 'UTC')::date, coalesce(team_id, ''), coalesce(key_id, ''),
       coalesce(requested_model, ''), coalesce(provider, ''), {AGGREGATE}
FROM {PARENT} WHERE ts >= $1 AND ts < $2
GROUP BY 1, 2, 3, 4, 5
"""
ROLL_UP_TEAMS = f"""
INSERT INTO ledger_daily_teams (day, team_id, model, provider, {COUNTS})
SELECT (ts AT TIME ZONE 'UTC')::date, coalesce(team_id, ''), coalesce(requested_model, ''), coalesce(provider, ''),
       {AGGREGATE}
FROM {PARENT} WHERE ts >= $1 AND ts < $2
GROUP BY 1, 2, 3, 4
"""


async def world_tables(conn: asyncpg.Connection, world: World) -> None:
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
