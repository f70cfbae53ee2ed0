-- One row for every change made through the admin API, written in the change's transaction.

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    details     JSONB NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_target ON audit_log (target_type, target_id, id);
