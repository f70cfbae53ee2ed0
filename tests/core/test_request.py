"""The client's request value: frozen, rebuilt (not changed) with a new body, and the one source the
context reads the request's facts from."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Principal
from gateway.pipeline.context import RequestContext

CALLER = Principal(key_id="key_1", key_prefix="sk-gw-abc", team_id="team_1")
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def asked() -> ClientRequest:
    return ClientRequest("req_1", Endpoint.CHAT, "messages", CALLER, "m", BODY, stream=True, client_wants_usage=True,
                         user="u-1", tags={"team": "a"}, headers={"x-gateway-strategy": "cost"})  # fmt: skip


def test_it_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        asked().model = "other"  # type: ignore[misc]


def test_a_new_body_is_a_new_request_with_everything_else_kept() -> None:
    request = asked()
    masked = {"model": "m", "messages": [{"role": "user", "content": "[masked]"}]}
    changed = request.with_body(masked)
    assert changed is not request and changed.body is masked and request.body is BODY
    assert dataclasses.replace(changed, body=BODY) == request
    assert request.endpoint_name == "messages"


def test_the_context_reads_the_request_and_a_refused_one_its_named_model() -> None:
    ctx = RequestContext("req_1", Endpoint.CHAT, 0.0, principal=CALLER, request=asked())
    assert (ctx.body, ctx.model, ctx.stream, ctx.client_wants_usage, ctx.user, ctx.upload) == (
        BODY, "m", True, True, "u-1", None)
    assert ctx.request_headers["x-gateway-strategy"] == "cost"
    refused = RequestContext("req_2", Endpoint.CHAT, 0.0, named_model="asked-for")
    assert (refused.body, refused.model, refused.stream, refused.user, dict(refused.request_headers)) == (
        {}, "asked-for", False, None, {})
