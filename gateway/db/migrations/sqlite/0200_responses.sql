-- Stored responses of the Responses API, as on PostgreSQL (see postgres/0200_responses.sql).
-- Times are ISO-8601 UTC text with microseconds, so they compare as text; JSON is text.

CREATE TABLE responses (
    id                   TEXT PRIMARY KEY,
    owner                TEXT NOT NULL,
    team_id              TEXT,
    key_id               TEXT NOT NULL,
    model                TEXT NOT NULL,
    deployment           TEXT,
    upstream_id          TEXT,
    previous_response_id TEXT,
    input_items          TEXT NOT NULL,
    response             TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    expires_at           TEXT NOT NULL
);

CREATE INDEX responses_expires_at ON responses (expires_at);
