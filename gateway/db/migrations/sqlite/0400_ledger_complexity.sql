-- A `complexity` model's tier and score per request (gateway/routing/complexity.py); NULL otherwise.
ALTER TABLE ledger_requests ADD COLUMN complexity_tier TEXT;
ALTER TABLE ledger_requests ADD COLUMN complexity_score REAL;
