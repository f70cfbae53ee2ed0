"""The relay's pump: the translator's bytes, written by the dialect's writer when there is one."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.types import Message

from gateway.core.errors import GatewayError
from gateway.core.types import Usage
from gateway.edge.relay import pump


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
