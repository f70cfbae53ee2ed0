"""The Cohere plugin's pure translations, from JSON fixtures, without a network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from cohere_provider.errors import map_error
from cohere_provider.request import to_cohere
from cohere_provider.response import from_cohere
from cohere_provider.stream import CohereStreamTranslator

from gateway.core.errors import ContextLengthExceeded, GatewayError, InvalidRequest, RateLimited
from gateway.core.types import Usage

CASE = orjson.loads((Path(__file__).parent / "fixtures" / "chat.json").read_bytes())


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"event: " + e["event"].encode() + b"\ndata: " + orjson.dumps(e["data"]) + b"\n\n" for e in events)


def _chunks(out: bytes) -> list[Any]:
    payloads = [block.removeprefix(b"data: ") for block in out.split(b"\n\n") if block]
    return [p.decode() if p == b"[DONE]" else orjson.loads(p) for p in payloads]


def test_request() -> None:
    assert to_cohere(CASE["openai_request"], "command-r-plus") == CASE["cohere_request"]


@pytest.mark.parametrize(("body", "param"), [
    ({"n": 3}, "n"),
    ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
])
def test_what_cohere_cannot_do(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_cohere({"messages": [{"role": "user", "content": "x"}], **body}, "m")
    assert caught.value.param == param


def test_response() -> None:
    body, usage = from_cohere(CASE["cohere_response"], "command-r-plus", 1)
    assert body == CASE["openai_response"]
    assert usage == Usage(prompt_tokens=950, completion_tokens=52)


def test_stream_every_event() -> None:
    translator = CohereStreamTranslator(True, 1, "command-r-plus")
    chunks = _chunks(translator.feed(_sse(CASE["stream_events"])) + translator.finish())
    deltas = [{"delta": c["choices"][0]["delta"], "finish_reason": c["choices"][0]["finish_reason"]}
              for c in chunks if isinstance(c, dict) and c["choices"]]
    assert deltas == CASE["openai_deltas"]
    assert chunks[-2]["usage"]["prompt_tokens"] == 950 and chunks[-1] == "[DONE]"
    assert {c["id"] for c in chunks[:-1]} == {"29f14a5a"}


def test_stream_error_goes_in_band() -> None:
    translator = CohereStreamTranslator(False, 1, "m")
    failed = {"event": "message-end", "data": {"type": "message-end", "delta": {"finish_reason": "ERROR"}}}
    translator.feed(_sse([*CASE["stream_events"][:3], failed]))
    with pytest.raises(GatewayError):
        translator.finish()


def test_errors() -> None:
    assert isinstance(map_error(429, {"retry-after": "4"}, b'{"message": "slow"}', "d"), RateLimited)
    too_long = map_error(400, {}, b'{"message": "too many tokens: 140000 > 128000"}', "d")
    assert isinstance(too_long, ContextLengthExceeded)
    assert map_error(498, {}, b'{"message": "invalid api token"}', "d").code == "upstream_auth_failed"
    assert map_error(500, {}, b"oops", "d").status == 502
