"""The semantic cache: through a real gateway whose embeddings come from its own /v1/embeddings
(the fake upstream's deterministic vectors: the same text is similarity 1, other texts are far
apart), and in process with an embedder the test gives it."""

from __future__ import annotations

import json
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.accounting.pricing import PriceBook
from gateway.config.plugins import PluginsSection
from gateway.config.settings import Settings
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Principal
from gateway.edge.responses import JSONReply
from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Answer, Services
from gateway.plugins.cache.semantic import Entry, Index, SemanticCache, normalised, similarity
from gateway.plugins.runner import Plugins
from tests.plugins.conftest import Tenants, client_for, ledger_row
from tests.procs import FakeUpstream, Gateway


def rid() -> str:
    return "req_sem_" + uuid.uuid4().hex


def ask(gw: Gateway, tenants: Tenants, messages: list[dict[str, str]]) -> tuple[str, dict[str, str], str]:
    request_id = rid()
    raw = client_for(gw, tenants.gamma).chat.completions.with_raw_response.create(
        model="chat", messages=messages, extra_headers={"x-request-id": request_id})  # type: ignore[arg-type]
    return raw.parse().choices[0].message.content or "", dict(raw.headers), request_id


def test_same_question_hits_through_the_gateways_own_embeddings(
    plugin_gateway: Gateway, tenants: Tenants, upstream: FakeUpstream
) -> None:
    messages = [{"role": "user", "content": f"how tall is tower {uuid.uuid4().hex}"}]
    first, headers, first_id = ask(plugin_gateway, tenants, messages)
    assert headers["x-gateway-cache"] == "miss"
    second, headers, second_id = ask(plugin_gateway, tenants, messages)
    assert (second, headers["x-gateway-cache"], headers["x-gateway-cache-similarity"]) == (first, "hit", "1.000")
    assert upstream.requests(second_id) == []
    row = ledger_row(plugin_gateway, second_id)
    assert row["cache_hit"] == 1 and Decimal(row["cost_usd"]) == 0
    saved = Decimal(json.loads(row["tags"])["gateway.saved_usd"])
    assert saved == Decimal(ledger_row(plugin_gateway, first_id)["cost_usd"])
    # The embedding calls went through the gateway: ledger rows of their own, tagged.
    with sqlite3.connect(Path(plugin_gateway.data_dir) / "gateway.db") as conn:  # type: ignore[attr-defined]
        tagged = conn.execute("SELECT count(*) FROM ledger_requests WHERE endpoint = 'embeddings' "
                              "AND tags LIKE '%semantic-cache%'").fetchone()[0]
    assert tagged >= 2


def test_another_question_or_another_history_misses(plugin_gateway: Gateway, tenants: Tenants) -> None:
    question = f"what is the capital of country {uuid.uuid4().hex}"
    ask(plugin_gateway, tenants, [{"role": "user", "content": question}])
    assert ask(plugin_gateway, tenants, [{"role": "user", "content": question + " please"}])[1][
        "x-gateway-cache"] == "miss"
    with_system = [{"role": "system", "content": "answer in French"}, {"role": "user", "content": question}]
    assert ask(plugin_gateway, tenants, with_system)[1]["x-gateway-cache"] == "miss"


# --- in process --------------------------------------------------------------------------------

VECTORS = {
    "how do I reset my password": [1.0, 0.1, 0.0],
    "how can I change my password": [0.98, 0.15, 0.02],  # a paraphrase: cosine ~0.998
    "what is the weather in Paris": [0.0, 0.2, 1.0],
}


async def fake_embed(model: str, texts: list[str]) -> list[list[float]]:
    return [VECTORS[t] for t in texts]


def context(text: str, team: str = "team_a") -> RequestContext:
    principal = Principal(key_id="key_1", key_prefix="sk-gw-x", team_id=team)
    body = {"model": "chat", "messages": [{"role": "user", "content": text}]}
    request = ClientRequest("req_1", Endpoint.CHAT, "", principal, "chat", body)
    return RequestContext("req_1", Endpoint.CHAT, 0.0, principal=principal, request=request)


async def test_paraphrase_hits_and_unrelated_question_misses_at_the_threshold() -> None:
    services = Services(settings=Settings(), prices=PriceBook({}), embed=fake_embed, clock=lambda: 1000.0)
    section = PluginsSection.model_validate(
        {"global": [{"name": "semantic_cache", "config": {"embedding_model": "e", "threshold": 0.95}}]})
    plugins = Plugins(section, {"semantic_cache": SemanticCache}, services)
    body: dict[str, Any] = {"choices": [{"index": 0, "message": {"content": "use the link"}, "finish_reason": "stop"}]}

    ctx = context("how do I reset my password")
    ctx.plugins = plugins.start(ctx.principal)
    assert ctx.plugins is not None and (await ctx.plugins.before(ctx)).reply is None
    await ctx.plugins.chain.afters[0].plugin.after(ctx, Answer(body))

    paraphrase = context("how can I change my password")
    paraphrase.plugins = plugins.start(paraphrase.principal)
    assert paraphrase.plugins is not None
    before = await paraphrase.plugins.before(paraphrase)
    response = before.reply
    assert isinstance(response, JSONReply) and response.headers["x-gateway-cache"] == "hit" and before.cache_hit

    for other in (context("what is the weather in Paris"), context("how can I change my password", team="team_b")):
        other.plugins = plugins.start(other.principal)
        assert other.plugins is not None
        missed = await other.plugins.before(other)
        assert missed.reply is None and not missed.cache_hit and missed.headers["x-gateway-cache"] == "miss"


def test_index_keeps_the_newest_and_skips_expired() -> None:
    index = Index(max_entries=2)
    for i, expires in enumerate((50.0, 200.0, 200.0)):
        index.add("s", Entry(normalised([1.0, float(i)]), {"n": i}, expires), now=10.0)
    assert [e.value["n"] for e in index.scopes["s"]] == [1, 2]
    score, entry = index.best("s", normalised([1.0, 2.0]), now=100.0)
    assert entry is not None and entry.value["n"] == 2 and abs(score - 1.0) < 1e-9
    assert index.best("s", normalised([1.0, 2.0]), now=300.0) == (-1.0, None)
    assert abs(similarity(normalised([3.0, 4.0]), normalised([6.0, 8.0])) - 1.0) < 1e-9
