-- Spend of one team, key or model over a range, as on PostgreSQL (postgres/0110): read only that
-- team's, key's or model's rollup rows, not every row of the range. (ledger_requests has had its
-- index on ts from the start here.)
CREATE INDEX ledger_daily_team_day ON ledger_daily (team_id, day);
CREATE INDEX ledger_daily_key_day ON ledger_daily (key_id, day);
CREATE INDEX ledger_daily_model_day ON ledger_daily (model, day);
