"""The fake upstream's HTTP/1.1 server: a raw asyncio.Protocol over httptools, run on uvloop.

It must never be the bottleneck of a gateway benchmark, so it is not an ASGI app: keep-alive,
Content-Length bodies in, Content-Length JSON or chunked SSE out. An answer with no delay is written
from the parser callback itself; only an answer that has to wait gets a task.
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections import deque
from http import HTTPStatus
from typing import Any, cast

import httptools
import uvloop

from gateway.fake.app import Answer, App, Request, Stats, json_answer
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour, validate
from gateway.fake.replies import JSON, WireError

# (delay before sending, bytes to send); a response is played back as one of these lists.
Script = list[tuple[float, bytes]]

_STREAM_HEADERS = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("transfer-encoding", "chunked"),
)


@functools.cache
def _status_line(status: int) -> str:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return f"HTTP/1.1 {status} {reason}\r\n"


def _head(status: int, headers: tuple[tuple[str, str], ...], keep_alive: bool) -> bytes:
    lines = [_status_line(status)]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    if not keep_alive:
        lines.append("connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


def _json_response(answer: Answer, keep_alive: bool) -> bytes:
    # An answer may name its own content type (a provider fake's /metrics text); JSON otherwise.
    typed = answer.headers and any(name == "content-type" for name, _ in answer.headers)
    headers = (
        *(() if typed else (("content-type", "application/json"),)),
        ("content-length", str(len(answer.body))),
        *answer.headers,
    )
    return _head(answer.status, headers, keep_alive) + answer.body


def _coalesce(steps: Script) -> Script:
    """Join steps with no delay between them: one chunk and one write instead of one per event."""
    joined: list[tuple[float, list[bytes]]] = []
    for delay, data in steps:
        if joined and not delay:
            joined[-1][1].append(data)
        else:
            joined.append((delay, [data]))
    return [(delay, b"".join(parts)) for delay, parts in joined]


def _script(answer: Answer, keep_alive: bool) -> tuple[Script, bool]:
    """The bytes of a response with the delays before them, and whether to abort the connection after."""
    b = answer.behaviour
    latency = b.latency_ms if b is not None else 0.0
    if answer.stream is None or b is None:
        if b is not None and b.drop_after is not None:
            return [(latency, b"")], True
        return [(latency, _json_response(answer, keep_alive))], False
    steps, abort = answer.stream.steps(b)
    # A stream that is not SSE (speech's audio) names its own content type.
    typed = any(name == "content-type" for name, _ in answer.headers)
    head = tuple(h for h in _STREAM_HEADERS if not (typed and h[0] == "content-type")) + answer.headers
    script = [(latency, _head(200, head, keep_alive))]
    script.extend((delay, _chunk(data)) for delay, data in _coalesce(steps))
    if not abort:
        script.append((0.0, b"0\r\n\r\n"))
    return script, abort


class _Connection(asyncio.Protocol):
    def __init__(self, app: App, live: set[_Connection]):
        self._app = app
        self._live = live
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        # Pipelined requests that arrived while an answer was still being played back.
        self._pending: deque[tuple[Request, bool]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._streaming = False  # a stream is under way: losing the client now is a cancellation

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._live.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._live.discard(self)
        self._pending.clear()
        if self._streaming:
            self._streaming = False
            self._app.stats.stream_ended(completed=False, cancelled=True)
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self._reject_malformed()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        # curl sends this for bodies over 1 KiB and waits a second for it otherwise.
        if any(name.lower() == b"expect" and value.lower() == b"100-continue" for name, value in self._headers):
            assert self._transport is not None
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        path, _, query = self._url.decode("latin-1").partition("?")
        request = Request(
            method=self._parser.get_method().decode("ascii"),
            path=path,
            query=query,
            headers={name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self._headers},
            body=b"".join(self._body),
        )
        keep_alive = self._parser.should_keep_alive()
        if self._task is not None or self._pending:
            self._pending.append((request, keep_alive))
        else:
            self._serve(request, keep_alive)

    # playback

    def _serve(self, request: Request, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        answer = self._app.handle(request)
        script, abort = _script(answer, keep_alive)
        if answer.stream is not None:
            self._app.stats.stream_started()
            self._streaming = True
        if any(delay for delay, _ in script):
            self._task = asyncio.get_running_loop().create_task(self._play(script, abort, keep_alive))
        else:
            transport.write(b"".join(data for _, data in script))
            self._finish(abort, keep_alive)

    async def _play(self, script: Script, abort: bool, keep_alive: bool) -> None:
        # Cancelled by connection_lost; nothing is left to clean up then.
        assert self._transport is not None
        for delay, data in script:
            if delay:
                await asyncio.sleep(delay / 1000)
            if data:
                self._transport.write(data)
        self._task = None
        self._finish(abort, keep_alive)
        while self._pending and self._task is None and not self._transport.is_closing():
            self._serve(*self._pending.popleft())

    def _finish(self, abort: bool, keep_alive: bool) -> None:
        assert self._transport is not None
        if self._streaming:
            self._streaming = False
            self._app.stats.stream_ended(completed=not abort, cancelled=False)
        if abort:
            self._transport.abort()
        elif not keep_alive:
            self._transport.close()

    def _reject_malformed(self) -> None:
        assert self._transport is not None
        if self._task is None and not self._transport.is_closing():
            answer = json_answer(400, WireError(400, "Malformed HTTP request.").body())
            self._transport.write(_json_response(answer, keep_alive=False))
            self._transport.close()
        else:
            self._transport.abort()


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class FakeUpstream:
    """A running fake upstream; `url` is the OpenAI base URL to give a client."""

    def __init__(self, server: asyncio.Server, app: App, connections: set[_Connection], host: str):
        self._server = server
        self._app = app
        self._connections = connections
        self.port: int = server.sockets[0].getsockname()[1]
        self.url = f"http://{_url_host(host)}:{self.port}/v1"

    @property
    def stats(self) -> Stats:
        return self._app.stats

    @property
    def requests(self) -> deque[JSON]:
        return self._app.requests

    def recorded(self, request_id: str | None = None) -> list[JSON]:
        return self._app.recorded(request_id)

    async def close(self) -> None:
        self._server.close()
        for connection in list(self._connections):
            connection.abort()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # let the aborted connections run connection_lost

    async def __aenter__(self) -> FakeUpstream:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


async def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    behaviour: Behaviour = DEFAULT_BEHAVIOUR,
    require_key: str | None = None,
) -> FakeUpstream:
    app = App(validate(behaviour), require_key)
    connections: set[_Connection] = set()
    loop = asyncio.get_running_loop()
    # A deep backlog, because benchmarks open hundreds of connections at once.
    server = await loop.create_server(lambda: _Connection(app, connections), host, port, backlog=4096)
    return FakeUpstream(server, app, connections, host)


async def serve_app(app: App, host: str = "127.0.0.1", port: int = 0) -> FakeUpstream:
    """Serve a ready-made `App`, e.g. a provider fake's subclass (gateway/fake/providers/)."""
    connections: set[_Connection] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(app, connections), host, port, backlog=4096)
    return FakeUpstream(server, app, connections, host)


async def _serve_until_signalled(host: str, port: int, behaviour: Behaviour, require_key: str | None) -> None:
    fake = await start_server(host, port, behaviour, require_key)
    await serve_until_signalled(fake, f"fake-upstream listening on {fake.url}")


async def serve_until_signalled(fake: FakeUpstream, announce: str) -> None:
    """Print `announce` (the line scripts wait for), then serve until SIGINT or SIGTERM."""
    print(announce, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.close()


def run(host: str, port: int, behaviour: Behaviour, require_key: str | None = None) -> None:
    """Serve on uvloop until SIGINT/SIGTERM; prints one `listening` line once bound."""
    uvloop.run(_serve_until_signalled(host, port, behaviour, require_key))
