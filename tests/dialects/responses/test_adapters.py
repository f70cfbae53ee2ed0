"""Which adapter serves a Responses request, and the native relay's pure parts: URLs, the history
it is sent, the terminal event found in a stream cut anywhere."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.errors import InvalidRequest
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, GuardrailDecision, Principal
from gateway.dialects.responses.adapters import (
    ChatViaResponses,
    NativeResponses,
    NativeStream,
    adapter_chooser,
    echoed,
    native_call,
    relays_natively,
    replayable,
    responses_api,
    terminal_response,
)
from gateway.dialects.responses.turn import ResponsesTurn

SETTINGS = Settings(master_key="sk-test-master-0123456789abcdefghijkl")


def dep(**fields: Any) -> Deployment:
    return Deployment(**{"base_url": "http://upstream.test/v1", **fields})


@pytest.mark.parametrize(("fields", "kind"), [
    ({"base_url": "https://api.openai.com/v1"}, "native"),
    ({}, "chat"),
    ({"provider": "azure", "base_url": "https://r.openai.azure.com", "api_version": "v1"}, "native"),
    ({"provider": "azure", "base_url": "https://r.openai.azure.com"}, "chat"),
    ({"provider": "anthropic"}, "chat"),
    ({"responses_api": "only"}, "only"),
    ({"base_url": "https://api.openai.com/v1", "responses_api": "chat"}, "chat"),
])
def test_the_kind_of_a_deployment(fields: dict[str, Any], kind: str) -> None:
    assert responses_api(dep(**fields)) == kind


def test_native_urls_and_keys() -> None:
    openai_call = native_call(dep(), {"model": "m"}, "req_1", SETTINGS)
    assert openai_call.url == "http://upstream.test/v1/responses"
    azure = dep(provider="azure", base_url="https://r.openai.azure.com", api_version="preview")
    assert native_call(azure, {}, "req_1", SETTINGS).url == "https://r.openai.azure.com/openai/v1/responses?api-version=preview"
    azure_v1 = dep(provider="azure", base_url="https://r.openai.azure.com", api_version="v1")
    assert native_call(azure_v1, {}, "req_1", SETTINGS).url == "https://r.openai.azure.com/openai/v1/responses"


def request_for(endpoint: Endpoint = Endpoint.CHAT) -> ClientRequest:
    caller = Principal(key_id="master", key_prefix="sk-master", is_master=True)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return ClientRequest("req_1", endpoint, "", caller, "m", body)




def turn_of(**body: Any) -> ResponsesTurn:
    from gateway.dialects.responses.request import parse, read

    parsed = parse(orjson.dumps({"model": "m", "input": "hi", **body}))
    return ResponsesTurn(read(parsed, builtin_tools=True), parsed, [], None, "resp_x", 1)


def test_the_chooser() -> None:
    choose = adapter_chooser(SETTINGS)
    plain: Any = object()
    # The writers tell a native answer by the same function of the deployment the chooser picks by.
    translated = turn_of()
    assert choose(translated, (), dep(id="d"), plain) is plain and not relays_natively(dep(id="d"))
    native = turn_of()
    relayed = choose(native, (), dep(responses_api="native"), plain)
    assert isinstance(relayed, NativeResponses) and not relayed.masked
    # What a guardrail masked in the request, the relay is told (the upstream is sent what it left).
    masking = (GuardrailDecision("pii", "email", "masked"),)
    relayed = choose(native, masking, dep(responses_api="native"), plain)
    assert isinstance(relayed, NativeResponses) and relayed.masked
    flagged = (GuardrailDecision("pii", "email", "flagged"), GuardrailDecision("pii", "email", "masked", "response"))
    relayed = choose(native, flagged, dep(responses_api="native"), plain)
    assert isinstance(relayed, NativeResponses) and not relayed.masked
    assert relays_natively(dep(responses_api="native")) and relays_natively(dep(responses_api="only"))
    assert not relays_natively(None)  # a cached answer: a chat completion
    with pytest.raises(FrozenInstanceError):  # the chooser notes nothing on the turn: nothing can
        native.id = "resp_y"  # type: ignore[misc]
    assert isinstance(choose(None, (), dep(responses_api="only"), plain), ChatViaResponses)
    assert choose(None, (), dep(responses_api="native"), plain) is plain  # chat stays chat there
    with pytest.raises(InvalidRequest) as caught:  # a built-in tool on a chat backend names the tool
        choose(turn_of(tools=[{"type": "web_search"}]), (), dep(), plain)
    assert caught.value.param == "tools[0].type" and "web_search" in caught.value.message
    with pytest.raises(InvalidRequest):
        choose(turn_of(), (), dep(provider="anthropic", responses_api="native"), plain)


def test_a_native_deployment_is_sent_the_built_in_tools_and_the_history() -> None:
    turn = turn_of(tools=[{"type": "web_search"}], previous_response_id="resp_prev", client_metadata={"a": 1})
    turn = replace(turn, history=[
        {"type": "message", "id": "msg_1", "role": "user", "content": [{"type": "input_text", "text": "one"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "abc"},
        {"type": "message", "id": "msg_2", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "two"}]},
    ])
    call = NativeResponses(SETTINGS, turn).build_call(request_for(), dep(model="up-model"))
    body = orjson.loads(call.body)
    assert body["model"] == "up-model" and body["tools"] == [{"type": "web_search"}]
    assert "previous_response_id" not in body and "client_metadata" not in body
    assert [item.get("id") for item in body["input"]] == [None, "rs_2", None, None]
    assert body["input"][-1] == {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}


def test_replayable_drops_ids_and_statuses() -> None:
    assert replayable([{"type": "function_call", "id": "fc_1", "status": "completed", "call_id": "c", "name": "f",
                        "arguments": "{}"}]) == [{"type": "function_call", "call_id": "c", "name": "f",
                                                 "arguments": "{}"}]


STREAM = (b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":"r"}}\n\n'
          b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":1,'
          b'"delta":"say \\"response.completed\\""}\n\n'
          b'event: response.completed\ndata: {"type":"response.completed","sequence_number":2,"response":'
          b'{"id":"r","status":"completed","usage":{"input_tokens":3,"output_tokens":2}}}\n\n')


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=6))
def test_the_terminal_event_is_found_however_the_stream_is_cut(cuts: list[int]) -> None:
    turn = turn_of(previous_response_id="resp_prev")
    stream = NativeStream()
    pieces = []
    last = 0
    for cut in sorted(cuts):
        pieces.append(stream.feed(STREAM[last:cut]))
        last = cut
    pieces += [stream.feed(STREAM[last:]), stream.finish()]
    assert b"".join(pieces) == STREAM  # relayed byte for byte
    assert stream.done and stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (3, 2)
    # Relayed in whole events: the writer finds the response to store in the one piece that ends the stream.
    assert all(piece.endswith(b"\n\n") for piece in pieces if piece)
    found = [response for piece in pieces if (response := terminal_response(piece)) is not None]
    assert len(found) == 1 and found[0]["id"] == "r"
    assert echoed(found[0], turn)["previous_response_id"] == "resp_prev"


def test_a_native_answer_is_relayed_echoed_as_the_body_to_store() -> None:
    turn = turn_of(previous_response_id="resp_prev")
    upstream = {"id": "resp_up", "object": "response", "usage": {"input_tokens": 3, "output_tokens": 2}}
    body, usage = NativeResponses(SETTINGS, turn).parse_response(request_for(), dep(), orjson.dumps(upstream))
    assert orjson.loads(body) == {**upstream, "previous_response_id": "resp_prev"}
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (3, 2)


def test_a_cut_native_stream_ends_with_an_error_event() -> None:
    stream = NativeStream()
    out = stream.feed(STREAM[: STREAM.index(b"event: response.completed")]) + stream.finish()
    last = orjson.loads(out.rstrip().split(b"\n")[-1].removeprefix(b"data: "))
    assert (last["type"], last["sequence_number"], last["code"]) == ("error", 2, "server_error")
