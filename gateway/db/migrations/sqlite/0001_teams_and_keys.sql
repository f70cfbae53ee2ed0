-- Teams and their virtual keys. Times are ISO-8601 UTC text with microseconds (they sort as
-- text); money is INTEGER micro-dollars; lists and objects are JSON text.

CREATE TABLE teams (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    rpm              INTEGER CHECK (rpm > 0),
    tpm              INTEGER CHECK (tpm > 0),
    max_parallel     INTEGER CHECK (max_parallel > 0),
    budget_micro_usd INTEGER CHECK (budget_micro_usd >= 0),
    budget_period    TEXT CHECK (budget_period IN ('daily', 'weekly', 'monthly')),
    metadata         TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    created_by       TEXT NOT NULL
);

CREATE TABLE api_keys (
    id               TEXT PRIMARY KEY,
    -- A deleted team leaves its (already revoked) keys behind for the record.
    team_id          TEXT REFERENCES teams (id) ON DELETE SET NULL,
    name             TEXT NOT NULL DEFAULT '',
    prefix           TEXT NOT NULL,
    is_admin         INTEGER NOT NULL DEFAULT 0,
    -- NULL: every model the gateway serves; else a JSON array of names.
    allowed_models   TEXT,
    rpm              INTEGER CHECK (rpm > 0),
    tpm              INTEGER CHECK (tpm > 0),
    max_parallel     INTEGER CHECK (max_parallel > 0),
    budget_micro_usd INTEGER CHECK (budget_micro_usd >= 0),
    budget_period    TEXT CHECK (budget_period IN ('daily', 'weekly', 'monthly')),
    expires_at       TEXT,
    revoked_at       TEXT,
    metadata         TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    created_by       TEXT NOT NULL
);

CREATE INDEX api_keys_team_id ON api_keys (team_id);

CREATE TABLE api_key_secrets (
    key_hash   TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    prefix     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT
);

CREATE INDEX api_key_secrets_key_id ON api_key_secrets (key_id);
