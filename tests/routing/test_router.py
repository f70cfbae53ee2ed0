"""Resolving names (groups, aliases, wildcard routes), header overrides and config checks."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.config.file import ConfigError
from gateway.core.errors import InvalidRequest, ModelNotFound
from tests.routing.harness import FakeClock, Script, drive, request, router


def test_aliases_resolve_to_their_group() -> None:
    r = router([{"name": "gpt-4o", "aliases": ["smart", "default"], "deployments": [{"id": "x"}]}])
    assert r.group("smart").name == "gpt-4o"
    assert r.group("default") is r.group("gpt-4o")
    with pytest.raises(ModelNotFound):
        r.group("dumb")


def test_wildcard_routes_send_the_matched_name_upstream() -> None:
    r = router([
        {"name": "openai/*", "deployments": [{"id": "openai-any"}]},
        {"name": "openai/gpt-4o*", "deployments": [{"id": "openai-4o", "model": "azure-*"}]},
        {"name": "exact", "deployments": [{"id": "e"}]},
    ])
    g = r.group("openai/gpt-3.5-turbo")
    assert g.name == "openai/gpt-3.5-turbo"
    assert [(d.id, d.model) for d in g.deployments] == [("openai-any", "gpt-3.5-turbo")]
    # The most specific route wins, and `*` in the deployment's model takes the match.
    assert [(d.id, d.model) for d in r.group("openai/gpt-4o-mini").deployments] == [("openai-4o", "azure--mini")]
    assert [g.name for g in r.groups] == ["exact"]  # routes are not models
    with pytest.raises(ModelNotFound):
        r.group("openai/")
    with pytest.raises(ModelNotFound):
        r.group("anthropic/claude")


def test_wildcard_deployments_keep_their_key_reference() -> None:
    r = router([{"name": "p/*", "deployments": [{"id": "p"}]}])
    route = r._wildcards[0][2].deployments[0]
    route._api_key = "secret-ref"  # type: ignore[assignment]
    r._resolved.clear()
    assert r.group("p/model").deployments[0].api_key == "secret-ref"


def test_deployments_without_a_model_are_called_with_their_group_name() -> None:
    r = router([{"name": "a", "deployments": [{"id": "a1"}], "fallbacks": ["b"]},
                {"name": "b", "deployments": [{"id": "b1"}]}])
    assert r.group("b").deployments[0].model == "b"


@pytest.mark.parametrize(
    ("models", "options", "message"),
    [
        ([{"name": "a", "strategy": "fastest", "deployments": [{}]}], {}, "unknown routing strategy 'fastest'"),
        ([{"name": "a", "deployments": [{}]}], {"default_strategy": "nope"}, "unknown routing strategy 'nope'"),
        ([{"name": "a", "fallbacks": ["b"], "deployments": [{}]}], {}, "models[a].fallbacks: no model group named 'b'"),
        ([{"name": "a", "deployments": [{}]}], {"default_fallbacks": ["z"]}, "routing.default_fallbacks"),
        ([{"name": "a", "context_window_fallback": "big", "deployments": [{}]}], {}, "context_window_fallback"),
        ([{"name": "a", "aliases": ["b"], "deployments": [{}]}, {"name": "b", "deployments": [{}]}], {},
         "alias 'b' is already"),
    ],
)
def test_bad_routing_config_is_one_line(models: list[dict[str, object]], options: dict[str, object],
                                        message: str) -> None:
    with pytest.raises(ConfigError) as info:
        router(models, **options)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert "\n" not in str(info.value)


TAGGED: list[dict[str, Any]] = [
    {"name": "g", "allow_header_overrides": True, "deployments": [
        {"id": "us", "tags": ["us"]}, {"id": "eu", "region": "eu-west", "tags": ["eu"]}]},
    {"name": "locked", "deployments": [{"id": "l1"}, {"id": "l2"}]},
]


async def test_a_header_may_ask_for_a_tag_where_the_group_allows() -> None:
    clock = FakeClock()
    r = router(copy.deepcopy(TAGGED), clock)
    for tag, served in (("eu", "eu"), ("eu-west", "eu"), ("us", "us")):
        run = await drive(r, request("g", headers={"x-gateway-deployment-tag": tag}), Script({}), clock)
        assert run.tried == [served]
    with pytest.raises(InvalidRequest) as info:
        r.plan(request("g", headers={"x-gateway-deployment-tag": "mars"}))
    assert info.value.param == "x-gateway-deployment-tag"


async def test_a_header_may_ask_for_a_strategy_where_the_group_allows() -> None:
    clock = FakeClock()
    r = router(copy.deepcopy(TAGGED), clock)
    r.health.load.started("us")
    plain = await drive(r, request("g"), Script({}), clock)
    assert plain.tried == ["us"]  # priority, the default
    busy = await drive(r, request("g", headers={"x-gateway-strategy": "least-busy"}), Script({}), clock)
    assert busy.tried == ["eu"]
    with pytest.raises(InvalidRequest):
        r.plan(request("g", headers={"x-gateway-strategy": "telepathy"}))


def test_overrides_are_refused_where_the_config_does_not_allow_them() -> None:
    r = router(copy.deepcopy(TAGGED))
    with pytest.raises(InvalidRequest) as info:
        r.plan(request("locked", headers={"x-gateway-strategy": "least-busy"}))
    assert info.value.param == "x-gateway-strategy"
