"""Neutral chat chunks -> the Responses event stream, played through the openai SDK's accumulator."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.dialects.responses.response import item_id
from gateway.dialects.responses.stream import ResponsesStreamWriter
from tests.dialects.responses.helpers import judged, request, types
from tests.providers.helpers import data_frames, split_feed

RID = "resp_" + "cd" * 24
DONE = b"data: [DONE]\n\n"


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "u", "choices": choices,
            **extra}


USAGE = {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14, "prompt_tokens_details": {"cached_tokens": 2}}
TEXT = [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello"}), chunk({"content": " world"}),
        chunk({}, "stop"), chunk(usage=USAGE)]
MIXED = [
    chunk({"role": "assistant", "reasoning_content": "Let me "}), chunk({"reasoning_content": "think."}),
    chunk({"content": "Calling."}),
    chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                           "function": {"name": "look", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q":'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                           "function": {"name": "ns__inner", "arguments": "{}"}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "x"}'}}]}),
    chunk({}, "tool_calls"), chunk(usage=USAGE),
]
TOOLS = [{"type": "function", "name": "look"},
         {"type": "namespace", "name": "ns", "description": "d", "tools": [{"type": "function", "name": "inner"}]}]


def write(chunks: list[dict[str, Any]], end: bytes = DONE, **body: Any) -> tuple[ResponsesStreamWriter, bytes]:
    writer = ResponsesStreamWriter(request(stream=True, **body), RID, 7)
    return writer, writer.feed(data_frames(chunks) + end) + writer.finish()


def test_text_stream_is_the_documented_sequence() -> None:
    writer, out = write(TEXT)
    found, final = judged(out)
    assert types(found) == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert found[0]["response"]["status"] == "in_progress" and found[0]["response"]["output"] == []
    assert [e["delta"] for e in found if e["type"] == "response.output_text.delta"] == ["Hello", " world"]
    assert found[6]["text"] == "Hello world"
    assert final is not None and final.output_text == "Hello world" and final.status == "completed"
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (5, 9)
    assert final.usage.input_tokens_details.cached_tokens == 2
    assert writer.done and writer.response == found[-1]["response"]


def test_reasoning_text_and_parallel_tool_calls() -> None:
    writer, out = write(MIXED, tools=TOOLS)
    found, final = judged(out)
    assert types(found)[2:8] == [
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"]
    assert final is not None
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call", "function_call"]
    assert final.output[0].summary[0].text == "Let me think."  # type: ignore[union-attr]
    first, second = writer.response["output"][2:]  # type: ignore[index]
    assert (first["call_id"], first["name"], first["arguments"]) == ("call_a", "look", '{"q": "x"}')
    assert (second["namespace"], second["name"], second["id"]) == ("ns", "inner", item_id(RID, "fc", 3))
    # Both calls stayed open while the model streamed them, and were closed in order at the end.
    dones = [e for e in found if e["type"] == "response.function_call_arguments.done"]
    assert [e["output_index"] for e in dones] == [2, 3]


def test_length_ends_incomplete() -> None:
    _, out = write([chunk({"content": "Cut"}), chunk({}, "length")])
    found, final = judged(out)
    assert final is None and found[-1]["type"] == "response.incomplete"
    assert found[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert found[-2]["item"]["status"] == "incomplete"


def test_an_in_band_error_fails_the_response_with_what_was_finished() -> None:
    error = {"error": {"message": "upstream fell over", "type": "server_error", "code": "upstream_timeout"}}
    writer, out = write([chunk({"content": "Par"}), error])
    found, _ = judged(out)
    assert types(found)[-2:] == ["error", "response.failed"]
    assert found[-2]["code"] == "server_error" and found[-2]["message"] == "upstream fell over"
    assert found[-1]["response"]["error"] == {"code": "server_error", "message": "upstream fell over"}
    assert writer.response is not None and writer.response["status"] == "failed"


def test_a_stream_cut_before_its_finish_fails() -> None:
    _, out = write(TEXT[:2], end=b"")
    found, _ = judged(out)
    assert types(found)[-1] == "response.failed"
    assert "ended before the answer was complete" in found[-1]["response"]["error"]["message"]


def test_finished_without_done_still_completes_and_nothing_follows_the_end() -> None:
    writer, out = write(TEXT, end=b"")
    assert judged(out)[1] is not None
    assert writer.feed(data_frames(TEXT)) == b"" and writer.finish() == b""


def test_chunks_and_start_directly() -> None:
    writer = ResponsesStreamWriter(request(stream=True), RID, 7)
    head = writer.start()
    assert writer.start() == b""
    out = head + b"".join(writer.chunk(c) for c in TEXT) + writer.end()
    assert judged(out)[1] is not None


def _whole(chunks: list[dict[str, Any]]) -> bytes:
    return write(chunks, tools=TOOLS)[1]


@given(st.lists(st.integers(min_value=0, max_value=len(data_frames(MIXED) + DONE)), max_size=30))
def test_any_split_of_the_bytes_gives_the_same_events(cuts: list[int]) -> None:
    writer = ResponsesStreamWriter(request(stream=True, tools=TOOLS), RID, 7)
    assert split_feed(writer, data_frames(MIXED) + DONE, cuts) == _whole(MIXED)


@given(st.lists(st.integers(min_value=0, max_value=len(data_frames(TEXT, b"\r\n\r\n"))), max_size=30))
def test_any_split_of_crlf_framed_bytes(cuts: list[int]) -> None:
    writer = ResponsesStreamWriter(request(stream=True), RID, 7)
    out = split_feed(writer, data_frames(TEXT, b"\r\n\r\n"), cuts)
    assert out == write(TEXT, end=b"")[1]
