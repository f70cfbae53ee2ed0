"""HTTP/1.1 over one upstream socket: a request's bytes out, the response read by httptools.

A `Connection` carries one exchange at a time (no pipelining). The caller writes a request, then
waits for what it needs (the headers, more body, the end); the protocol wakes it once per arrival
that satisfies the wait, not once per parser callback. One timer per connection bounds the waits,
a blocked upload's included (the watchdog): it is re-armed lazily when it fires early, not set and
cancelled around each read.

What is held is bounded: a stream's unread body pauses the socket past `STREAM_BUFFER` (the consumer
taking it resumes it), and a whole body fails past the caller's limit. An answer that comes while an
upload is blocked is seen at once: an error status (or a whole response) ends the upload, and a
connection whose request was not sent in full is never reused.
"""

from __future__ import annotations

import asyncio
import zlib
from base64 import b64encode
from dataclasses import dataclass, field
from typing import Protocol, cast
from urllib.parse import quote, unquote, urlsplit

import httptools

# What a wait is for.
HEADERS, DATA, COMPLETE = 1, 2, 3
# A stream's unread body past which the socket is paused (aiohttp paused at about 128 KiB).
STREAM_BUFFER = 256 << 10

# Characters a request-target may hold as they are (RFC 9112 origin-form, plus "%" so that
# existing escapes stay as written); anything else (spaces, non-ASCII) is percent-encoded.
_TARGET_SAFE = "!$&'()*+,;=:@/?%-._~"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
# Request headers we add unless the caller set them, as aiohttp did (bit per header).
_HOST, _ACCEPT, _ENCODING, _LENGTH, _TRANSFER, _AUTH = 1, 2, 4, 8, 16, 32
_OWN_HEADERS = {"host": _HOST, "accept": _ACCEPT, "accept-encoding": _ENCODING, "content-length": _LENGTH,
                "transfer-encoding": _TRANSFER, "authorization": _AUTH}
# The content codings decoded (RFC 9110 8.4.1: x-gzip is gzip).
_ENCODINGS = frozenset(("gzip", "x-gzip", "deflate"))


class ServerDisconnected(ConnectionError):
    """The upstream closed the connection before its response was complete."""


class InvalidURL(ValueError):
    """A deployment URL this client cannot send to (not http or https, no host, a bad port or host)."""


class InvalidHeader(ValueError):
    """A request header that cannot go on the wire as given (a line break would smuggle in another)."""


class ResponseTooLarge(Exception):
    """A whole body (or what it decodes to) over the caller's limit."""


@dataclass(frozen=True, slots=True)
class Target:
    """A URL taken apart once: where to connect and what to write in the request line."""

    key: tuple[str, str, int]  # (scheme, host, port): the pool's key
    path: str  # path and query, as the request-target
    host_header: str
    tls: bool
    # Basic credentials from the URL's userinfo, sent unless the caller sets Authorization.
    auth: str | None = field(default=None, repr=False)


