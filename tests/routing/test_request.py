"""What the router reads from a request body: token estimates and the prefix key."""

from __future__ import annotations

from typing import Any

from gateway.accounting.limits.estimate import prompt_tokens
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Principal
from gateway.routing.request import DEFAULT_OUTPUT_TOKENS, RouteRequest, prefix_key


def request(body: dict[str, Any], endpoint: Endpoint = Endpoint.CHAT) -> RouteRequest:
    caller = Principal(key_id="master", key_prefix="sk-master", is_master=True)
    return RouteRequest.from_request(ClientRequest("r", endpoint, "", caller, "m", body), prefix_chars=64)


def test_token_estimates_are_admissions_and_the_output_defaults_only_for_cost() -> None:
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 50}
    chat = request(body)
    assert chat.prompt_tokens == prompt_tokens(body, Endpoint.CHAT) > 100
    assert (chat.output_tokens, chat.max_output_tokens) == (50, 50)
    open_ended = request({"messages": [{"role": "user", "content": "hi"}]})
    assert (open_ended.output_tokens, open_ended.max_output_tokens) == (DEFAULT_OUTPUT_TOKENS, 0)
    assert request({"input": ["ab" * 10, "cd"]}, Endpoint.EMBEDDINGS).output_tokens == 0


def test_fits_a_context_window() -> None:
    r = request({"messages": [{"role": "user", "content": "x" * 4000}], "max_completion_tokens": 100})
    assert r.fits(None) and r.fits(2000)
    assert not r.fits(1000)


def test_prefix_key_is_the_conversation_before_its_last_message() -> None:
    system = {"role": "system", "content": "You are terse."}
    one = {"messages": [system, {"role": "user", "content": "first question"}]}
    two = {"messages": [system, {"role": "user", "content": "another question"}]}
    assert prefix_key(one, 64) == prefix_key(two, 64) == "<system>You are terse."
    assert request(one).prefix_hash() == request(two).prefix_hash()


def test_a_long_history_is_cut_to_the_key_length() -> None:
    history = [{"role": "user", "content": "z" * 500}, {"role": "assistant", "content": "ok"}]
    a = prefix_key({"messages": [*history, {"role": "user", "content": "1"}]}, 64)
    assert a is not None and len(a) == 64


def test_a_lone_short_prompt_has_no_prefix_key() -> None:
    assert prefix_key({"messages": [{"role": "user", "content": "hi"}]}, 64) is None
    assert request({"messages": [{"role": "user", "content": "hi"}]}).prefix_hash() is None
    assert prefix_key({"prompt": "p" * 100}, 64) == "p" * 64
