"""Neutral chat completions -> Responses `response` objects, held to the openai SDK's `Response` type."""

from __future__ import annotations

from typing import Any

from openai.types.responses import Response

from gateway.dialects.responses.response import item_id, new_response_id, responses_usage, to_response
from tests.dialects.responses.helpers import request

RID = "resp_" + "ab" * 24


def completion(message: dict[str, Any], finish: str = "stop", usage: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "upstream-name",
                            "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                         "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return body


USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19,
         "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 3}}


def test_text_answer() -> None:
    answer = to_response(completion({"content": "Hello there."}, usage=USAGE), request(metadata={"k": "v"}), RID, 9)
    sdk = Response.model_validate(answer)
    assert sdk.output_text == "Hello there."
    assert (sdk.id, sdk.object, sdk.created_at, sdk.status, sdk.model) == (RID, "response", 9, "completed", "m")
    assert answer["output"] == [{"type": "message", "id": item_id(RID, "msg", 0), "role": "assistant",
                                 "status": "completed",
                                 "content": [{"type": "output_text", "text": "Hello there.", "annotations": [],
                                              "logprobs": []}]}]
    assert answer["usage"] == {"input_tokens": 12,
                               "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
                               "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 3},
                               "total_tokens": 19}
    assert sdk.metadata == {"k": "v"} and sdk.incomplete_details is None and sdk.error is None


def test_tool_calls_with_a_namespace_and_reasoning() -> None:
    read_request = request(tools=[
        {"type": "function", "name": "plain"},
        {"type": "namespace", "name": "ns", "description": "d", "tools": [{"type": "function", "name": "inner"}]}])
    answer = to_response(completion({"content": None, "reasoning_content": "Think first.", "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "plain", "arguments": '{"x": 1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "ns__inner", "arguments": "{}"}}]}, "tool_calls"),
        read_request, RID, 9)
    sdk = Response.model_validate(answer)
    assert [item.type for item in sdk.output] == ["reasoning", "function_call", "function_call"]
    assert answer["output"][0]["summary"] == [{"type": "summary_text", "text": "Think first."}]
    assert answer["output"][1] == {"type": "function_call", "id": item_id(RID, "fc", 1), "call_id": "call_a",
                                   "name": "plain", "arguments": '{"x": 1}', "status": "completed"}
    assert answer["output"][2]["namespace"] == "ns" and answer["output"][2]["name"] == "inner"
    assert sdk.status == "completed" and sdk.usage is None


def test_length_is_incomplete_and_refusals_are_parts() -> None:
    answer = to_response(completion({"content": "Partial", "refusal": "No."}, "length"), request(), RID, 9)
    sdk = Response.model_validate(answer)
    assert sdk.status == "incomplete" and sdk.incomplete_details is not None
    assert sdk.incomplete_details.reason == "max_output_tokens"
    assert answer["output"][0]["status"] == "incomplete"
    assert answer["output"][0]["content"][1] == {"type": "refusal", "refusal": "No."}
    filtered = to_response(completion({"content": ""}, "content_filter"), request(), RID, 9)
    assert filtered["incomplete_details"] == {"reason": "content_filter"} and filtered["output"] == []


def test_a_malformed_completion_still_makes_a_valid_response() -> None:
    for body in ({}, {"choices": "no"}, {"choices": [{"message": "no"}]},
                 {"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": 5}}]}}]}):
        Response.model_validate(to_response(body, request(), RID, 9))


def test_ids_and_usage_edges() -> None:
    rid = new_response_id()
    assert rid.startswith("resp_") and len(rid) == 53 and rid != new_response_id()
    assert item_id(rid, "msg", 10) == "msg_" + rid[5:] + "000a"
    assert responses_usage(None) is None
    assert responses_usage({"prompt_tokens": True, "completion_tokens": -1}) == {
        "input_tokens": 0, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 0}
