"""What the Responses dialect's tests share: the captured requests, and the openai SDK as the judge.

Every event and response object the translators write is validated against the openai SDK's own
types, and every stream is played through the SDK's stream accumulator, which refuses events out
of order, unknown items and identity changes as a real client would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.dialects.responses.request import ResponsesRequest, parse, read

FIXTURES = Path(__file__).parents[1] / "fixtures"
EVENT = TypeAdapter(ResponseStreamEvent)


def captured(name: str) -> dict[str, Any]:
    return orjson.loads((FIXTURES / name).read_bytes())


def request(**body: Any) -> ResponsesRequest:
    return read(parse(orjson.dumps({"model": "m", "input": "hi", **body})))


def events(data: bytes) -> list[dict[str, Any]]:
    """The events of a Responses SSE body; each frame's `event:` line must name its data's type."""
    out = []
    for block in data.split(b"\n\n"):
        if not block:
            continue
        name, payload = block.split(b"\n")
        event = orjson.loads(payload.removeprefix(b"data: "))
        assert name == b"event: " + event["type"].encode()
        out.append(event)
    return out


def judged(data: bytes) -> tuple[list[dict[str, Any]], Response | None]:
    """The events, after the SDK parsed each and accumulated them; the SDK's final response, if any."""
    found = events(data)
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for number, event in enumerate(found):
        assert event["sequence_number"] == number
        state.handle_event(EVENT.validate_python(event))
    final = next((Response.model_validate(e["response"]) for e in found if e["type"] == "response.completed"),
                 None)
    return found, final


def types(found: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in found]
