-- A hash of what makes a request's answer (gateway/core/fingerprint.py), never the body; NULL
-- for uploads and for rows written before this column.
ALTER TABLE ledger_requests ADD COLUMN fingerprint TEXT;
