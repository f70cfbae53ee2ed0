"""Which plugins apply to whom and in what order, the config checks, the cache key and the stores."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import Headers

from gateway.accounting.pricing import PriceBook
from gateway.config.file import ConfigError, config_from_dict
from gateway.config.plugins import PluginsSection
from gateway.config.settings import Settings
from gateway.core.errors import InvalidRequest
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Principal, RequestOutcome
from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Answer, Before, Plugin, PluginFailed, Services
from gateway.plugins.cache.keys import cache_key, directives
from gateway.plugins.cache.stores import MemoryStore
from gateway.plugins.registry import BUILTINS
from gateway.plugins.runner import Plugins

SERVICES = Services(settings=Settings(), prices=PriceBook({}))


class Mark(Plugin):
    """Appends its id to the request's `order` field."""

    name = "mark"

    async def before(self, ctx: RequestContext) -> Answer | None:
        ctx.body.setdefault("order", []).append(self.id)
        return None


class Tag(Plugin):
    """The value form: returns a new body with its id in `order`, and a decision."""

    name = "tag"

    async def before(self, ctx: RequestContext) -> Before | None:
        body = {**ctx.body, "order": [*ctx.body.get("order", ()), self.id]}
        return Before(body=body, decisions=(self.decision("tag", "flagged"),), headers={"x-tag": self.id})


class Fails(Plugin):
    name = "fails"

    async def before(self, ctx: RequestContext) -> Answer | None:
        raise KeyError("a value from the request")


class Watch(Plugin):
    """The older form of `on_error`: reads how the request ended from its context, and says so."""

    name = "watch"

    async def on_error(self, ctx: RequestContext) -> None:
        assert ctx.outcome is not None
        self.decide(ctx, ctx.outcome.error_type or "none", f"seen:{ctx.status}")


CLASSES: dict[str, type[Plugin]] = {"mark": Mark, "tag": Tag, "fails": Fails, "watch": Watch, **BUILTINS}


def plugins(section: dict[str, Any]) -> Plugins:
    return Plugins(PluginsSection.model_validate(section), CLASSES, SERVICES)


