-- The cost ledger for the embedded default: the same rows as on Postgres, unpartitioned
-- (retention deletes old rows instead of dropping partitions). Times are ISO-8601 UTC text
-- with microseconds; cost_usd is the exact decimal as text (NULL: no price known); tags JSON.

CREATE TABLE ledger_requests (
    ts                TEXT    NOT NULL,
    request_id        TEXT    NOT NULL,
    endpoint          TEXT    NOT NULL,
    key_id            TEXT,
    key_prefix        TEXT,
    team_id           TEXT,
    end_user          TEXT,
    requested_model   TEXT,
    served_model      TEXT,
    provider          TEXT,
    deployment        TEXT,
    attempts          INTEGER NOT NULL,
    fallback          INTEGER NOT NULL,
    stream            INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    error_type        TEXT,
    cancelled         INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    tokens_estimated  INTEGER NOT NULL,
    cost_usd          TEXT,
    latency_ms        REAL    NOT NULL,
    ttft_ms           REAL,
    upstream_ms       REAL,
    overhead_ms       REAL    NOT NULL,
    cache_hit         INTEGER NOT NULL,
    tags              TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (request_id, ts)
);

CREATE INDEX ledger_requests_ts ON ledger_requests (ts);
CREATE INDEX ledger_requests_team_ts ON ledger_requests (team_id, ts);
CREATE INDEX ledger_requests_key_ts ON ledger_requests (key_id, ts);
CREATE INDEX ledger_requests_model_ts ON ledger_requests (requested_model, ts);

-- Kept current by the writer in the same transaction as the rows it really inserted.
-- day is 'YYYY-MM-DD' (UTC); '' stands for "none"; cost_usd is exact decimal text.
CREATE TABLE ledger_daily (
    day               TEXT    NOT NULL,
    team_id           TEXT    NOT NULL,
    key_id            TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    requests          INTEGER NOT NULL,
    errors            INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    estimated         INTEGER NOT NULL,
    cost_usd          TEXT    NOT NULL,
    unpriced          INTEGER NOT NULL,
    PRIMARY KEY (day, team_id, key_id, model, provider)
);
