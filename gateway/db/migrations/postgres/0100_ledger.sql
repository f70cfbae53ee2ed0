-- The cost ledger: one row per request, range-partitioned by UTC day, plus a per-day rollup.
-- Partitions are not made here: the gateway creates them ahead of time and drops them past the
-- retention (gateway/ledger/partitions.py, `gateway db maintain`). There is no default
-- partition on purpose: it would make every new partition scan it.

CREATE TABLE ledger_requests (
    ts                timestamptz      NOT NULL,
    request_id        text             NOT NULL,
    endpoint          text             NOT NULL,
    key_id            text,
    key_prefix        text,
    team_id           text,
    end_user          text,
    requested_model   text,
    served_model      text,
    provider          text,
    deployment        text,
    attempts          smallint         NOT NULL,
    fallback          boolean          NOT NULL,
    stream            boolean          NOT NULL,
    status            smallint         NOT NULL,
    error_type        text,
    cancelled         boolean          NOT NULL,
    prompt_tokens     integer          NOT NULL,
    completion_tokens integer          NOT NULL,
    cached_tokens     integer          NOT NULL,
    tokens_estimated  boolean          NOT NULL,
    -- USD, exact. NULL: the request used tokens but no price is known for its deployment.
    cost_usd          numeric,
    latency_ms        double precision NOT NULL,
    ttft_ms           double precision,
    upstream_ms       double precision,
    overhead_ms       double precision NOT NULL,
    cache_hit         boolean          NOT NULL,
    tags              jsonb            NOT NULL DEFAULT '{}',
    -- A unique key on a partitioned table must hold the partition key; replays rely on it.
    PRIMARY KEY (request_id, ts)
) PARTITION BY RANGE (ts);

-- Rows arrive in time order, so a BRIN index on ts is tiny and still narrows scans inside a day.
CREATE INDEX ledger_requests_ts_brin ON ledger_requests USING brin (ts) WITH (pages_per_range = 32);
-- Where the admin API and dashboards filter raw rows.
CREATE INDEX ledger_requests_team_ts ON ledger_requests (team_id, ts);
CREATE INDEX ledger_requests_key_ts ON ledger_requests (key_id, ts);
CREATE INDEX ledger_requests_model_ts ON ledger_requests (requested_model, ts);

-- Kept current by the writer in the same transaction as the rows, from the rows it really
-- inserted, so a replayed batch never counts twice. '' stands for "none" (e.g. no team).
CREATE TABLE ledger_daily (
    day               date    NOT NULL,
    team_id           text    NOT NULL,
    key_id            text    NOT NULL,
    model             text    NOT NULL,
    provider          text    NOT NULL,
    requests          bigint  NOT NULL,
    errors            bigint  NOT NULL,
    prompt_tokens     bigint  NOT NULL,
    completion_tokens bigint  NOT NULL,
    cached_tokens     bigint  NOT NULL,
    estimated         bigint  NOT NULL,
    cost_usd          numeric NOT NULL,
    unpriced          bigint  NOT NULL,
    PRIMARY KEY (day, team_id, key_id, model, provider)
);
