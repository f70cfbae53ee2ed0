"""The OpenAI adapter's pure parts: the stream translator and the error mapping, without a network."""

from __future__ import annotations

import orjson
import pytest

from gateway.core.errors import ContextLengthExceeded, InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from gateway.providers.errors import map_openai_error
from gateway.providers.openai.stream import OpenAIStreamTranslator


def event(data: dict | str) -> bytes:
    return b"data: " + (data.encode() if isinstance(data, str) else orjson.dumps(data)) + b"\n\n"


def chunk(content: str) -> dict:
    return {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}}],
            "usage": None}


USAGE = {"id": "c1", "object": "chat.completion.chunk", "choices": [],
         "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                   "prompt_tokens_details": {"cached_tokens": 2}}}
STREAM = event(chunk("a")) + event(chunk("b")) + event(chunk("c")) + event(USAGE) + event("[DONE]")


def relay(translator: OpenAIStreamTranslator, pieces: list[bytes]) -> bytes:
    return b"".join(translator.feed(p) for p in pieces) + translator.finish()


@pytest.mark.parametrize("strip", [True, False])
def test_every_split_point_gives_the_same_stream(strip: bool) -> None:
    expected = relay(OpenAIStreamTranslator(strip_usage=strip), [STREAM])
    for cut in range(1, len(STREAM)):
        translator = OpenAIStreamTranslator(strip_usage=strip)
        assert relay(translator, [STREAM[:cut], STREAM[cut:]]) == expected, cut
        assert translator.usage is not None and translator.usage.cached_tokens == 2


def test_usage_chunk_is_stripped_only_when_the_client_did_not_ask() -> None:
    stripped = relay(OpenAIStreamTranslator(strip_usage=True), [STREAM])
    kept = relay(OpenAIStreamTranslator(strip_usage=False), [STREAM])
    assert b'"prompt_tokens"' not in stripped and stripped.endswith(b"data: [DONE]\n\n")
    assert b'"prompt_tokens":7' in kept
    assert kept == STREAM


def test_byte_by_byte_with_crlf_framing() -> None:
    crlf = STREAM.replace(b"\n", b"\r\n")
    translator = OpenAIStreamTranslator(strip_usage=False)
    out = relay(translator, [crlf[i : i + 1] for i in range(len(crlf))])
    assert out == STREAM
    assert translator.usage is not None and translator.usage.prompt_tokens == 7


def test_null_choices_on_the_usage_chunk_become_a_list() -> None:
    odd = {**USAGE, "choices": None}
    out = relay(OpenAIStreamTranslator(strip_usage=False), [event(chunk("a")) + event(odd) + event("[DONE]")])
    usage_event = out.split(b"\n\n")[1]
    assert orjson.loads(usage_event[len(b"data: "):])["choices"] == []


def test_missing_done_is_added_and_a_trailing_partial_event_is_kept() -> None:
    out = relay(OpenAIStreamTranslator(strip_usage=True), [event(chunk("a")) + b"data: " + orjson.dumps(chunk("b"))])
    assert out == event(chunk("a")) + event(chunk("b")) + event("[DONE]")


def test_spaced_usage_and_usage_on_every_chunk_are_all_found() -> None:
    # A server that writes `"usage": {` with a space, and one that reports usage on every chunk
    # (vLLM's continuous usage stats): the last report counts, and a usage-only chunk is still
    # stripped for a client that did not ask, wherever it is in the read.
    spaced = b'data: {"id": "c1", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 9}}\n\n'
    every = {**chunk("a"), "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}}
    stream = event(every) + spaced + event(chunk("b")) + event("[DONE]")
    for strip in (True, False):
        translator = OpenAIStreamTranslator(strip_usage=strip)
        out = relay(translator, [stream])
        assert translator.usage is not None and translator.usage.completion_tokens == 9
        assert (spaced in out) is not strip
        assert out.startswith(event(every)) and out.endswith(event(chunk("b")) + event("[DONE]"))


def body(error: dict) -> bytes:
    return orjson.dumps({"error": error})


def test_error_mapping() -> None:
    ctx_error = map_openai_error(400, {}, body({"message": "This model's maximum context length is 8192 tokens.",
                                                "type": "invalid_request_error", "code": "context_length_exceeded"}),
                                 "d1")
    assert isinstance(ctx_error, ContextLengthExceeded) and ctx_error.param == "messages"
    # vLLM before v0.10.1: flat body, integer code.
    flat = map_openai_error(400, {}, orjson.dumps({"object": "error", "message": "bad temperature", "code": 400}), "d")
    assert isinstance(flat, InvalidRequest) and flat.message == "bad temperature" and flat.code is None
    rate = map_openai_error(429, {"Retry-After": "3"}, body({"message": "slow down"}), "d")
    assert isinstance(rate, RateLimited) and rate.headers()["retry-after"] == "3"
    auth = map_openai_error(401, {}, body({"message": "Incorrect API key provided: sk-abcdef123456"}), "d")
    assert isinstance(auth, UpstreamError) and auth.status == 502 and "sk-" not in auth.message
    assert map_openai_error(500, {}, b"<html>oops</html>", "d").status == 502
    assert map_openai_error(503, {}, b"", "d").status == 503
    assert isinstance(map_openai_error(408, {}, b"", "d"), UpstreamTimeout)
    leaked = map_openai_error(400, {}, body({"message": "bad key sk-live-abcdefghij in header"}), "d")
    assert "abcdefghij" not in leaked.message
