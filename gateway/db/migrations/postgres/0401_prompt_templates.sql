-- Prompt templates (gateway/prompts/): a template has immutable numbered versions; labels
-- (production, staging, any name) point at one version each and move in one statement.
CREATE TABLE prompt_templates (
    id          text        PRIMARY KEY,
    name        text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    created_by  text        NOT NULL
);

CREATE TABLE prompt_template_versions (
    template_id text        NOT NULL REFERENCES prompt_templates (id) ON DELETE CASCADE,
    version     integer     NOT NULL,
    messages    jsonb       NOT NULL,
    variables   jsonb       NOT NULL,
    model       text,
    params      jsonb       NOT NULL,
    note        text,
    created_at  timestamptz NOT NULL,
    created_by  text        NOT NULL,
    PRIMARY KEY (template_id, version)
);

CREATE TABLE prompt_template_labels (
    template_id      text        NOT NULL REFERENCES prompt_templates (id) ON DELETE CASCADE,
    label            text        NOT NULL,
    version          integer     NOT NULL,
    -- Where the label pointed before its last move: what a rollback returns it to.
    previous_version integer,
    updated_at       timestamptz NOT NULL,
    updated_by       text        NOT NULL,
    PRIMARY KEY (template_id, label),
    FOREIGN KEY (template_id, version) REFERENCES prompt_template_versions (template_id, version)
);

-- Which template version a request was rendered from, so spend, latency and errors compare per version.
ALTER TABLE ledger_requests ADD COLUMN template_id text;
ALTER TABLE ledger_requests ADD COLUMN template_version integer;
