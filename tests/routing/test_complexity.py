"""The complexity stage: scores, tiers, the header rules, the config checks, and the ledger rows on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from admin.ui.formats import count, usd
from gateway.config.file import Config, ConfigError
from gateway.config.routing import ComplexityOptions
from gateway.core.errors import InvalidRequest
from gateway.routing.complexity import choose, score, tier_for
from gateway.routing.router import Router
from tests.admin_ui.conftest import Session
from tests.dbs import create_pg_database, drop_pg_database
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment, ledger_rows

TIERS = {"tiers": [{"name": "small", "model": "small-group", "max_score": 0.1},
                   {"name": "medium", "model": "medium-group", "max_score": 0.3},
                   {"name": "large", "model": "large-group"}]}
SMALL_PRICE = {"input_per_mtok": "1", "output_per_mtok": "2"}
LARGE_PRICE = {"input_per_mtok": "10", "output_per_mtok": "40"}
HARD = ("Prove that there are infinitely many primes, then analyse step by step why the argument fails for "
        "twin primes and what the implications are for the design of a distributed proof checker.")


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


def test_scores_order_easy_ordinary_and_hard_prompts() -> None:
    easy, hard = score(chat("Hi!")), score(chat(HARD))
    ordinary = score(chat("Write a Python function that parses a CSV file."))
    assert easy < ordinary < hard
    assert 0.0 <= easy and hard <= 1.0
    # Tools, structured output and depth each raise the score of the same words.
    base = score(chat("Find the invoice."))
    assert score(chat("Find the invoice.", tools=[{"type": "function", "function": {"name": "f"}}])) > base
    assert score(chat("Find the invoice.", response_format={"type": "json_schema", "json_schema": {}})) > base
    deep = {"model": "auto", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}] * 5
            + [{"role": "user", "content": "Find the invoice."}]}
    assert score(deep) > base
    # So do length, code, maths and words that ask for reasoning.
    assert score(chat("Find the invoice. " + "It was sent in March to the Lisbon office. " * 8)) > base
    assert score(chat("Find the invoice with a SQL query in Python.")) > base
    assert score(chat("Find the invoice whose total solves the equation 3 * 7 = x.")) > base
    assert score(chat("Find the invoice and analyse step by step why it was late.")) > base


def test_the_hint_header_moves_the_score_and_bad_hints_are_400() -> None:
    assert score(chat("Hi!"), "high") > score(chat("Hi!")) and score(chat(HARD), "low") < score(chat(HARD))
    assert score(chat("Hi!"), "0.8") == pytest.approx((score(chat("Hi!")) + 0.8) / 2, abs=1e-3)
    for bad in ("extreme", "1.5", "-1", "nan"):
        with pytest.raises(InvalidRequest) as caught:
            score(chat("Hi!"), bad)
        assert caught.value.param == "x-gateway-complexity"


def test_tiers_cover_every_score_and_the_header_pins_only_where_allowed() -> None:
    options = ComplexityOptions.model_validate(TIERS)
    assert [tier_for(options, v).name for v in (0.0, 0.1, 0.11, 0.3, 0.31, 1.0)] == \
        ["small", "small", "medium", "medium", "large", "large"]
    assert choose(options, "auto", chat("Hi!"), {}).tier.name == "small"
    assert choose(options, "auto", chat(HARD), {}).tier.name == "large"
    with pytest.raises(InvalidRequest, match="does not allow"):
        choose(options, "auto", chat("Hi!"), {"x-gateway-tier": "large"})
    allowed = ComplexityOptions.model_validate({**TIERS, "allow_tier_header": True})
    pinned = choose(allowed, "auto", chat("Hi!"), {"x-gateway-tier": "large"})
    assert pinned.tier.name == "large" and pinned.pinned
    with pytest.raises(InvalidRequest, match="no tier 'huge'"):
        choose(allowed, "auto", chat("Hi!"), {"x-gateway-tier": "huge"})


@pytest.mark.parametrize("tiers, message", [
    ([{"name": "a", "model": "m", "max_score": 0.5}], "at least 2"),
    ([{"name": "a", "model": "m", "max_score": 0.5}, {"name": "b", "model": "m", "max_score": 0.9}], "last tier"),
    ([{"name": "a", "model": "m", "max_score": 0.5}, {"name": "b", "model": "m", "max_score": 0.2},
      {"name": "c", "model": "m"}], "rise"),
    ([{"name": "a", "model": "m"}, {"name": "b", "model": "m"}], "needs max_score"),
    ([{"name": "a", "model": "m", "max_score": 0.5}, {"name": "a", "model": "m"}], "differ"),
])
def test_bad_tiers_are_config_errors(tiers: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ComplexityOptions.model_validate({"tiers": tiers})


def _group(name: str) -> dict[str, Any]:
    return {"name": name, "deployments": [{"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}]}


def test_the_router_checks_what_tiers_name() -> None:
    good = Config.model_validate({"models": [_group("small-group"), _group("medium-group"), _group("large-group"),
                                             {"name": "auto", "complexity": TIERS}]})
    Router(good.models)
    missing = Config.model_validate({"models": [_group("small-group"), {"name": "auto", "complexity": TIERS}]})
    with pytest.raises(ConfigError, match="no model group named 'medium-group'"):
        Router(missing.models)
    nested = {"tiers": [{"name": "a", "model": "auto", "max_score": 0.5}, {"name": "b", "model": "small-group"}]}
    with pytest.raises(ConfigError, match="another complexity model"):
        Router(Config.model_validate({"models": [*good.model_dump()["models"], {"name": "auto2", "complexity": nested}]
                                      }).models)
    with pytest.raises(ValueError, match="tiers instead of deployments"):
        Config.model_validate({"models": [{**_group("x"), "complexity": TIERS}]})
    with pytest.raises(ValueError, match="at least 1 item"):
        Config.model_validate({"models": [{"name": "x"}]})


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def tiered(request: pytest.FixtureRequest, upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp(f"complexity-{request.param}")
    settings: dict[str, Any] = {"ledger_flush_s": 0.05}
    dsn = None
    if request.param == "postgres":
        dsn = settings["database_url"] = create_pg_database()
    models = [{"name": "small-group", "deployments": [deployment(upstream, model="fake-small", price=SMALL_PRICE)]},
              {"name": "medium-group", "deployments": [deployment(upstream, model="fake-medium", price=SMALL_PRICE)]},
              {"name": "large-group", "deployments": [deployment(upstream, model="fake-large", price=LARGE_PRICE)]},
              {"name": "auto", "complexity": {**TIERS, "allow_tier_header": True}},
              {"name": "strict", "complexity": TIERS}]
    gw = Gateway(tmp, models, settings=settings)
    yield gw
    gw.close()
    if dsn is not None:
        drop_pg_database(dsn)


def test_requests_go_to_their_tier_and_the_ledger_records_it(tiered: Gateway) -> None:
    client = openai.OpenAI(base_url=tiered.url, api_key=MASTER_KEY, max_retries=0)
    easy = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "Hi!"}])
    hard = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": HARD}])
    pinned = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Hi!"}], extra_headers={"x-gateway-tier": "medium"})
    assert easy.parse().model == "fake-small" and hard.parse().model == "fake-large"
    assert pinned.parse().model == "fake-medium"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="strict", messages=[{"role": "user", "content": "Hi!"}],
                                       extra_headers={"x-gateway-tier": "large"})
    assert refused.value.body["param"] == "x-gateway-tier"  # type: ignore[index]
    ids = [r.headers["x-request-id"] for r in (easy, hard, pinned)]
    rows = ledger_rows(tiered, ids)
    assert [rows[i]["complexity_tier"] for i in ids] == ["small", "large", "medium"]
    assert rows[ids[0]]["complexity_score"] < rows[ids[1]]["complexity_score"]
    assert all(rows[i]["requested_model"] == "auto" for i in ids)
    assert "auto" in {m.id for m in client.models.list().data}


def test_the_report_shows_spend_by_tier_and_the_all_top_tier_cost(tiered: Gateway) -> None:
    client = openai.OpenAI(base_url=tiered.url, api_key=MASTER_KEY, max_retries=0)
    ids = [client.chat.completions.with_raw_response.create(
        model="strict", messages=[{"role": "user", "content": text}]).headers["x-request-id"]
        for text in ("Hi!", "Thanks!", HARD)]
    rows = ledger_rows(tiered, ids)
    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    report = httpx.get(tiered.base + "/admin/api/routing/complexity", params={"model": "strict"}, headers=admin).json()
    by_tier = {t["tier"]: t for t in report["data"]}
    assert by_tier["small"]["requests"] == 2 and by_tier["large"]["requests"] == 1
    small = [rows[i] for i in ids[:2]]
    tokens_in, tokens_out = sum(r["prompt_tokens"] for r in small), sum(r["completion_tokens"] for r in small)
    assert Decimal(by_tier["small"]["cost_usd"]) == (Decimal(tokens_in) * 1 + Decimal(tokens_out) * 2) / 1_000_000
    assert Decimal(by_tier["small"]["top_tier_cost_usd"]) == (Decimal(tokens_in) * 10 + Decimal(tokens_out) * 40
                                                              ) / 1_000_000
    assert by_tier["large"]["cost_usd"] == by_tier["large"]["top_tier_cost_usd"]
    total = report["total"]
    assert Decimal(total["saved_usd"]) == Decimal(total["top_tier_cost_usd"]) - Decimal(total["cost_usd"]) > 0
    bad = httpx.get(tiered.base + "/admin/api/routing/complexity", params={"model": "small-group"}, headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "model"


def test_the_models_page_shows_each_tier_and_the_saving(tiered: Gateway) -> None:
    client = openai.OpenAI(base_url=tiered.url, api_key=MASTER_KEY, max_retries=0)
    request_id = client.chat.completions.with_raw_response.create(
        model="strict", messages=[{"role": "user", "content": "Hi!"}]).headers["x-request-id"]
    ledger_rows(tiered, [request_id])  # written: the page and the API below both count it
    report = httpx.get(tiered.base + "/admin/api/routing/complexity", params={"model": "strict"},
                       headers={"authorization": f"Bearer {MASTER_KEY}"}).json()
    ui = Session(tiered.base)
    try:
        assert ui.sign_in("", MASTER_KEY).status_code == 303
        html = ui.http.get("/admin/models").text
    finally:
        ui.close()
    table = html.split('data-complexity="strict"', 1)[1].split("</table>", 1)[0]
    assert [t for t in ("small", "medium", "large") if f'data-tier="{t}"' in table] == ["small", "medium", "large"]
    caption = table.split("</caption>", 1)[0]
    assert "at the top tier's price" in caption.replace("&#39;", "'") and "saved" in caption
    assert usd(report["total"]["top_tier_cost_usd"]) in caption and usd(report["total"]["saved_usd"]) in caption
    # Each tier's requests, spend and top-tier cost are the admin API's, as the page formats them.
    assert any(tier["tier"] == "small" and tier["requests"] >= 1 for tier in report["data"])
    for tier in (t for t in report["data"] if t["tier"] is not None):  # None: refused before a tier was chosen
        row = table.split(f'data-tier="{tier["tier"]}"', 1)[1].split("</tr>", 1)[0]
        cells = [c.split("<", 1)[0] for c in row.split('<td class="num">')[1:]]
        assert cells[1] == count(tier["requests"]) and cells[3] == usd(tier["cost_usd"]), row
        assert cells[4] == usd(tier["top_tier_cost_usd"]), row


def test_metrics_count_requests_and_spend_by_tier(tiered: Gateway) -> None:
    client = openai.OpenAI(base_url=tiered.url, api_key=MASTER_KEY, max_retries=0)

    def counted() -> float:
        text = httpx.get(tiered.base + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
        line = [x for x in text.splitlines()
                if x.startswith("llm_gateway_complexity_requests_total{") and 'model="strict"' in x
                and 'tier="large"' in x]
        return float(line[0].rsplit(" ", 1)[1]) if line else 0.0

    before = counted()
    client.chat.completions.create(model="strict", messages=[{"role": "user", "content": HARD}])
    assert counted() == before + 1
    text = httpx.get(tiered.base + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
    assert 'llm_gateway_complexity_cost_usd_total{model="strict",tier="large"}' in text


def test_metrics_count_what_the_top_tier_would_have_cost(tiered: Gateway) -> None:
    client = openai.OpenAI(base_url=tiered.url, api_key=MASTER_KEY, max_retries=0)

    def counters() -> dict[str, float]:
        text = httpx.get(tiered.base + "/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}).text
        out = {}
        for name in ("llm_gateway_complexity_cost_usd_total", "llm_gateway_complexity_top_tier_cost_usd_total"):
            line = [x for x in text.splitlines() if x.startswith(name + '{model="strict",tier="small"}')]
            out[name] = float(line[0].rsplit(" ", 1)[1]) if line else 0.0
        return out

    before = counters()
    request_id = client.chat.completions.with_raw_response.create(
        model="strict", messages=[{"role": "user", "content": "Hi!"}]).headers["x-request-id"]
    row = ledger_rows(tiered, [request_id])[request_id]
    assert row["complexity_tier"] == "small"
    tokens_in, tokens_out = Decimal(row["prompt_tokens"]), Decimal(row["completion_tokens"])
    after = counters()
    # Served on the small tier at its price; counted beside it at the large tier's, for the same tokens.
    grew = {name: Decimal(str(after[name] - before[name])) for name in after}
    assert grew["llm_gateway_complexity_cost_usd_total"] == pytest.approx((tokens_in * 1 + tokens_out * 2) / 10**6)
    assert grew["llm_gateway_complexity_top_tier_cost_usd_total"] == pytest.approx(
        (tokens_in * 10 + tokens_out * 40) / 10**6)


def test_responses_api_requests_are_scored_on_their_input_in_every_shape(tiered: Gateway) -> None:
    client = openai.OpenAI(base_url=tiered.url, api_key=MASTER_KEY, max_retries=0)
    shapes = [HARD, [{"role": "user", "content": HARD}],
              [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": HARD}]}]]
    ids = [client.responses.with_raw_response.create(model="strict", input=shape).headers["x-request-id"]
           for shape in shapes]
    rows = ledger_rows(tiered, ids)
    assert [rows[i]["complexity_tier"] for i in ids] == ["large"] * 3
