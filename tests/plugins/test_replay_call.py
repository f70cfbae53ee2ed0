"""A cached stream's replay, as the client's dialect writes it."""

from __future__ import annotations

from starlette.types import Message

from gateway.dialects.anthropic.endpoint import MessagesWriter
from gateway.plugins.replay_call import ReplayCall

NEUTRAL = (b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
           b"data: [DONE]\n\n")


async def _replayed(replay: ReplayCall) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await replay({"type": "http"}, None, send)  # type: ignore[arg-type]
    return sent


async def test_the_neutral_stream_replays_as_it_is() -> None:
    replay = ReplayCall(NEUTRAL, {"x-gateway-cache": "hit"})
    assert replay.written(None) is replay
    start, body = await _replayed(replay)
    assert (b"x-gateway-cache", b"hit") in start["headers"] and (b"content-type", b"text/event-stream; charset=utf-8") \
        in start["headers"]
    assert body == {"type": "http.response.body", "body": NEUTRAL, "more_body": False}


async def test_a_dialects_writer_writes_the_replay() -> None:
    start, body = await _replayed(ReplayCall(NEUTRAL, {"x-gateway-cache": "hit"}).written(MessagesWriter("m", "req_1")))
    assert start["headers"][-2:] == [(b"x-gateway-cache", b"hit"), (b"request-id", b"req_1")]
    names = [line.removeprefix(b"event: ") for line in body["body"].split(b"\n") if line.startswith(b"event: ")]
    assert names == [b"message_start", b"content_block_start", b"content_block_delta", b"content_block_stop",
                     b"message_delta", b"message_stop"]
    assert not body["more_body"]
