"""Writes the Grafana dashboards in deploy/grafana/dashboards/ from the panel lists below.

    python deploy/grafana/build_dashboards.py

The JSON files are committed (Grafana provisions them from disk); a test checks that they match
this script and that every metric their PromQL names is one the gateway exports. Edit here, not
in the JSON. The Helm chart can only read files inside itself, so the script also copies the
dashboards and the alert rules (deploy/prometheus/llm-gateway.rules.yml) into its files/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DEPLOY = OUT.parents[1]
RULES = DEPLOY / "prometheus" / "llm-gateway.rules.yml"
CHART_FILES = DEPLOY / "helm" / "llm-gateway" / "files"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
SEL = 'team=~"$team", model=~"$model"'
MODEL_SEL = 'model=~"$model"'

Panel = dict[str, Any]


def _target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def panel(kind: str, title: str, targets: list[tuple[str, str]], unit: str = "short", w: int = 12, h: int = 8,
          description: str = "", **options: Any) -> Panel:  # fmt: skip
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": options,
        "targets": [_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)],
    }


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}, "panels": []}


def quantiles(metric: str, selector: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    prefix = "{{" + by + "}} " if by else ""
    return [
        (f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{selector}}}[{RATE}])))", f"{prefix}p{p}")
        for q, p in ((0.5, "50"), (0.95, "95"), (0.99, "99"))
    ]


def variable(name: str, metric: str, label: str) -> dict[str, Any]:
    return _query_variable(name, label, f"label_values({metric}, {label})")


def _query_variable(name: str, label: str, query: str, regex: str = "") -> dict[str, Any]:
    return {
        "name": name, "label": label, "type": "query", "datasource": DS, "query": {"query": query, "refId": name},
        "definition": query, "regex": regex, "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
        "current": {"text": "All", "value": "$__all"},
    }  # fmt: skip


# Team names (llm_gateway_team_info, read from the key store): series stay labelled by team id,
# names are joined on for legends. One name per team even if replicas briefly disagree after a rename.
TEAM_INFO = "topk by (team) (1, llm_gateway_team_info)"


def named(expr: str) -> str:
    """`expr` (labelled by `team`) with each team's `team_name` beside its id; a team the key store
    no longer knows (deleted) keeps its series, with its id for a name."""
    return (f"({expr}) * on (team) group_left (team_name) {TEAM_INFO}"
            f' or on (team) label_replace({expr}, "team_name", "$1", "team", "(.*)")')


TEAM_LEGEND = "{{team_name}}"


def team_variable() -> dict[str, Any]:
    """Picks teams by name, filters by id: `text` and `value` of each option come from the info series."""
    return _query_variable("team", "team", "query_result(group by (team, team_name) (llm_gateway_team_info))",
                           regex='/team="(?<value>[^"]*)".*team_name="(?<text>[^"]*)"/')


def dashboard(uid: str, title: str, panels: list[Panel], variables: list[dict[str, Any]]) -> dict[str, Any]:
    x = y = line = 0  # left to right, then down by the tallest panel of the line
    for i, p in enumerate(panels):
        p["id"] = i + 1
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            x, y, line = 0, y + line, 0
        p["gridPos"].update({"x": x, "y": y})
        if p["type"] == "row":
            y += h
            continue
        x, line = x + w, max(line, h)
    datasource = {
        "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
        "current": {"text": "Prometheus", "value": "prometheus"},
    }  # fmt: skip
    return {
        "uid": uid, "title": title, "tags": ["llm-gateway"], "timezone": "utc", "schemaVersion": 39, "version": 1,
        "editable": True, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [datasource, *variables]}, "annotations": {"list": []}, "panels": panels,
    }  # fmt: skip


COST_RATE = f"rate(llm_gateway_cost_usd_total{{{SEL}}}[{RATE}])"
# Budget gauges move only when a budgeted request arrives: a period that ended keeps the last
# spend until the next request, so gauges past their period's end are left out (as in the alerts).
CURRENT = "unless llm_gateway_team_budget_period_end_timestamp_seconds <= time()"
SPENT = f'max by (team) (llm_gateway_team_budget_spent_usd{{team=~"$team"}} {CURRENT})'
REMAINING = f'max by (team) (llm_gateway_team_budget_remaining_usd{{team=~"$team"}} {CURRENT})'
LIMIT = 'max by (team) (llm_gateway_team_budget_limit_usd{team=~"$team"})'
PERIOD_END = 'max by (team) (llm_gateway_team_budget_period_end_timestamp_seconds{team=~"$team"})'
PERIOD_START = 'max by (team) (llm_gateway_team_budget_period_start_timestamp_seconds{team=~"$team"})'
TEAM_BURN_6H = 'sum by (team) (rate(llm_gateway_cost_usd_total{team=~"$team"}[6h]))'
FORECAST = f"{SPENT} + {TEAM_BURN_6H} * clamp_min({PERIOD_END} - time(), 0)"
# `cached_prompt` tokens are part of `prompt`: a total counts prompt and completion only.
TOKENS = f'llm_gateway_tokens_total{{type!="cached_prompt", {SEL}}}'
# Complexity models (gateway/routing/complexity.py): spend as routed, and the same tokens at the top tier's price.
TIER_COST = f"llm_gateway_complexity_cost_usd_total{{{MODEL_SEL}}}"
TOP_TIER_COST = f"llm_gateway_complexity_top_tier_cost_usd_total{{{MODEL_SEL}}}"


def cost() -> dict[str, Any]:
    panels = [
        row("Spend"),
        panel("stat", "Spend in range", [(f"sum(increase(llm_gateway_cost_usd_total{{{SEL}}}[$__range]))", "")],
              "currencyUSD", w=6),
        panel("stat", "Spend rate now", [(f"sum({COST_RATE}) * 3600", "")], "currencyUSD", w=6,
              description="US dollars per hour."),
        panel("stat", "Unpriced requests in range",
              [(f"sum(increase(llm_gateway_unpriced_requests_total{{{MODEL_SEL}}}[$__range]))", "")], w=6,
              description="Requests with usage but no known price: their cost is missing from these panels."),
        panel("stat", "Tokens in range", [(f"sum(increase({TOKENS}[$__range]))", "")], w=6,
              description="Prompt and completion tokens (cached prompt tokens are part of prompt)."),
        panel("timeseries", "Spend rate by team ($/h)", [(named(f"sum by (team) ({COST_RATE}) * 3600"), TEAM_LEGEND)],
              "currencyUSD"),
        panel("timeseries", "Spend rate by model ($/h)", [(f"sum by (model) ({COST_RATE}) * 3600", "{{model}}")],
              "currencyUSD"),
        panel("bargauge", "Spend by team in range",
              [(f"sort_desc({named(f'sum by (team) (increase(llm_gateway_cost_usd_total{{{SEL}}}[$__range]))')})",
                TEAM_LEGEND)], "currencyUSD", displayMode="gradient", orientation="horizontal"),
        panel("bargauge", "Spend by model in range",
              [(f"sort_desc(sum by (model) (increase(llm_gateway_cost_usd_total{{{SEL}}}[$__range])))", "{{model}}")],
              "currencyUSD", displayMode="gradient", orientation="horizontal"),
        panel("timeseries", "Complexity models: requests by tier (per s)",
              [(f"sum by (model, tier) (rate(llm_gateway_complexity_requests_total{{{MODEL_SEL}}}[{RATE}]))",
                "{{model}} {{tier}}")],
              description="Requests to a `complexity` model, by the tier its score chose."),
        panel("bargauge", "Complexity models: spend by tier in range",
              [(f"sort_desc(sum by (model, tier) (increase({TIER_COST}[$__range])))", "{{model}} {{tier}}")],
              "currencyUSD", displayMode="gradient", orientation="horizontal"),
        panel("bargauge", "Complexity models: spend against all on the top tier, in range",
              [(f"sum by (model) (increase({TIER_COST}[$__range]))", "{{model}} as routed"),
               (f"sum by (model) (increase({TOP_TIER_COST}[$__range]))", "{{model}} all on the top tier")],
              "currencyUSD", displayMode="gradient", orientation="horizontal",
              description="What the requests cost as routed, and what the same tokens would have cost at the top "
                          "tier's price (an estimate: a stronger model may write more, or fewer, tokens). Both count "
                          "only requests whose cost is known."),
        panel("stat", "Complexity models: saved by routing in range",
              [(f"1 - sum by (model) (increase({TIER_COST}[$__range])) / "
                f"sum by (model) (increase({TOP_TIER_COST}[$__range]))", "{{model}}")], "percentunit",
              description="The share of the all-on-the-top-tier cost that routing by complexity did not spend."),
        row("Budgets (teams with a budget)"),
        panel("bargauge", "Budget used this period", [(named(f"100 * {SPENT} / {LIMIT}"), TEAM_LEGEND)], "percent",
              displayMode="lcd", orientation="horizontal", min=0, max=100),
        panel("bargauge", "Forecast at period end (% of budget)",
              [(named(f"100 * ({FORECAST}) / {LIMIT}"), TEAM_LEGEND)], "percent",
              description="Spent so far plus the last 6 hours' rate until the period ends.",
              displayMode="lcd", orientation="horizontal", min=0, max=150),
        panel("timeseries", "Burn rate against budget",
              [(named(f"{TEAM_BURN_6H} / ({LIMIT} / ({PERIOD_END} - {PERIOD_START}))"), TEAM_LEGEND)], "none",
              description="1 spends the budget exactly over the period; above 1 runs out before its end."),
        panel("timeseries", "Forecast spend at period end ($)",
              [(named(FORECAST), TEAM_LEGEND + " forecast"), (named(LIMIT), TEAM_LEGEND + " budget")], "currencyUSD"),
        panel("table", "Remaining budget", [(named(REMAINING), TEAM_LEGEND)], "currencyUSD", w=24),
        row("Tokens"),
        panel("timeseries", "Tokens per second by type",
              [(f"sum by (type) (rate(llm_gateway_tokens_total{{{SEL}}}[{RATE}]))", "{{type}}")],
              description="cached_prompt is the part of prompt the provider served from its cache."),
        panel("timeseries", "Tokens per second by model",
              [(f"sum by (model) (rate({TOKENS}[{RATE}]))", "{{model}}")],
              description="Prompt and completion tokens (cached prompt tokens are part of prompt)."),
    ]  # fmt: skip
    variables = [team_variable(), variable("model", "llm_gateway_cost_usd_total", "model")]
    return dashboard("llm-gateway-cost", "LLM gateway · cost", panels, variables)


def traffic() -> dict[str, Any]:
    req = f"llm_gateway_requests_total{{{SEL}}}"
    panels = [
        row("Traffic"),
        panel("stat", "Requests per second", [(f"sum(rate({req}[{RATE}]))", "")], "reqps", w=6),
        panel("stat", "In flight", [("sum(llm_gateway_inflight_requests)", "")], w=6),
        panel("stat", "Workers", [("sum(llm_gateway_workers)", "")], w=6),
        panel("stat", "Streamed share", [(f'sum(rate(llm_gateway_requests_total{{stream="true", {SEL}}}[{RATE}]))'
                                          f" / sum(rate({req}[{RATE}]))", "")], "percentunit", w=6),
        panel("timeseries", "Requests per second by model", [(f"sum by (model) (rate({req}[{RATE}]))", "{{model}}")],
              "reqps"),
        panel("timeseries", "Requests per second by status class",
              [(f"sum by (status_class) (rate({req}[{RATE}]))", "{{status_class}}")], "reqps"),
        panel("timeseries", "Requests per second by team",
              [(named(f"sum by (team) (rate({req}[{RATE}]))"), TEAM_LEGEND)], "reqps"),
        panel("timeseries", "Requests per second by provider",
              [(f"sum by (provider) (rate({req}[{RATE}]))", "{{provider}}")], "reqps"),
        row("Latency"),
        panel("timeseries", "Request duration", quantiles("llm_gateway_request_duration_seconds", MODEL_SEL), "s",
              description="From arrival to the last byte, streams included."),
        panel("timeseries", "Time to first token (streams)",
              quantiles("llm_gateway_time_to_first_token_seconds", MODEL_SEL), "s"),
        panel("timeseries", "Upstream latency", quantiles("llm_gateway_upstream_latency_seconds", MODEL_SEL), "s",
              description="The serving attempt: whole response (unary) or first chunk (streams)."),
        panel("timeseries", "Added by the gateway", quantiles("llm_gateway_overhead_seconds", 'route=~".*"'), "s",
              description="Time outside the upstream call, for requests served in one attempt."),
        panel("timeseries", "p95 request duration by model",
              quantiles("llm_gateway_request_duration_seconds", MODEL_SEL, by="model")[1:2], "s"),
        panel("timeseries", "p95 time to first token by model",
              quantiles("llm_gateway_time_to_first_token_seconds", MODEL_SEL, by="model")[1:2], "s"),
    ]  # fmt: skip
    variables = [team_variable(), variable("model", "llm_gateway_requests_total", "model")]
    return dashboard("llm-gateway-traffic", "LLM gateway · traffic and latency", panels, variables)


def reliability() -> dict[str, Any]:
    err = f"llm_gateway_errors_total{{{MODEL_SEL}}}"
    req = f"llm_gateway_requests_total{{{MODEL_SEL}}}"
    panels = [
        row("Errors"),
        panel("stat", "Error ratio", [(f"sum(rate({err}[{RATE}])) / sum(rate({req}[{RATE}]))", "")], "percentunit",
              w=8),
        panel("stat", "5xx ratio", [(f'sum(rate(llm_gateway_requests_total{{status_class="5xx", {MODEL_SEL}}}[{RATE}]))'
                                     f" / sum(rate({req}[{RATE}]))", "")], "percentunit", w=8),
        panel("stat", "Retries per request",
              [(f"sum(rate(llm_gateway_retries_total[{RATE}])) / sum(rate(llm_gateway_requests_total[{RATE}]))", "")],
              "none", w=8, description="All models: retries are counted by deployment, not by model."),
        panel("timeseries", "Errors per second by status and type",
              [(f"sum by (status, type) (rate({err}[{RATE}]))", "{{status}} {{type}}")], "reqps"),
        panel("timeseries", "Errors per second by model", [(f"sum by (model) (rate({err}[{RATE}]))", "{{model}}")],
              "reqps"),
        row("Routing"),
        panel("timeseries", "Retries by deployment",
              [(f"sum by (deployment) (rate(llm_gateway_retries_total[{RATE}]))", "{{deployment}}")], "reqps"),
        panel("timeseries", "Fallbacks by model asked for",
              [(f"sum by (model) (rate(llm_gateway_fallbacks_total{{{MODEL_SEL}}}[{RATE}]))", "{{model}}")], "reqps"),
        panel("state-timeline", "Circuit state by deployment (0 closed, 1 half-open, 2 open)",
              [("max by (deployment) (llm_gateway_circuit_state)", "{{deployment}}")]),
        panel("timeseries", "Circuit transitions",
              [(f"sum by (deployment, state) (increase(llm_gateway_circuit_transitions_total[{RATE}]))",
                "{{deployment}} {{state}}")]),
        row("Limits, ledger, alerts, cache"),
        panel("timeseries", "Limit rejections by kind",
              [(f"sum by (kind) (rate(llm_gateway_limit_rejections_total[{RATE}]))", "{{kind}}")], "reqps"),
        panel("timeseries", "Limiter store: down, and requests checked without it",
              [("max(llm_gateway_limiter_store_down)", "store down"),
               (f"sum by (outcome) (rate(llm_gateway_limiter_backend_errors_total[{RATE}]))", "{{outcome}}")]),
        panel("timeseries", "Ledger queue depth", [("sum(llm_gateway_ledger_queue_depth)", "rows waiting")]),
        panel("timeseries", "Ledger rows",
              [(f"sum(rate(llm_gateway_ledger_written_rows_total[{RATE}]))", "written"),
               (f"sum(rate(llm_gateway_ledger_spilled_rows_total[{RATE}]))", "spilled"),
               (f"sum(rate(llm_gateway_ledger_replayed_rows_total[{RATE}]))", "replayed"),
               (f"sum(rate(llm_gateway_ledger_rejected_rows_total[{RATE}]))", "rejected (set aside)"),
               (f"sum(rate(llm_gateway_ledger_lost_rows_total[{RATE}]))", "lost")], "rowsps"),
        panel("timeseries", "Budget alert deliveries",
              [(f"sum by (outcome) (increase(llm_gateway_budget_alert_deliveries_total[{RATE}]))", "{{outcome}}")]),
        panel("timeseries", "Plugin failures",
              [(f"sum by (plugin, hook) (increase(llm_gateway_plugin_failures_total[{RATE}]))",
                "{{plugin}} {{hook}}")]),
        panel("timeseries", "Guardrail decisions",
              [(f"sum by (plugin, kind, action) (rate(llm_gateway_guardrail_decisions_total[{RATE}]))",
                "{{plugin}} {{kind}} {{action}}")], "reqps"),
        panel("timeseries", "Cache hit ratio",
              [(f'sum(rate(llm_gateway_cache_lookups_total{{result="hit", {MODEL_SEL}}}[{RATE}]))'
                f" / sum(rate(llm_gateway_cache_lookups_total{{{MODEL_SEL}}}[{RATE}]))", "hit ratio")],
              "percentunit"),
    ]  # fmt: skip
    variables = [variable("model", "llm_gateway_requests_total", "model")]
    return dashboard("llm-gateway-reliability", "LLM gateway · reliability", panels, variables)


DASHBOARDS = {"llm-gateway-cost.json": cost, "llm-gateway-traffic.json": traffic,
              "llm-gateway-reliability.json": reliability}  # fmt: skip


def render(build: Any) -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> None:
    for folder in (OUT, CHART_FILES / "dashboards"):
        folder.mkdir(parents=True, exist_ok=True)
        for name, build in DASHBOARDS.items():
            (folder / name).write_text(render(build))
            print(f"wrote {folder / name}")
    (CHART_FILES / RULES.name).write_text(RULES.read_text())
    print(f"wrote {CHART_FILES / RULES.name}")


if __name__ == "__main__":
    main()
