"""The guardrails' remaining actions, called directly on a context: content masking on input,
clamping max_tokens, completions and embeddings bodies, and answers that are not text. A hook
that changes the body returns the new one (a `Before`) and leaves the client's as it was."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.accounting.pricing import PriceBook
from gateway.config.settings import Settings
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Principal
from gateway.pipeline.context import RequestContext
from gateway.plugins.base import Answer, Refused, Services
from gateway.plugins.guardrails.content import ContentRules
from gateway.plugins.guardrails.pii import PiiRedactor
from gateway.plugins.guardrails.request_limits import RequestLimits

SERVICES = Services(settings=Settings(), prices=PriceBook({}))


def ctx_for(endpoint: Endpoint, body: dict[str, Any]) -> RequestContext:
    principal = Principal(key_id="key_1", key_prefix="sk-gw-x", team_id="team_1")
    request = ClientRequest("req_1", endpoint, "", principal, "", body)
    return RequestContext("req_1", endpoint, 0.0, principal=principal, request=request)


async def test_content_masked_on_input() -> None:
    plugin = ContentRules({"deny_patterns": [r"\bACME-\d{4}\b"], "input": "mask"}, SERVICES)
    ctx = ctx_for(Endpoint.CHAT, {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "ticket ACME-1234 and ACME-99"}, {"type": "image_url", "image_url": {"url": "x"}}]}]})
    given = await plugin.before(ctx)
    assert given is not None and given.body is not None
    assert given.body["messages"][0]["content"][0]["text"] == "ticket [REDACTED] and ACME-99"
    assert ctx.body["messages"][0]["content"][0]["text"] == "ticket ACME-1234 and ACME-99"
    assert [(d.kind, d.action, d.count) for d in given.decisions] == [("deny", "masked", 1)]


async def test_max_tokens_clamped() -> None:
    plugin = RequestLimits({"max_tokens": 100, "clamp_max_tokens": True}, SERVICES)
    ctx = ctx_for(Endpoint.CHAT, {"messages": [], "max_completion_tokens": 5000})
    given = await plugin.before(ctx)
    assert given is not None and given.body is not None and given.body["max_completion_tokens"] == 100
    assert ctx.body["max_completion_tokens"] == 5000
    assert [(d.kind, d.action) for d in given.decisions] == [("max_tokens", "clamped")]


@pytest.mark.parametrize(("endpoint", "field"), [(Endpoint.COMPLETIONS, "prompt"), (Endpoint.EMBEDDINGS, "input")])
async def test_pii_on_completions_and_embeddings(endpoint: Endpoint, field: str) -> None:
    plugin = PiiRedactor({"mode": "mask"}, SERVICES)
    ctx = ctx_for(endpoint, {field: ["call 415 555 2671", [1, 2, 3]]})
    given = await plugin.before(ctx)
    assert given is not None and given.body is not None and given.body[field] == ["call [PHONE]", [1, 2, 3]]
    assert ctx.body[field] == ["call 415 555 2671", [1, 2, 3]]


async def test_pii_refusal_names_kinds_not_values() -> None:
    plugin = PiiRedactor({"mode": "refuse", "kinds": ["email"]}, SERVICES)
    ctx = ctx_for(Endpoint.CHAT, {"messages": [{"role": "user", "content": "a@b.io, 4111 1111 1111 1111"}]})
    with pytest.raises(Refused) as caught:
        await plugin.before(ctx)
    assert "a@b.io" not in caught.value.message and "(email)" in caught.value.message
    # Only the configured kinds are looked for: the card is not.
    assert [(d.kind, d.action) for d in ctx.guardrails] == [("email", "refused")]


async def test_answers_without_text_are_left_alone() -> None:
    plugin = PiiRedactor({}, SERVICES)
    tool_call = {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    answer = Answer({"choices": [{"index": 0, "message": tool_call, "finish_reason": "tool_calls"}]})
    await plugin.after(ctx_for(Endpoint.CHAT, {}), answer)
    assert not answer.changed and answer.body["choices"][0]["message"] == tool_call
