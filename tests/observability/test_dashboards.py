"""The dashboards and alert rules name only metrics the gateway exports, and the JSON is what the script builds."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from gateway.observability.metrics import GatewayMetrics, exported_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RULES = sorted((DEPLOY / "prometheus").glob("*.yml"))

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions, keywords,
    label names (inside braces or grouping clauses), durations or Grafana variables."""
    expr = _STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = _GROUPING.sub(" ", expr)
    expr = re.sub(r"\$\{?\w+\}?", " ", expr)
    names = set()
    for match in _IDENT.finditer(expr):
        before = expr[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":
            continue  # the exponent of a number such as 1e3
        if expr[match.end() :].lstrip().startswith("(") or match.group() in KEYWORDS:
            continue
        names.add(match.group())
    return names


def test_the_extractor_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, model) (rate(a_bucket{model=~"$model", x="b_total"}[5m]))) '
        "/ on (team) group_left (team) max(c_usd offset 1h) * 1e3 > bool $threshold and d:recorded"
    )
    assert metric_names(expr) == {"a_bucket", "c_usd", "d:recorded"}
    assert metric_names("label_values(llm_x_total, team)") == {"llm_x_total", "team"}  # see `_queries`


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def _queries(dashboard: dict[str, Any]) -> Iterator[str]:
    """The PromQL of the template variables' `label_values(metric, label)` and `query_result(expr)` queries."""
    for variable in dashboard["templating"]["list"]:
        if variable.get("type") == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query) or re.fullmatch(r"query_result\((.+)\)", query)
            assert match, query
            yield match.group(1)


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_names(GatewayMetrics(CollectorRegistry(), key_labels=True))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_reference_only_exported_metrics(path: Path, exported: set[str]) -> None:
    dashboard = json.loads(path.read_text())
    exprs = [*_exprs(dashboard["panels"]), *_queries(dashboard)]
    names = set().union(*(metric_names(e) for e in exprs))
    assert len(exprs) >= 10 and names
    assert names <= exported, f"not exported: {sorted(names - exported)}"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_alert_rules_reference_only_exported_metrics(path: Path, exported: set[str]) -> None:
    rules = [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]
    assert rules
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        # `up` is Prometheus's own: whether the scrape of the gateway worked.
        assert names <= exported | {"up"}, f"{rule['alert']}: not exported: {sorted(names - exported)}"
        assert rule["labels"]["severity"] in {"warning", "critical"}


def test_the_dashboards_cover_cost_traffic_and_reliability() -> None:
    titles = {json.loads(p.read_text())["uid"]: p for p in DASHBOARDS}
    assert set(titles) == {"llm-gateway-cost", "llm-gateway-traffic", "llm-gateway-reliability"}


def test_the_json_is_what_the_script_builds() -> None:
    spec = importlib.util.spec_from_file_location("build_dashboards", DEPLOY / "grafana" / "build_dashboards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, build in module.DASHBOARDS.items():
        for folder in (DEPLOY / "grafana" / "dashboards", DEPLOY / "helm" / "llm-gateway" / "files" / "dashboards"):
            assert (folder / name).read_text() == module.render(build), (
                f"{folder / name} differs: run python deploy/grafana/build_dashboards.py"
            )


def panel_exprs() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                yield f"{path.name} / {panel['title']}", target["expr"]


_TOKENS = re.compile(r"llm_gateway_tokens_total(\{[^}]*\})?")
_RATIO = re.compile(r"sum\(rate\(\w+(\{[^}]*\})?\[[^\]]*\]\)\) / sum\(rate\(\w+(\{[^}]*\})?\[[^\]]*\]\)\)")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def test_token_totals_leave_out_cached_prompt_which_prompt_already_counts() -> None:
    sums = [(name, expr) for name, expr in panel_exprs() if _TOKENS.search(expr) and "by (type)" not in expr]
    assert sums, "the cost dashboard sums tokens"
    for name, expr in sums:
        for selector in _TOKENS.finditer(expr):
            assert 'type!="cached_prompt"' in (selector.group(1) or ""), f"{name} counts cached prompt tokens twice"


def _scope(selector: str | None) -> set[tuple[str, str, str]]:
    """The matchers on the dashboards' variables (team, model): what a ratio's halves must share."""
    return {m for m in _MATCHER.findall(selector or "") if m[0] in ("team", "model")}


def test_a_ratio_filters_its_numerator_and_its_denominator_alike() -> None:
    ratios = [(name, _RATIO.fullmatch(expr)) for name, expr in panel_exprs() if _RATIO.fullmatch(expr)]
    assert len(ratios) >= 5, "the ratio panels (errors, 5xx, retries, cache hits, streamed share)"
    for name, match in ratios:
        assert match is not None
        assert _scope(match.group(1)) == _scope(match.group(2)), f"{name}: {match.group(0)}"
