"""Every dashboard panel and every alert rule, run by a real Prometheus against real gateways.

Two gateways (real processes) in front of fake upstreams, and one target where nothing listens:

- A, two workers (multiprocess metrics), on the shared Redis: a team with a small budget, keys
  with limits, guardrails, the response cache, a semantic cache whose embedding model is slow,
  a third-party plugin that fails (skipped), deployments that refuse connections (retries, a
  fallback, open circuits, 5xx), a model with no price, a slow streaming model, a dead budget
  webhook, a ledger whose queue is tiny (rows spill, then replay) and whose database refuses
  the rows of one marked request (a trigger), so they are set aside;
- B, one worker, whose Redis is not there (limits fail open, the limiter store is down) and
  whose spill directory is a file (ledger rows are lost);
- C, a port with nothing behind it (a gateway that is down).

A Prometheus of our own scrapes them every second with the metrics token and evaluates a test
copy of deploy/prometheus/llm-gateway.rules.yml whose `for:` durations are 0s (the expressions are
the shipped ones). Two waves of scripted traffic, a few seconds apart, so counters that appear in
the first wave grow in the second. Then every panel's queries (deploy/grafana/dashboards/*.json,
Grafana's variables set to "All") and every rule (as a signal: its comparisons in `bool` form)
must return data over the run, every panel query a value other than zero, every alert the script
provokes must be firing; last, the targets are removed and the "absent" alert must fire.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis
import yaml

from tests.deploy.code import REPO
from tests.deploy.prometheus import Prometheus, as_signal, has_values
from tests.observability.scrape import scrape
from tests.plugins.conftest import sample_site  # noqa: F401  (the fixture: the sample plugin, pip-installed)
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment, free_port

TOKEN = "metrics-token-prometheus-test"
SHARED_REDIS = os.environ.get("GATEWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")
TEAM_NAME = "Research Lab"
# Grafana's variables, as a dashboard with "All" selected and the run as its time range would set them.
RATE_INTERVAL = "15s"
STEP_S = 1.0
# Waits that bound a failure, not a speed: on a busy machine two gateways start slowly.
START_S = 90.0
ADMIN = {"Authorization": f"Bearer {MASTER_KEY}"}
DASHBOARDS = sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULES = REPO / "deploy" / "prometheus" / "llm-gateway.rules.yml"

# Alerts the script does not provoke, and why; every other alert must be firing.
NOT_PROVOKED = {
    "LLMGatewaySlowRequests": "its p95 must exceed 60 s: requests longer than this whole test may take",
}
# Rules whose expression has no data while gateways are scraped, and why (checked separately).
NO_DATA_WHILE_SCRAPED = {
    "LLMGatewayAbsent": "absent() returns a series only when no gateway target exists: checked last, "
    "after the targets are removed",
}
# Panel queries that may have no data, or only zeros, in a scripted run, and why. None so far:
# the script provokes whatever each panel shows.
MAY_BE_EMPTY: dict[str, str] = {}


@dataclass
class Run:
    prom: Prometheus
    config: dict[str, Any]
    start: float
    end: float = 0.0
    team_id: str = ""
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    report: list[str] = field(default_factory=list)


def models(fast: FakeUpstream, slow_embed: FakeUpstream, slow_stream: FakeUpstream, dead: str) -> list[dict[str, Any]]:
    price = {"input_per_mtok": "1000", "output_per_mtok": "1000"}  # about $0.02 a request

    def refused() -> dict[str, Any]:
        return {"provider": "openai", "base_url": dead, "model": "fake-gpt"}

    return [
        {"name": "chat", "deployments": [deployment(fast, price=price)]},
        {"name": "embed", "deployments": [deployment(slow_embed, model="fake-embedding",
                                                     price={"input_per_mtok": "1", "output_per_mtok": "0"})]},
        {"name": "slow", "deployments": [deployment(slow_stream, price=price)]},
        {"name": "flaky", "deployments": [refused(), deployment(fast, price=price)]},
        {"name": "broken", "deployments": [refused()], "fallbacks": ["chat"]},
        {"name": "down", "deployments": [refused()]},
        {"name": "unpriced", "deployments": [deployment(fast, model="fake-model-with-no-price")]},
        # A complexity model (gateway/routing/complexity.py): its tier panels need a request or two, and
        # a top tier dearer than the one they go to, or the saving panel shows zero.
        {"name": "premium", "deployments": [deployment(fast, price={k: "4000" for k in price})]},
        {"name": "tiered", "complexity": {"tiers": [{"name": "small", "model": "chat", "max_score": 0.5},
                                                    {"name": "large", "model": "premium"}]}},
    ]  # fmt: skip


PLUGINS = {
    "on_failure": "error",
    "global": [
        # A third-party plugin (examples/sample_plugin) that raises on every request, skipped.
        {"name": "stamp", "id": "stamp-broken", "config": {"fail_in": "before"}, "on_failure": "skip"},
        {"name": "content", "config": {"deny": ["forbidden-topic"], "input": "refuse"}},
        {"name": "pii", "config": {"mode": "mask"}},
        {"name": "cache", "config": {"opt_in": "header"}},
        # Its embeddings come from the slow `embed` model: the time the gateway adds goes up.
        {"name": "semantic_cache", "config": {"embedding_model": "embed", "threshold": 0.999}},
    ],
}
# Circuits stay open for the whole run; a request whose deployments are all open fails at once
# (its deadline ends before their cooldown) instead of waiting for them.
ROUTING = {"retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "deadline_s": 20,
           "breaker": {"failures": 3, "min_requests": 3, "window_s": 60, "cooldown_s": 600}}  # fmt: skip


def prometheus_config(rules: Path, targets: list[str]) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{
            "job_name": "llm-gateway", "metrics_path": "/metrics",
            "authorization": {"type": "Bearer", "credentials": TOKEN},
            "static_configs": [{"targets": targets}] if targets else [],
        }],
    }  # fmt: skip


def rules_for_the_run(tmp: Path) -> Path:
    """The shipped rules with every `for:` at 0s: the script's run is shorter than their durations."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    path = tmp / "rules.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def create(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{base}/admin/api{path}", json=body, headers=ADMIN, timeout=10)
    assert response.status_code == 201, response.text
    return dict(response.json())