def ctx_for(team: str | None = None, key: str = "key_x", body: dict[str, Any] | None = None,
            headers: Headers | None = None) -> RequestContext:
    principal = Principal(key_id=key, key_prefix="sk-gw-abcdef", team_id=team)
    body = body if body is not None else {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    request = ClientRequest("req_1", Endpoint.CHAT, "", principal, "m", body, headers=headers or Headers())
    return RequestContext("req_1", Endpoint.CHAT, 0.0, principal=principal, request=request)


SECTION = {
    "global": [{"name": "mark", "id": "g"}],
    "teams": {"team_a": [{"name": "mark", "id": "t1"}, {"name": "mark", "id": "t2"}]},
    "keys": {"key_k": [{"name": "mark", "id": "k"}]},
}


@pytest.mark.parametrize(("team", "key", "order"), [
    (None, "key_x", ["g"]),
    ("team_a", "key_x", ["g", "t1", "t2"]),
    ("team_b", "key_k", ["g", "k"]),
    ("team_a", "key_k", ["g", "t1", "t2", "k"]),
])
async def test_global_then_team_then_key(team: str | None, key: str, order: list[str]) -> None:
    ctx = ctx_for(team, key)
    run = plugins(SECTION).start(ctx.principal)
    assert run is not None and (await run.before(ctx)).reply is None
    assert ctx.body["order"] == order


async def test_returned_bodies_and_findings_go_down_the_chain_and_back_to_the_proxy() -> None:
    """A hook's returned body is what the next hook sees (the older in-place form mixes with it);
    the client's body is left as it was, and the findings come back as values, not in the context."""
    ctx = ctx_for()
    sent = ctx.body
    run = plugins({"global": [{"name": "tag", "id": "a"}, {"name": "mark", "id": "b"},
                              {"name": "tag", "id": "c"}]}).start(ctx.principal)
    assert run is not None
    before = await run.before(ctx)
    assert before.reply is None and before.body["order"] == ["a", "b", "c"] and "order" not in sent
    assert [d.plugin for d in before.decisions] == ["a", "c"] and dict(before.headers) == {"x-tag": "c"}
    assert not ctx.guardrails and "x-tag" not in ctx.response_headers
    found = await run.finish(ctx, RequestOutcome(200))
    assert [d.plugin for d in found.decisions] == ["a", "c"] and found.tags["gateway.guardrails"].startswith("a:")
    assert not ctx.tags


async def test_on_error_runs_as_the_outcome_says_and_reads_it_from_the_context() -> None:
    """The runner decides from the outcome it is handed; the hook, in its documented form, finds the
    same outcome on the context (`ctx.outcome`) beside `ctx.status`, which the proxy placed there."""
    run = plugins({"global": [{"name": "watch"}]}).start(ctx_for().principal)
    assert run is not None
    ctx = ctx_for()
    found = await run.finish(ctx, RequestOutcome(200))
    assert found.decisions == ()  # answered: no on_error
    ctx = ctx_for()
    failed = RequestOutcome(502, error_type="server_error")
    ctx.status, ctx.outcome = failed.status, failed
    run = plugins({"global": [{"name": "watch"}]}).start(ctx.principal)
    assert run is not None
    found = await run.finish(ctx, failed)
    assert [(d.kind, d.action) for d in found.decisions] == [("server_error", "seen:502")]


def test_nothing_applies_means_no_run_and_chains_are_shared() -> None:
    empty = plugins({})
    assert empty.start(ctx_for().principal) is None
    scoped = plugins({"teams": {"team_a": [{"name": "mark"}]}})
    assert scoped.start(ctx_for("team_b").principal) is None
    assert scoped.chain(ctx_for("team_a", "key_1").principal) is scoped.chain(ctx_for("team_a", "key_2").principal)


def test_only_overridden_hooks_are_called() -> None:
    chain = plugins(SECTION).chain(ctx_for("team_a").principal)
    assert chain is not None and len(chain.befores) == 3 and not chain.chunkers and not chain.afters


async def test_a_failure_fails_or_is_skipped_as_configured() -> None:
    ctx = ctx_for()
    run = plugins({"global": [{"name": "fails"}]}).start(ctx.principal)
    assert run is not None
    with pytest.raises(PluginFailed) as caught:
        await run.before(ctx)
    assert caught.value.status == 500 and "a value" not in caught.value.message
    run = plugins({"on_failure": "skip", "global": [{"name": "fails"}, {"name": "mark"}]}).start(ctx.principal)
    assert run is not None and (await run.before(ctx)).reply is None
    assert ctx.body["order"] == ["mark"]


@pytest.mark.parametrize(("section", "message"), [
    ({"global": [{"name": "nope"}]}, "plugins.global[0].name: unknown plugin 'nope'"),
    ({"teams": {"t": [{"name": "pii", "config": {"mode": "shout"}}]}}, "plugins.teams.t[0].config.mode:"),
    ({"keys": {"k": [{"name": "cache", "config": {"ttl": 5}}]}}, "plugins.keys.k[0].config.ttl: unknown field"),
    ({"global": [{"name": "pii", "config": {"national_ids": {"x": "("}}}]}, "not a valid pattern"),
])
def test_config_errors_name_the_entry(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        plugins(section)
    assert message in str(caught.value)


def test_the_section_is_part_of_the_config_file() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"plugins": {"global": [{"nam": "pii"}]}}, {"openai"})
    assert "plugins.global[0].name: Field required" in str(caught.value)


def test_the_cache_key_covers_what_changes_the_answer() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    key = cache_key(ctx_for("team_a", body=dict(base)), shared=False)
    assert cache_key(ctx_for("team_a", "key_other", body=dict(base)), shared=False) == key
    assert cache_key(ctx_for("team_a", body={**base, "stream": True, "user": "u"}), shared=False) == key
    for changed in ({**base, "temperature": 1}, {**base, "messages": [{"role": "user", "content": "hey"}]},
                    {**base, "tools": [{"type": "function", "function": {"name": "f"}}]}, {**base, "n": 2}):
        assert cache_key(ctx_for("team_a", body=changed), shared=False) != key
    assert cache_key(ctx_for("team_b", body=dict(base)), shared=False) != key
    assert cache_key(ctx_for("team_b", body=dict(base)), shared=True) == cache_key(
        ctx_for("team_a", body=dict(base)), shared=True)
    other = ctx_for("team_a", body=dict(base))
    other.endpoint = Endpoint.COMPLETIONS
    assert cache_key(other, shared=False) != key


def test_directives() -> None:
    ctx = ctx_for(headers=Headers({"x-gateway-cache": "no-cache, ttl=2.5"}))
    wanted = directives(ctx)
    assert (wanted.lookup, wanted.store, wanted.ttl_s, wanted.opted_in) == (False, True, 2.5, True)
    for bad in ("ttl=0", "ttl=abc", "forever"):
        with pytest.raises(InvalidRequest):
            directives(ctx_for(headers=Headers({"x-gateway-cache": bad})))


async def test_memory_store_expires_and_drops_the_least_recently_used() -> None:
    now = [100.0]
    store = MemoryStore(max_entries=2, clock=lambda: now[0])
    await store.set("a", b"1", 10)
    await store.set("b", b"2", 10)
    assert await store.get("a") == b"1"  # a is now the most recently used
    await store.set("c", b"3", 10)
    assert (await store.get("b"), await store.get("a"), await store.get("c")) == (None, b"1", b"3")
    now[0] = 110.0
    assert await store.get("a") is None
