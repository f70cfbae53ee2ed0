"""Fixture loading and SSE helpers shared by the provider translation tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def sse(events: list[dict[str, Any]]) -> bytes:
    """Anthropic-style frames: `event:` and `data:` lines."""
    return b"".join(b"event: " + e["event"].encode() + b"\ndata: " + orjson.dumps(e["data"]) + b"\n\n"
                    for e in events)


def data_frames(frames: list[Any], end: bytes = b"\n\n") -> bytes:
    return b"".join(b"data: " + orjson.dumps(frame) + end for frame in frames)


def openai_events(body: bytes) -> list[Any]:
    """The data payloads of OpenAI SSE bytes: parsed JSON, or the literal `[DONE]`."""
    out: list[Any] = []
    for block in body.split(b"\n\n"):
        block = block.strip()
        if not block or block.startswith(b":"):
            continue
        assert block.startswith(b"data: "), block
        payload = block[len(b"data: "):]
        out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return out


def deltas(events: list[Any]) -> list[dict[str, Any]]:
    """The first choice's delta and finish_reason of each chunk that has choices."""
    return [{"delta": e["choices"][0]["delta"], "finish_reason": e["choices"][0]["finish_reason"]}
            for e in events if isinstance(e, dict) and e.get("choices")]


def reassemble(events: list[Any]) -> dict[str, Any]:
    """What a client rebuilds from a chat stream: text, tool calls by index, finish reason, usage."""
    text = ""
    calls: dict[int, dict[str, str]] = {}
    finish = None
    usage = None
    for e in events:
        if not isinstance(e, dict):
            continue
        usage = e.get("usage") or usage
        for choice in e.get("choices") or ():
            delta = choice["delta"]
            text += delta.get("content") or ""
            for call in delta.get("tool_calls") or ():
                slot = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] = function.get("name") or slot["name"]
                slot["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {"text": text, "calls": [calls[k] for k in sorted(calls)], "finish": finish, "usage": usage}


def split_feed(translator: Any, data: bytes, cuts: list[int]) -> bytes:
    """Feed `data` cut at the given offsets, then finish."""
    out = b""
    start = 0
    for cut in sorted(set(cuts)):
        out += translator.feed(data[start:cut])
        start = cut
    out += translator.feed(data[start:])
    return out + translator.finish()