class Traffic:
    """The scripted requests; each kind's statuses are kept to check the script did what it says."""

    def __init__(self, a: Gateway, b: Gateway, keys: dict[str, str]) -> None:
        self.a, self.b, self.keys = a, b, keys
        self.statuses: dict[str, Counter[int]] = {}
        self.cache_hits = 0

    def client(self, gw: Gateway, key: str = MASTER_KEY) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=gw.url, api_key=key, max_retries=0, timeout=30)

    async def chat(
        self, kind: str, gw: Gateway, model: str, *, key: str = MASTER_KEY, stream: bool = False,
        text: str | None = None, headers: dict[str, str] | None = None, user: str | None = None,
    ) -> None:  # fmt: skip
        client = self.client(gw, key)
        content = text if text is not None else f"say something about {uuid.uuid4().hex}"
        extra: dict[str, Any] = {"user": user} if user else {}
        try:
            if stream:
                chunks = await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": content}], stream=True,
                    stream_options={"include_usage": True}, extra_headers=headers, **extra,
                )  # fmt: skip
                async for _ in chunks:
                    pass
                status = 200
            else:
                raw = await client.chat.completions.with_raw_response.create(
                    model=model, messages=[{"role": "user", "content": content}], extra_headers=headers, **extra
                )
                status = raw.status_code
                self.cache_hits += raw.headers.get("x-gateway-cache") == "hit"
        except openai.APIStatusError as exc:
            status = exc.status_code
        finally:
            await client.close()
        self.statuses.setdefault(kind, Counter())[status] += 1

    async def wave(self) -> None:
        a, b, keys = self.a, self.b, self.keys
        calls = [self.chat("chat", a, "chat") for _ in range(16)]
        calls += [self.chat("chat-stream", a, "chat", stream=True) for _ in range(8)]
        calls += [self.chat("flaky", a, "flaky") for _ in range(5)]
        calls += [self.chat("broken", a, "broken") for _ in range(5)]
        calls += [self.chat("down", a, "down") for _ in range(30)]
        calls += [self.chat("unpriced", a, "unpriced") for _ in range(3)]
        calls += [self.chat("tiered", a, "tiered") for _ in range(3)]
        calls += [self.chat("content-refused", a, "chat", text="tell me about the forbidden-topic") for _ in range(3)]
        calls += [self.chat("pii-masked", a, "chat", text=f"mail me at ann{i}@example.com") for i in range(3)]
        calls += [self.chat("rpm", a, "chat", key=keys["rpm"]) for _ in range(3)]
        calls += [self.chat("limits-store-down", b, "limited") for _ in range(6)]
        gate = asyncio.Semaphore(8)

        async def bounded(call: Any) -> None:
            async with gate:
                await call

        # The cache: one miss that stores, then hits, after it.
        question = f"the same question {uuid.uuid4().hex}"
        await self.chat("cache", a, "chat", text=question, headers={"x-gateway-cache": "use"})
        calls += [self.chat("cache", a, "chat", text=question, headers={"x-gateway-cache": "use"}) for _ in range(3)]
        await asyncio.gather(*(bounded(call) for call in calls))
        # The budgeted team, a request at a time, so the gauges are scraped on the way up.
        for _ in range(4):
            await self.chat("budget", a, "chat", key=keys["research"])
            await asyncio.sleep(0.4)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, sample_site: Path) -> Iterator[Run]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("prometheus-live")
    fast = FakeUpstream()
    slow_embed = FakeUpstream("--latency-ms", "70")
    slow_stream = FakeUpstream("--ttft-ms", "5500")
    prefix = "pm" + secrets.token_hex(5)
    nothing = free_port()  # refused connections: dead deployments, a dead webhook
    dead = f"http://127.0.0.1:{nothing}/v1"
    down_target = f"127.0.0.1:{free_port()}"
    procs: list[Any] = [fast, slow_embed, slow_stream]
    prom: Prometheus | None = None
    try:
        (tmp / "a").mkdir()
        b_data = tmp / "b" / "gateway-data"
        b_data.mkdir(parents=True)
        (b_data / "ledger-spill").write_text("a file where the spill directory should be\n")
        a_settings = {
            "redis_url": SHARED_REDIS, "redis_prefix": prefix, "metrics_token": TOKEN,
            "alert_webhooks": [f"http://127.0.0.1:{nothing}/hook"], "alert_max_attempts": 2,
            "alert_retry_base_s": 0.05, "alert_timeout_s": 1,
            # Rows wait up to 3 s in a queue of two: most spill, then replay.
            "ledger_queue_size": 2, "ledger_flush_s": 3,
        }  # fmt: skip
        # A queue of one row, written every 2 s: the rows behind it go to the spill, which fails.
        b_settings = {"redis_url": f"redis://127.0.0.1:{nothing}/0", "limits_failure_mode": "open",
                      "metrics_token": TOKEN, "ledger_queue_size": 1, "ledger_flush_s": 2}  # fmt: skip
        with ThreadPoolExecutor(2) as pool:  # both start at once
            starting = [
                pool.submit(Gateway, tmp / "a", models(fast, slow_embed, slow_stream, dead), workers=2,
                            settings=a_settings, env={"PYTHONPATH": str(sample_site)}, routing=ROUTING,
                            plugins=PLUGINS, log=tmp / "a.log", start_s=START_S),
                pool.submit(Gateway, tmp / "b", [{"name": "limited", "deployments": [deployment(fast)],
                                                  "limits": {"rpm": 100_000}}], settings=b_settings, log=tmp / "b.log",
                            start_s=START_S),
            ]  # fmt: skip
        procs += [future.result() for future in starting if future.exception() is None]
        a, b = (future.result() for future in starting)

        team = create(a.base, "/teams", {"name": TEAM_NAME, "budget_usd": "0.1", "budget_period": "monthly"})
        keys = {
            "research": create(a.base, "/keys", {"name": "research", "team_id": team["id"]})["key"],
            "rpm": create(a.base, "/keys", {"name": "tight", "rpm": 2})["key"],
        }
        rules = rules_for_the_run(tmp)
        targets = [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}", down_target]
        prom = Prometheus(tmp / "prometheus", prometheus_config(rules, targets))
        result = Run(prom, prometheus_config(rules, targets), start=time.time(), team_id=team["id"])

        # Counters must be seen at zero before they grow, or increase() has nothing to compare.
        wait_for(lambda: bool(prom.query(f'count_over_time(up{{instance="127.0.0.1:{a.port}"}}[30s]) >= 2')),  # type: ignore[union-attr]
                 "two scrapes of the gateway")  # fmt: skip
        # The database refuses the rows of requests marked "refuse-me": they are set aside, counted.
        with sqlite3.connect(tmp / "a" / "gateway-data" / "gateway.db") as db:
            db.execute("CREATE TRIGGER refuse_marked BEFORE INSERT ON ledger_requests WHEN NEW.end_user = "
                       "'refuse-me' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")  # fmt: skip
        traffic = Traffic(a, b, keys)
        asyncio.run(traffic.chat("refused-row", a, "chat", user="refuse-me"))
        wait_for(lambda: scrape(a.base, TOKEN).total("llm_gateway_ledger_rejected_rows_total") >= 1,
                 "the marked row to be set aside")  # fmt: skip

        async def script() -> None:
            for _ in range(2):
                slow = [asyncio.create_task(traffic.chat("slow-stream", a, "slow", stream=True)) for _ in range(2)]
                await traffic.wave()
                # Bridge readings and scrapes between the waves, while the slow streams finish.
                await asyncio.gather(asyncio.sleep(3), *slow)

        asyncio.run(script())
        result.statuses = traffic.statuses
        result.statuses["cache-hits"] = Counter({200: traffic.cache_hits})
        expected = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
                    for rule in group["rules"]} - set(NOT_PROVOKED) - set(NO_DATA_WHILE_SCRAPED)  # fmt: skip
        wait_for(lambda: expected <= prom.firing(), "the provoked alerts to fire",  # type: ignore[union-attr]
                 seconds=60, detail=lambda: f"missing {sorted(expected - prom.firing())}")  # type: ignore[union-attr]
        result.end = time.time()
        yield result
    finally:
        if prom is not None:
            prom.close()
        for proc in reversed(procs):
            proc.close()
        client = redis.Redis.from_url(SHARED_REDIS)
        for key in client.scan_iter(match=prefix + ":*", count=1000):
            client.delete(key)
        client.close()


