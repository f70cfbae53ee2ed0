"""What a stream's pump holds back for its closing frame always reaches the client before
anything else ends the stream: a drain cut, or durable mode's wait for the disk.

The proxy, exchange and context are stand-ins with just what `StreamCall` reads of them; the
stream is the OpenAI translator's, fed a whole answer that arrived in one read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from starlette.types import Message

from gateway.pipeline.stream_call import OpenStream, StreamCall
from gateway.providers.openai.stream import OpenAIStreamTranslator

CONTENT = b'data: {"choices":[{"index":0,"delta":{"content":"the answer"}}]}\n\n'
ANSWER = CONTENT + b"data: [DONE]\n\n"


class WholeStream:
    """An upstream response whose body is all in: the pump may hold its last events."""

    headers: dict[str, str] = {}

    def __init__(self) -> None:
        self.closed = False

    def ended(self) -> bool:
        return not self.closed

    def close(self) -> None:
        self.closed = True


async def _no_more() -> AsyncIterator[bytes]:
    return
    yield b""


async def _relay(durable_wait_s: float | None, cut_after_s: float | None) -> list[bytes]:
    async def open_stream(ctx: Any) -> OpenStream:
        return OpenStream(WholeStream(), _no_more(), ANSWER, OpenAIStreamTranslator(False))  # type: ignore[arg-type]

    async def finish() -> None:
        await asyncio.sleep(durable_wait_s or 0)  # durable mode: the journal's fsync

    ctx = SimpleNamespace(plugins=None, stream=True, status=0, error_type=None, response_headers={},
                          request_id="req_held", cancelled=False, usage=None)  # fmt: skip
    proxy = SimpleNamespace(open_stream=open_stream, timeouts=SimpleNamespace(send_s=10),
                            durable=object() if durable_wait_s is not None else None)  # fmt: skip
    call = StreamCall(proxy, SimpleNamespace(ctx=ctx, finish=finish), SimpleNamespace(), None)  # type: ignore[arg-type]
    bodies: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    async def receive() -> Message:
        await asyncio.sleep(100)
        return {"type": "http.disconnect"}

    task = asyncio.ensure_future(call({"type": "http"}, receive, send))
    if cut_after_s is not None:
        await asyncio.sleep(cut_after_s)
        task.cancel()  # the drain after SIGTERM ran out
    await asyncio.wait_for(task, 5)
    return bodies


async def test_a_whole_answer_goes_out_with_its_closing_frame() -> None:
    assert await _relay(durable_wait_s=None, cut_after_s=None) == [ANSWER]


async def test_durable_mode_sends_the_events_before_waiting_for_the_disk_and_a_cut_keeps_them() -> None:
    bodies = await _relay(durable_wait_s=1.0, cut_after_s=0.1)
    assert bodies[0] == ANSWER  # the answer went out before the wait
    assert b"shutting down" in bodies[-1] and len(bodies) == 2


async def test_durable_mode_without_a_cut_ends_with_an_empty_closing_frame() -> None:
    assert await _relay(durable_wait_s=0.01, cut_after_s=None) == [ANSWER, b""]
