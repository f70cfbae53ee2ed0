-- Prompt templates (gateway/prompts/): immutable numbered versions, and labels that point at one.
CREATE TABLE prompt_templates (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
);

CREATE TABLE prompt_template_versions (
    template_id TEXT    NOT NULL REFERENCES prompt_templates (id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    messages    TEXT    NOT NULL,
    variables   TEXT    NOT NULL,
    model       TEXT,
    params      TEXT    NOT NULL,
    note        TEXT,
    created_at  TEXT    NOT NULL,
    created_by  TEXT    NOT NULL,
    PRIMARY KEY (template_id, version)
);

CREATE TABLE prompt_template_labels (
    template_id      TEXT    NOT NULL REFERENCES prompt_templates (id) ON DELETE CASCADE,
    label            TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    previous_version INTEGER,
    updated_at       TEXT    NOT NULL,
    updated_by       TEXT    NOT NULL,
    PRIMARY KEY (template_id, label),
    FOREIGN KEY (template_id, version) REFERENCES prompt_template_versions (template_id, version)
);

ALTER TABLE ledger_requests ADD COLUMN template_id TEXT;
ALTER TABLE ledger_requests ADD COLUMN template_version INTEGER;
