-- The per-day rollup without the key: what spend reports read when they neither filter nor group
-- by key (the admin UI's overview: totals, by day, by team, by model over the month).
--
-- ledger_daily holds a row per day for every key and model that were used: at 2,000 keys using
-- three models each that is ~180,000 rows a month, and a month-wide report read all of them
-- (200-700 ms on the shared test machine, loadtests/results/ledger-scale-*.md). Without the key
-- a day has a row per team, model and provider in use, a few times fewer and narrower. The writer
-- keeps both in the same transaction as the rows (gateway/accounting/ledger/postgres.py). SQLite,
-- the embedded default for small deployments, keeps reading ledger_daily alone.
CREATE TABLE ledger_daily_teams (
    day               date    NOT NULL,
    team_id           text    NOT NULL,
    model             text    NOT NULL,
    provider          text    NOT NULL,
    requests          bigint  NOT NULL,
    errors            bigint  NOT NULL,
    prompt_tokens     bigint  NOT NULL,
    completion_tokens bigint  NOT NULL,
    cached_tokens     bigint  NOT NULL,
    estimated         bigint  NOT NULL,
    cost_usd          numeric NOT NULL,
    unpriced          bigint  NOT NULL,
    PRIMARY KEY (day, team_id, model, provider)
);
CREATE INDEX ledger_daily_teams_team_day ON ledger_daily_teams (team_id, day);
CREATE INDEX ledger_daily_teams_model_day ON ledger_daily_teams (model, day);

INSERT INTO ledger_daily_teams
SELECT day, team_id, model, provider, sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens),
       sum(cached_tokens), sum(estimated), sum(cost_usd), sum(unpriced)
FROM ledger_daily GROUP BY day, team_id, model, provider;
