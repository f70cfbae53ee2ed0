-- Indexes for what the admin API and UI read, measured at 50 million rows over 30 days
-- (loadtests/bench_ledger_scale.py, loadtests/results/ledger-scale-*.md).
--
-- The newest rows of a day (the UI's latency sample: ORDER BY ts DESC, request_id DESC LIMIT
-- 1000, no other filter) sorted a whole day's partition without a btree on ts; the BRIN index it
-- replaces could narrow a range but not give the order. Rows arrive in time order, so this index
-- only ever grows at its right edge.
CREATE INDEX ledger_requests_ts ON ledger_requests (ts);
DROP INDEX ledger_requests_ts_brin;

-- Spend of one team, key or model over a range read every rollup row of the range (the primary
-- key leads with the day); with these it reads only that team's, key's or model's.
CREATE INDEX ledger_daily_team_day ON ledger_daily (team_id, day);
CREATE INDEX ledger_daily_key_day ON ledger_daily (key_id, day);
CREATE INDEX ledger_daily_model_day ON ledger_daily (model, day);