def wait_for(check: Any, what: str, seconds: float = 30, detail: Any = None) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {seconds}s for {what}" + (f": {detail()}" if detail else ""))
        time.sleep(0.5)


def grafana(expr: str, run: Run) -> str:
    """A panel's query as Grafana sends it: "All" for the variables, the run as the range."""
    range_s = f"{int(run.end - run.start) + 1}s"
    values = {"$__rate_interval": RATE_INTERVAL, "$__range": range_s, "$team": ".*", "$model": ".*"}
    return re.sub(r"\$__rate_interval|\$__range|\$team|\$model", lambda m: values[m.group()], expr)


def panel_queries() -> Iterator[tuple[str, str]]:
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                yield f"{dashboard['title']} / {panel['title']} [{target['refId']}]", target["expr"]


def test_the_script_did_what_it_says(run: Run) -> None:
    s = run.statuses
    assert set(s["chat"]) == {200} and set(s["chat-stream"]) == {200} and set(s["slow-stream"]) == {200}
    assert set(s["flaky"]) == {200} and set(s["broken"]) == {200}, "retried, and served by the fallback"
    assert all(status >= 500 for status in s["down"]), s["down"]
    assert s["budget"][200] >= 4 and s["budget"][429] >= 1, "the team went over its budget, then was refused"
    assert s["rpm"][429] >= 1 and all(status >= 400 for status in s["content-refused"])
    assert s["cache-hits"][200] >= 6 and set(s["limits-store-down"]) == {200}, "limits fail open on B"
    targets = {t["labels"]["instance"]: t["health"] for t in run.prom.targets()}
    assert sorted(targets.values()) == ["down", "up", "up"], targets


