-- A `complexity` model's tier and score per request (gateway/routing/complexity.py): what the
-- admin API's spend by tier reads. NULL on every request to another model. Adding nullable
-- columns without a default rewrites nothing, on the parent and on every day partition.
ALTER TABLE ledger_requests ADD COLUMN complexity_tier text;
ALTER TABLE ledger_requests ADD COLUMN complexity_score double precision;
