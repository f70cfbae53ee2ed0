"""The relay's pump: the translator's bytes, written by the dialect's writer when there is one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.types import Message

from gateway.core.errors import GatewayError
from gateway.core.types import Usage
from gateway.edge.protocol import ON_DISCONNECT
from gateway.edge.relay import DisconnectWatcher, pump
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


# The disconnect watcher: told by the gateway's protocol, or waiting in receive() elsewhere.


async def _parked_until_cancelled(receive: Any, scope: Any, fire: Callable[[], object]) -> tuple[bool, bool]:
    """Run a request task that parks; `fire` plays the client leaving. (cancelled, absorbed)."""
    absorbed = False

    async def request() -> None:
        nonlocal absorbed
        watcher = DisconnectWatcher(receive, scope)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            absorbed = watcher.absorb()
        finally:
            watcher.stop()

    task = asyncio.ensure_future(request())
    await asyncio.sleep(0)
    fire()
    await asyncio.wait_for(task, 5)
    return task.cancelled(), absorbed


async def test_the_protocols_word_cancels_the_request_and_stopping_unwatches() -> None:
    watched: list[tuple[Callable[[], None], bool]] = []

    def watch(on_lost: Callable[[], None], watching: bool) -> None:
        watched.append((on_lost, watching))

    async def receive() -> dict[str, str]:
        raise AssertionError("with the extension, nothing waits in receive()")

    scope = {"extensions": {ON_DISCONNECT: watch}}
    result = await _parked_until_cancelled(receive, scope, lambda: watched[0][0]())
    assert result == (False, True)  # cancelled by the watcher, and the cancel absorbed as its own
    assert [w for _, w in watched] == [True, False] and watched[0][0] == watched[1][0]


async def test_without_the_extension_a_task_waits_for_http_disconnect() -> None:
    left = asyncio.Event()

    async def receive() -> dict[str, str]:
        await left.wait()
        return {"type": "http.disconnect"}

    assert await _parked_until_cancelled(receive, {}, left.set) == (False, True)


async def test_a_failure_after_the_end_still_delivers_what_was_held_first() -> None:
    # A later piece of an answer that was all in fails (a plugin's chunk hook refusing it, say):
    # the events held for the closing frame go out first, then the caller sends the error.
    class FailsOnSecond(OpenAIStreamTranslator):
        def feed(self, data: bytes) -> bytes:
            if self.done:
                raise GatewayError("refused")
            return super().feed(data)

    sent: list[bytes] = []

    async def send(message: Message) -> None:
        sent.append(message["body"])

    try:
        await pump(send, CONTENT + DONE, _pieces(b"more"), FailsOnSecond(False), None, lambda: True)
    except GatewayError:
        pass
    else:
        raise AssertionError("the failure should reach the caller")
    assert sent == [CONTENT + DONE]
