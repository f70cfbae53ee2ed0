-- A hash of what makes a request's answer (gateway/core/fingerprint.py), never the body: the
-- admin API's recommendations count exact repeats the cache would have answered from it. NULL
-- for uploads and for rows written before this column. Nullable without a default: no rewrite.
ALTER TABLE ledger_requests ADD COLUMN fingerprint text;
