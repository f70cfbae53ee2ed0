-- Teams and their virtual keys. Money is integer micro-dollars (1 USD = 1 000 000), as in the
-- SQLite schema, so both stores convert it the same way.

CREATE TABLE teams (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    rpm           INTEGER CHECK (rpm > 0),
    tpm           BIGINT CHECK (tpm > 0),
    max_parallel  INTEGER CHECK (max_parallel > 0),
    budget_micro_usd BIGINT CHECK (budget_micro_usd >= 0),
    budget_period TEXT CHECK (budget_period IN ('daily', 'weekly', 'monthly')),
    metadata      JSONB NOT NULL DEFAULT '{}',
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    created_by    TEXT NOT NULL
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    -- A deleted team leaves its (already revoked) keys behind for the record.
    team_id        TEXT REFERENCES teams (id) ON DELETE SET NULL,
    name           TEXT NOT NULL DEFAULT '',
    -- The display prefix of the current secret.
    prefix         TEXT NOT NULL,
    is_admin       BOOLEAN NOT NULL DEFAULT FALSE,
    -- NULL: every model the gateway serves.
    allowed_models TEXT[],
    rpm            INTEGER CHECK (rpm > 0),
    tpm            BIGINT CHECK (tpm > 0),
    max_parallel   INTEGER CHECK (max_parallel > 0),
    budget_micro_usd BIGINT CHECK (budget_micro_usd >= 0),
    budget_period  TEXT CHECK (budget_period IN ('daily', 'weekly', 'monthly')),
    expires_at     TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ,
    metadata       JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    created_by     TEXT NOT NULL
);

CREATE INDEX api_keys_team_id ON api_keys (team_id);

-- The hashes a key can be presented as: the current one, and after a rotation the previous
-- ones until their grace period ends (expires_at).
CREATE TABLE api_key_secrets (
    key_hash   TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    prefix     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ
);

CREATE INDEX api_key_secrets_key_id ON api_key_secrets (key_id);
