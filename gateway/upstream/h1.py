"""HTTP/1.1 over one upstream socket: a request's bytes out, the response read by httptools.

A `Connection` carries one exchange at a time (no pipelining). The caller writes a request, then
waits for what it needs (the headers, more body, the end); the protocol wakes it once per arrival
that satisfies the wait, not once per parser callback. One timer per connection bounds the waits
(the watchdog): it is re-armed lazily when it fires early, not set and cancelled around each read.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Protocol, cast
from urllib.parse import quote, urlsplit

import httptools

# What a wait is for.
HEADERS, DATA, COMPLETE = 1, 2, 3

# Characters a request-target may hold as they are (RFC 9112 origin-form, plus "%" so that
# existing escapes stay as written); anything else (spaces, non-ASCII) is percent-encoded.
_TARGET_SAFE = "!$&'()*+,;=:@/?%-._~"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
# Request headers we add unless the caller set them, as aiohttp did (bit per header).
_HOST, _ACCEPT, _ENCODING, _LENGTH, _TRANSFER = 1, 2, 4, 8, 16
_OWN_HEADERS = {"host": _HOST, "accept": _ACCEPT, "accept-encoding": _ENCODING, "content-length": _LENGTH,
                "transfer-encoding": _TRANSFER}


class ServerDisconnected(ConnectionError):
    """The upstream closed the connection before its response was complete."""


class InvalidURL(ValueError):
    """A deployment URL this client cannot send to (not http or https, no host)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL taken apart once: where to connect and what to write in the request line."""

    key: tuple[str, str, int]  # (scheme, host, port): the pool's key
    path: str  # path and query, as the request-target
    host_header: str
    tls: bool


def parse_target(url: str, exact: bool) -> Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise InvalidURL(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    port = parts.port or _DEFAULT_PORTS[scheme]
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if not exact:
        path = quote(path, safe=_TARGET_SAFE)
    # As SigV4 (botocore) signs it: the port only when it is not the scheme's default.
    host_header = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS[scheme]:
        host_header = f"{host_header}:{port}"
    return Target((scheme, host, port), path, host_header, scheme == "https")


def request_head(method: str, target: Target, headers: dict[str, str], body: bytes | None,
                 streamed: bool) -> tuple[bytes, bool]:
    """The request line and headers, and whether a `streamed` body goes chunked (the caller gave no
    Content-Length). A bytes body gets its Content-Length; so does a POST without one (0)."""
    parts = [method, " ", target.path, " HTTP/1.1\r\n"]
    given = 0
    for name, value in headers.items():
        given |= _OWN_HEADERS.get(name.lower(), 0)
        parts += (name, ": ", value, "\r\n")
    lines = 2 + len(headers)  # the request line, the caller's headers, the blank line
    if not given & _HOST:
        parts += ("Host: ", target.host_header, "\r\n")
        lines += 1
    if not given & _ACCEPT:
        parts.append("Accept: */*\r\n")
        lines += 1
    if not given & _ENCODING:
        parts.append("Accept-Encoding: gzip, deflate\r\n")
        lines += 1
    chunked = streamed and not given & _LENGTH
    if not given & (_LENGTH | _TRANSFER):
        if chunked:
            parts.append("Transfer-Encoding: chunked\r\n")
            lines += 1
        elif body is not None or method in _BODY_METHODS:
            parts += ("Content-Length: ", str(len(body)) if body is not None else "0", "\r\n")
            lines += 1
    parts.append("\r\n")
    text = "".join(parts)
    # A line break inside a name or value would smuggle in a header (aiohttp refused these too).
    if text.count("\n") != lines or text.count("\r") != lines:
        raise ValueError("a line break in an upstream request header")
    return text.encode("utf-8"), chunked


class Decoder:
    """Content-Encoding gzip or deflate undone as the body arrives (aiohttp's auto_decompress)."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding == "gzip"
        self._zlib: zlib._Decompress | None = zlib.decompressobj(47) if self._gzip else None

    def decompress(self, data: bytes) -> bytes:
        if self._zlib is None:
            # "deflate" is meant to be zlib-wrapped; some servers send raw deflate.
            self._zlib = zlib.decompressobj(15 if data and data[0] & 0x0F == 8 else -15)
        return self._zlib.decompress(data)

    def flush(self) -> bytes:
        return self._zlib.flush() if self._zlib is not None else b""


def decoder_for(encoding: str) -> Decoder | None:
    return Decoder(encoding) if encoding in ("gzip", "deflate", "x-gzip") else None


class Owner(Protocol):
    def lost_idle(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, key: tuple[str, str, int], owner: Owner) -> None:
        self.loop = loop
        self.key = key
        self._owner = owner
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        # Once set, the connection is done for; the waits raise it.
        self.failure: BaseException | None = None
        self.busy = False  # an exchange is under way
        self.pooled = False  # idle in the pool
        self.idle_since = 0.0
        # The response under way.
        self.status = 0
        self.headers: dict[str, str] = {}
        self.encoding = ""
        self.body: list[bytes] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self._framed = False  # Content-Length or chunked; otherwise the body runs until the close
        # The one wait at a time: for what (HEADERS, DATA, COMPLETE), and the writer's back-pressure.
        self._waiter: asyncio.Future[None] | None = None
        self._wants = 0
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        # The watchdog: a unary exchange has one deadline; a stream gives each wait `_read_timeout`.
        self._deadline: float | None = None
        self._read_timeout = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # the caller's side

    def begin(self, deadline: float | None, read_timeout: float) -> None:
        """Start an exchange: a fresh response, and its bound (a deadline, or a per-wait timeout)."""
        self.busy = True
        self.status = 0
        self.headers = {}
        self.encoding = ""
        self.body = []
        self.headers_done = self.complete = self.keep_alive = self._framed = False
        self._read_timeout = read_timeout
        if deadline is not None:
            self._arm(deadline)
        else:
            self._deadline = None

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark. A failure raises,
        unless the response is already complete (the caller stops writing then)."""
        if self._paused and self.failure is None:
            self._drain = self.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self.failure is not None and not self.complete:
            raise self.failure

    async def wait(self, wants: int) -> None:
        """Wait until the response has what `wants` asks for (the caller checks), or fails."""
        if self.failure is not None:
            raise self.failure
        if self._read_timeout:
            self._arm(self.loop.time() + self._read_timeout)
        self._wants = wants
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    @property
    def reusable(self) -> bool:
        return (self.complete and self.keep_alive and self.failure is None and self.transport is not None
                and not self.transport.is_closing())

    def done(self) -> None:
        """The exchange is over (the pool takes the connection back or closes it)."""
        self.busy = False
        self._deadline = None

    def abort(self) -> None:
        self.busy = False
        self._deadline = None
        if self.failure is None:
            self.failure = ServerDisconnected("the connection was closed")
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.pooled:
            self._owner.lost_idle(self)
        if self.headers_done and not self.complete and not self._framed and self.failure is None:
            self.complete = True  # a body without framing ends with the connection
            self.keep_alive = False
            self._wake()
        if not self.complete:
            self._fail(exc if exc is not None else ServerDisconnected("the upstream closed the connection"))
        elif self.failure is None:
            self.failure = ServerDisconnected("the upstream closed the connection")
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            # Bytes nobody asked for on an idle connection: it cannot be trusted with another request.
            self._fail(ServerDisconnected("unexpected bytes on an idle connection"))
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(exc)
            return
        self._wake()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            raise ServerDisconnected("a second response to one request")

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1")
        text = value.decode("utf-8", "surrogateescape")
        if key not in self.headers:  # the first of repeated headers, as dict(CIMultiDict) gave
            self.headers[key] = text
        if name[0] in b"cCtT":
            lower = name.lower()
            if lower == b"content-encoding":
                self.encoding = text.strip().lower()
            elif lower in (b"content-length", b"transfer-encoding"):
                self._framed = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            # An interim response (100 Continue): the real one follows.
            self.headers = {}
            self.encoding = ""
            self._framed = False
            return
        self.status = status
        self.headers_done = True
        if status in (204, 304):
            self._framed = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True
            self.keep_alive = self._parser.should_keep_alive()

    # inside

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        wants = self._wants
        if (self.complete or self.failure is not None or (wants == DATA and self.body)
                or (wants == HEADERS and self.headers_done)):
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        if self.transport is not None:
            self.transport.abort()
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        if self._timer is None or self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(deadline, self._watch)
            self._timer_at = deadline

    def _watch(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or not self.busy:
            return
        if self._read_timeout and self._waiter is None:
            return  # a stream between reads: its next wait re-arms the timer
        if self.loop.time() < deadline:
            self._timer = self.loop.call_at(deadline, self._watch)
            self._timer_at = deadline
            return
        self._fail(TimeoutError())