def parse_target(url: str, exact: bool) -> Target:
    """`url` taken apart; InvalidURL if it cannot be sent to (the message never holds the URL)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise InvalidURL("not an http(s) URL with a host")
        host = parts.hostname
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:  # a port out of range or not a number, a host IDNA cannot encode, a bad IPv6 literal
        raise InvalidURL("not a URL this client can send to") from None
    auth = _basic_auth(parts.username, parts.password) if parts.username or parts.password else None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    if not exact:
        path = quote(path, safe=_TARGET_SAFE)
    # As SigV4 (botocore) signs it: the port only when it is not the scheme's default.
    host_header = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS[scheme]:
        host_header = f"{host_header}:{port}"
    return Target((scheme, host, port), path, host_header, scheme == "https", auth)


def _basic_auth(user: str | None, password: str | None) -> str:
    """The Authorization value aiohttp sent for a URL's userinfo: percent-decoded, latin-1 (UTF-8 for
    what latin-1 cannot hold, where aiohttp failed)."""
    user, password = unquote(user or ""), unquote(password or "")
    if ":" in user:
        raise InvalidURL("a colon in the URL's user name")  # as aiohttp's BasicAuth refuses it
    credentials = f"{user}:{password}"
    try:
        raw = credentials.encode("latin-1")
    except UnicodeEncodeError:
        raw = credentials.encode("utf-8")
    return "Basic " + b64encode(raw).decode("ascii")


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
    if target.auth is not None and not given & _AUTH:
        parts += ("Authorization: ", target.auth, "\r\n")
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
    # The message names neither: a header from config may hold a key.
    if text.count("\n") != lines or text.count("\r") != lines:
        raise InvalidHeader("a line break in an upstream request header")
    try:
        return text.encode("utf-8"), chunked
    except UnicodeEncodeError:
        raise InvalidHeader("an upstream request header that is not text") from None


class Decoder:
    """Content-Encoding gzip or deflate undone as the body arrives (aiohttp's auto_decompress), never
    more than `limit` bytes out of one call: a few KiB can decode to gigabytes."""

    def __init__(self, encoding: str) -> None:
        # "deflate" waits for its first bytes to tell zlib-wrapped from raw.
        self._zlib: zlib._Decompress | None = zlib.decompressobj(47) if encoding != "deflate" else None

    def decompress(self, data: bytes, limit: int) -> bytes:
        if self._zlib is None:
            # "deflate" is meant to be zlib-wrapped; some servers send raw deflate.
            self._zlib = zlib.decompressobj(15 if data and data[0] & 0x0F == 8 else -15)
        return self._zlib.decompress(data, limit)

    def more(self, limit: int) -> bytes:
        """What the last call held back at its limit (b"" when nothing was)."""
        z = self._zlib
        return z.decompress(z.unconsumed_tail, limit) if z is not None else b""

    def flush(self) -> bytes:
        return self._zlib.flush() if self._zlib is not None else b""


def decoder_for(encoding: str) -> Decoder | None:
    return Decoder(encoding) if encoding in _ENCODINGS else None


class Owner(Protocol):
    def lost_idle(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    # Slots: with 30 attributes an instance's dict no longer shares its keys, and every attribute
    # access gets slower (parsing a stream took a quarter more CPU).
    __slots__ = ("_deadline", "_drain", "_framed", "_owner", "_parser", "_read_timeout", "_timer", "_timer_at",
                 "_waiter", "_wants", "_writing_paused", "body", "buffered", "busy", "complete", "cut_short",
                 "encoding", "failure", "headers", "headers_done", "idle_since", "keep_alive", "key", "limit",
                 "loop", "pooled", "reading_paused", "status", "streaming", "transport")

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
        self.buffered = 0  # bytes in `body` (when it holds any)
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.cut_short = False  # the request was not sent in full: never reused
        self._framed = False  # Content-Length or chunked; otherwise the body runs until the close
        # Past `limit` buffered bytes a stream pauses reading, a whole body fails.
        self.streaming = False
        self.limit = 0
        self.reading_paused = False
        # The one wait at a time: for what (HEADERS, DATA, COMPLETE), and the writer's back-pressure.
        self._waiter: asyncio.Future[None] | None = None
        self._wants = 0
        self._drain: asyncio.Future[None] | None = None
        self._writing_paused = False
        # The watchdog: a unary exchange has one deadline; a stream gives each wait `_read_timeout`.
        self._deadline: float | None = None
        self._read_timeout = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # the caller's side

    def begin(self, deadline: float | None, read_timeout: float, max_body: int) -> None:
        """Start an exchange: a fresh response, and its bound (a deadline for a whole body of at most
        `max_body` bytes; or, for a stream, a per-wait timeout)."""
        self.busy = True
        self.status = 0
        self.headers = {}
        self.encoding = ""
        self.body = []
        self.buffered = 0
        self.headers_done = self.complete = self.keep_alive = self.cut_short = self._framed = False
        self.streaming = deadline is None
        self.limit = STREAM_BUFFER if deadline is None else max_body
        self._read_timeout = read_timeout
        if deadline is not None:
            self._arm(deadline)
        else:
            self._deadline = None

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark, unless the upstream
        has `answered`. A failure raises, unless the response is already complete (the caller stops
        writing then). A stream's wait has its per-wait timeout."""
        while self._writing_paused and self.failure is None and not self.answered:
            if self._read_timeout:
                self._arm(self.loop.time() + self._read_timeout)
            self._drain = self.loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self.failure is not None and not self.complete:
            raise self.failure

    @property
    def answered(self) -> bool:
        """The upstream answered in a way that ends an upload: a whole response, or an error status."""
        return self.complete or (self.headers_done and self.status >= 300)

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

    def unpause(self) -> None:
        """The consumer took all the body buffered so far: read on."""
        self.buffered = 0  # not recounted until the next body bytes
        self._read_on()

    def gather(self, max_body: int) -> None:
        """A stream's body is to be read whole after all (an error's): up to `max_body`, not paused."""
        self.streaming = False
        self.limit = max_body
        if self.reading_paused:
            self._read_on()

    @property
    def reusable(self) -> bool:
        return (self.complete and self.keep_alive and not self.cut_short and self.failure is None
                and self.transport is not None and not self.transport.is_closing())

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
        self._wake_drain()

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
        if self.buffered > self.limit and not self.complete:
            if not self.streaming:
                self._fail(ResponseTooLarge())
                return
            if not self.reading_paused and self.transport is not None:
                self.reading_paused = True
                self.transport.pause_reading()
        self._wake()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drain()

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
        self._wake_drain()  # an upload blocked on its write learns of the answer

    def on_body(self, body: bytes) -> None:
        held = self.body
        # Counted afresh once the consumer has taken all (it clears the list, nothing else).
        self.buffered = self.buffered + len(body) if held else len(body)
        held.append(body)

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

    def _wake_drain(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _read_on(self) -> None:
        self.reading_paused = False
        if self.transport is not None:
            self.transport.resume_reading()

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        if self.transport is not None:
            self.transport.abort()
        self._wake()
        self._wake_drain()

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
        if self._read_timeout and self._waiter is None and self._drain is None:
            return  # a stream between waits: its next wait re-arms the timer
        if self.loop.time() < deadline:
            self._timer = self.loop.call_at(deadline, self._watch)
            self._timer_at = deadline
            return
        self._fail(TimeoutError())
