-- Stored responses of the Responses API (gateway/dialects/responses/store.py): what
-- `previous_response_id`, `GET /v1/responses/{id}`, its `input_items` and `DELETE` read.
-- `owner` is 'team:<id>' or 'key:<id>': only that team's keys (or that key, when it has no team)
-- see a row. Rows past `expires_at` are invisible and swept by `gateway db maintain`.

CREATE TABLE responses (
    id                   text        PRIMARY KEY,
    owner                text        NOT NULL,
    team_id              text,
    key_id               text        NOT NULL,
    model                text        NOT NULL,
    -- The deployment that answered, and its own id for the response when it speaks the Responses
    -- API natively: a next turn on the same deployment may send that instead of the history.
    deployment           text,
    upstream_id          text,
    previous_response_id text,
    input_items          jsonb       NOT NULL,
    response             jsonb       NOT NULL,
    created_at           timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL
);

CREATE INDEX responses_expires_at ON responses (expires_at);
