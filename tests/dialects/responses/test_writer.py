"""The Responses dialect's stream writer, as the relay calls it: the neutral stream in, the API's
events out, the response stored before its terminal event; a native upstream's events pass as they are."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.config.file import Deployment
from gateway.core.errors import RateLimited, ServiceUnavailable, UpstreamTimeout
from gateway.core.types import Endpoint
from gateway.dialects.responses.endpoint import ResponsesWriter
from gateway.dialects.responses.turn import ResponsesTurn
from gateway.pipeline.context import RequestContext
from tests.dialects.responses.helpers import events, judged, request, types
from tests.dialects.responses.test_stream import DONE, RID, TEXT
from tests.providers.helpers import data_frames

NATIVE = Deployment(id="native-dep", base_url="http://upstream.test/v1", responses_api="native")
CHAT = Deployment(id="chat-dep", base_url="http://upstream.test/v1")


class Store:
    """What `save` was handed, and when: the bytes the writer had returned until then."""

    def __init__(self, writer_out: list[bytes], fails: bool = False) -> None:
        self.saved: list[tuple[str, int]] = []
        self.response: dict[str, Any] | None = None  # the last one handed over
        self.deployments: list[Deployment | None] = []
        self.out = writer_out
        self.fails = fails

    async def __call__(self, turn: ResponsesTurn, response: dict[str, Any], deployment: Deployment | None) -> None:
        self.response = response
        self.deployments.append(deployment)
        self.saved.append((response.get("status", ""), len(self.out)))
        if self.fails:
            raise ServiceUnavailable("the store is down")


def setup(native: bool = False, fails: bool = False, previous: str | None = None,
          ) -> tuple[ResponsesWriter, ResponsesTurn, Store, list[bytes]]:
    extra = {} if previous is None else {"previous_response_id": previous}
    turn = ResponsesTurn(request(stream=True, **extra), {}, [], None, RID, 7)
    ctx = RequestContext("req_1", Endpoint.CHAT, 0.0, api="responses")
    # The writer is made before routing: the deployment that answers is placed later, as the proxy does.
    out: list[bytes] = []
    store = Store(out, fails)
    writer = ResponsesWriter(turn, ctx, store)
    ctx.deployment = NATIVE if native else CHAT
    return writer, turn, store, out


async def test_the_neutral_stream_is_written_as_events_and_stored_before_the_last_one() -> None:
    writer, _, store, out = setup()
    assert dict(writer.headers) == {}
    frames = data_frames(TEXT) + DONE
    for i in range(0, len(frames), 37):  # pieces that cut events in two
        out.append(await writer.feed(frames[i:i + 37]))
    pieces = len(out)
    out.append(await writer.finish())
    found, final = judged(b"".join(out))
    assert types(found)[-1] == "response.completed" and final is not None and final.output_text == "Hello world"
    assert store.response == found[-1]["response"] and store.deployments == [CHAT]
    # Saved once, while the piece holding `response.completed` was being written: before it went out.
    assert len(store.saved) == 1 and store.saved[0][0] == "completed" and store.saved[0][1] < pieces
    assert b"response.completed" in out[store.saved[0][1]]


async def test_an_in_band_error_fails_the_response_and_ends_the_stream() -> None:
    writer, _, store, out = setup()
    out.append(await writer.feed(data_frames(TEXT[:3])))
    out.append(await writer.error(RateLimited("slow down")))
    found = events(b"".join(out))
    assert types(found)[-2:] == ["error", "response.failed"]
    assert (found[-2]["code"], found[-2]["message"]) == ("rate_limit_exceeded", "slow down")
    assert found[-1]["response"]["output"] == [] and store.response == found[-1]["response"]
    assert store.saved == [("failed", 1)]
    # Nothing follows the failure: not the rest of the stream, its end, nor a second error.
    assert await writer.feed(data_frames(TEXT[3:]) + DONE) == b""
    assert await writer.finish() == b"" and await writer.error(UpstreamTimeout("late")) == b""
    assert len(store.saved) == 1


async def test_a_stream_cut_before_done_fails_the_response() -> None:
    writer, _, store, out = setup()
    out.append(await writer.feed(data_frames(TEXT[:3])))
    out.append(await writer.finish())
    found = events(b"".join(out))
    assert types(found)[-1] == "response.failed"
    assert "ended before the answer was complete" in found[-1]["response"]["error"]["message"]
    # The client had the text as it came; the failed response holds only the items that were finished.
    assert [e["delta"] for e in found if e["type"] == "response.output_text.delta"] == ["Hello", " world"]
    assert found[-1]["response"]["output"] == []
    assert store.saved == [("failed", 1)]


async def test_a_store_that_fails_does_not_stop_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    writer, *_ = setup(fails=True)
    written = await writer.feed(data_frames(TEXT) + DONE)
    assert types(events(written))[-1] == "response.completed"
    assert "could not be stored: the store is down" in caplog.text


def native_event(kind: str, sequence: int, **fields: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(
        {"type": kind, "sequence_number": sequence, **fields}) + b"\n\n"


async def test_a_native_stream_passes_as_it_is_and_is_stored_once_its_response_is_known() -> None:
    writer, _, store, out = setup(native=True, previous="resp_prev")
    created = native_event("response.created", 0, response={"id": "resp_up", "status": "in_progress"})
    assert await writer.feed(created) == created
    assert store.saved == []
    # The terminal event carries the final response: stored (as the client's turn echoes it) before it goes out.
    completed = native_event("response.completed", 1, response={"id": "resp_up", "status": "completed"})
    out.append(await writer.feed(completed))
    assert out == [completed] and store.saved == [("completed", 0)]
    assert store.response == {"id": "resp_up", "status": "completed", "previous_response_id": "resp_prev"}
    assert store.deployments == [NATIVE]
    assert await writer.finish() == b""
    # Once: a second terminal event (or an error after the first) stores nothing more.
    assert await writer.feed(native_event("response.failed", 2, response={"id": "resp_up"})) != b""
    assert await writer.error(UpstreamTimeout("late")) != b"" and len(store.saved) == 1


async def test_a_native_stream_hears_an_in_band_error_as_the_apis_error_event() -> None:
    writer, _, store, _ = setup(native=True)
    written = await writer.error(UpstreamTimeout("no answer in time"))
    assert written.startswith(b"event: error\n")
    assert events(written) == [{"type": "error", "sequence_number": 0, "code": "upstream_timeout",
                                "message": "no answer in time", "param": None}]
    assert store.saved == []