def test_every_panel_query_has_data(run: Run) -> None:
    empty, zero = [], []
    for name, expr in panel_queries():
        result = run.prom.query_range(grafana(expr, run), run.start, run.end, STEP_S)
        data, nonzero = has_values(result), has_values(result, nonzero=True)
        run.report.append(f"panel {name}: data {'yes' if data else 'NO'}{'' if nonzero else ', zero only'}")
        if name in MAY_BE_EMPTY:
            continue
        if not data:
            empty.append(name)
        elif not nonzero:
            zero.append(name)
    print("\n".join(run.report))
    assert not empty, f"panels with no data: {empty}"
    assert not zero, f"panels with only zeros: {zero}"


def test_legends_name_teams(run: Run) -> None:
    expr = next(e for name, e in panel_queries() if "Spend rate by team" in name)
    result = run.prom.query_range(grafana(expr, run), run.start, run.end, STEP_S)
    names = {series["metric"].get("team_name") for series in result}
    assert TEAM_NAME in names and "(no team)" in names, names
    assert {series["metric"]["team"] for series in result if series["metric"].get("team_name") == TEAM_NAME} == {
        run.team_id
    }


def test_every_rule_has_data_and_every_provoked_alert_fires(run: Run) -> None:
    lines, empty = [], []
    for rule in run.prom.rules():
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
        result = run.prom.query_range(as_signal(rule["query"]), run.start, run.end, STEP_S)
        data = has_values(result)
        lines.append(f"rule {rule['name']}: data {'yes' if data else 'no'}, state {rule['state']}")
        if not data and rule["name"] not in NO_DATA_WHILE_SCRAPED:
            empty.append(rule["name"])
    print("\n".join(lines))
    assert not empty, f"rules with no data: {empty}"
    firing = run.prom.firing()
    assert not firing & set(NOT_PROVOKED), "an alert fired that nothing provoked"
    provoked = {rule["name"] for rule in run.prom.rules()} - set(NOT_PROVOKED) - set(NO_DATA_WHILE_SCRAPED)
    assert provoked <= firing, f"not firing: {sorted(provoked - firing)}"


def test_with_no_target_the_absent_alert_fires(run: Run) -> None:
    """Last in this module: it takes the targets away."""
    run.prom.reload(prometheus_config(Path(run.config["rule_files"][0]), []))
    wait_for(lambda: "LLMGatewayAbsent" in run.prom.firing(), "LLMGatewayAbsent to fire", seconds=20)
    assert run.prom.query('absent(up{job="llm-gateway"})')
