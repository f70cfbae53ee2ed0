"""The relay's pump: the translator's bytes, written by the dialect's writer when there is one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from starlette.types import Message

from gateway.core.errors import GatewayError
from gateway.core.types import Usage
from gateway.edge.relay import pump
from gateway.providers.openai.stream import OpenAIStreamTranslator


class Tagged:
    """A translator: the neutral stream is the upstream's bytes, tagged."""

    usage: Usage | None = None
    done = False

    def feed(self, data: bytes) -> bytes:
        return b"<" + data + b">" if data else b""

    def finish(self) -> bytes:
        return b""


class Loud:
    """A writer: the client's dialect shouts."""

    headers: dict[str, str] = {}

    def __init__(self) -> None:
        self.fed: list[bytes] = []

    async def feed(self, data: bytes) -> bytes:
        self.fed.append(data)
        return data.upper()

    async def finish(self) -> bytes:
        return b""

    async def error(self, error: GatewayError) -> bytes:
        return b""


async def _chunks() -> AsyncIterator[bytes]:
    for chunk in (b"b", b"", b"c"):
        yield chunk


async def _pumped(writer: Loud | None) -> list[bytes]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await pump(send, b"a", _chunks(), Tagged(), writer)
    assert all(m["more_body"] for m in sent)
    return [m["body"] for m in sent]


async def test_without_a_writer_the_translators_bytes_go_out() -> None:
    assert await _pumped(None) == [b"<a>", b"<b>", b"<c>"]


async def test_a_writer_writes_each_translated_piece_once() -> None:
    writer = Loud()
    assert await _pumped(writer) == [b"<A>", b"<B>", b"<C>"]
    assert writer.fed == [b"<a>", b"<b>", b"", b"<c>"]


# With a real translator: what the pump holds back for the closing frame, and what it never does.

CONTENT = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
DONE = b"data: [DONE]\n\n"


async def _pieces(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _relay(first: bytes, rest: tuple[bytes, ...], ended: Callable[[], bool]) -> tuple[list[bytes], bytes]:
    sent: list[bytes] = []

    async def send(message: Message) -> None:
        sent.append(message["body"])

    held = await pump(send, first, _pieces(*rest), OpenAIStreamTranslator(False), None, ended)
    return sent, held


async def test_a_stream_that_arrives_whole_is_held_for_the_closing_frame() -> None:
    # The upstream's whole body is in (its connection says complete): the last events can only be
    # followed by the closing frame, and go out with it.
    sent, held = await _relay(CONTENT + DONE, (), lambda: True)
    assert (sent, held) == ([], CONTENT + DONE)


async def test_events_before_the_end_go_out_as_they_come() -> None:
    sent, held = await _relay(CONTENT, (CONTENT + DONE,), lambda: True)
    assert (sent, held) == ([CONTENT], CONTENT + DONE)


async def test_nothing_is_held_while_the_upstream_may_still_send() -> None:
    # [DONE] is in but the body is not complete: a later read may follow, so nothing waits for it.
    sent, held = await _relay(CONTENT + DONE, (b"\n",), lambda: False)
    assert (sent, held) == ([CONTENT + DONE], b"")
    # Complete, but the stream has not finished: sent at once too.
    sent, held = await _relay(CONTENT, (CONTENT,), lambda: True)
    assert (sent, held) == ([CONTENT, CONTENT], b"")
