"""The one place that talks to upstream providers over HTTP: the calls and the client.

The client is our own HTTP/1.1 (h1.py: an asyncio.Protocol over httptools; pool.py: the keep-alive
pool), not aiohttp: aiohttp's general machinery cost 115-138 µs of CPU per proxied request, a
quarter to two fifths of the whole; this client costs about a fifth of that for a unary call and
half or less for a stream (docs/performance.md, loadtests/bench_upstream_client.py). It does what
the gateway needs and no more: HTTP/1.1, keep-alive, http and https, gzip and deflate, Basic auth
from a URL's userinfo; no redirects, cookies or proxies. Socket, parser and timeout failures, and a
URL or header from config that cannot be sent, become the gateway's errors here, once.

Memory is bounded whatever the upstream sends: a stream holds at most about `STREAM_BUFFER` unread
bytes (the socket is paused past it) and decodes in pieces of at most `_PIECE`; a whole body, and
what it decodes to, is at most `max_response_bytes` (256 MiB by default, above the largest answer
a provider gives: a batch of 2,048 float embeddings of 3,072 dimensions is under 200 MB), past
which the call fails as UpstreamUnreachable.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httptools

from gateway.core.errors import UpstreamTimeout, UpstreamUnreachable
from gateway.core.upload import BodyFactory
from gateway.upstream.h1 import (
    COMPLETE,
    DATA,
    HEADERS,
    Connection,
    InvalidHeader,
    InvalidURL,
    ResponseTooLarge,
    Target,
    decoder_for,
    parse_target,
    request_head,
)
from gateway.upstream.pool import Pool

KEEPALIVE_S = 15.0  # an idle connection is closed after this long (aiohttp's default)
MAX_RESPONSE_BYTES = 256 << 20
_PIECE = 64 << 10  # the most a stream's compressed bytes decode to in one chunk
_TARGETS_KEPT = 1024
# What a broken connection, a refused one, an unreadable answer or a request that cannot be sent raises
# below (ResponseTooLarge: an answer past the limit while an upload was still being sent).
_BROKEN = (OSError, InvalidURL, InvalidHeader, ResponseTooLarge, httptools.HttpParserError,
           httptools.HttpParserUpgrade, zlib.error)


@dataclass(slots=True)
class UpstreamCall:
    """Everything needed to send one request; built by a provider adapter."""

    method: str
    url: str
    headers: dict[str, str]
    # Bytes, or (an upload's form) a factory of the body's chunks, called once per send.
    body: bytes | BodyFactory | None
    timeout_s: float
    connect_timeout_s: float
    deployment_id: str = ""
    # Send the path exactly as written, percent-escapes and all: a signed URL (SigV4) must reach the
    # server as it was signed. Otherwise characters a request line cannot hold are percent-encoded.
    exact_url: bool = False


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class UpstreamStream:
    """A response whose headers are in; its body is read with `chunks()` or `read()`."""

    __slots__ = ("_conn", "_deployment_id", "_done", "_max_body", "_pool", "headers", "status")

    def __init__(self, conn: Connection, pool: Pool, deployment_id: str, max_body: int) -> None:
        self.status = conn.status
        self.headers = conn.headers
        self._conn = conn
        self._pool = pool
        self._deployment_id = deployment_id
        self._max_body = max_body
        self._done = False

    def ended(self) -> bool:
        """The whole body has arrived (not all of it may have been taken from `chunks()` yet)."""
        return not self._done and self._conn.complete

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, whatever the framing of the reads (decoded, in pieces of at most
        `_PIECE`). Leaving it early (an error, a cancellation, aclose()) closes the stream, as
        `close()` does."""
        conn = self._conn
        decoder = decoder_for(conn.encoding)
        try:
            while True:
                body = conn.body
                if body:
                    data = body[0] if len(body) == 1 else b"".join(body)
                    body.clear()
                    if conn.reading_paused:
                        conn.unpause()
                    if decoder is not None:
                        data = decoder.decompress(data, _PIECE)
                        while len(data) == _PIECE:  # held back at the limit: the rest, piece by piece
                            yield data
                            data = decoder.more(_PIECE)
                    if data:
                        yield data
                elif conn.complete:
                    break
                else:
                    await conn.wait(DATA)
            if decoder is not None and (tail := decoder.flush()):
                yield tail
        except TimeoutError:
            raise UpstreamTimeout(f"deployment {self._deployment_id} stopped sending within its timeout") from None
        except _BROKEN:
            raise UpstreamUnreachable(f"deployment {self._deployment_id} closed the stream early") from None
        finally:
            self.close()

    async def read(self) -> bytes:
        """The whole body, decoded; at most `max_response_bytes`, before and after decoding."""
        conn = self._conn
        limit = self._max_body
        try:
            if conn.streaming:
                conn.gather(limit)
            while not conn.complete:
                await conn.wait(COMPLETE)
            if conn.buffered > limit:  # it ended in the read that passed the limit
                raise ResponseTooLarge
            body = b"".join(conn.body)
            conn.body = []
            decoder = decoder_for(conn.encoding)
            if decoder is not None:
                body = decoder.decompress(body, limit + 1)
                if len(body) > limit:
                    raise ResponseTooLarge
                if tail := decoder.flush():
                    body += tail
            return body
        except TimeoutError:
            raise UpstreamTimeout(f"deployment {self._deployment_id} timed out") from None
        except ResponseTooLarge:
            raise UpstreamUnreachable(
                f"deployment {self._deployment_id} sent a response larger than {limit / 2**20:g} MiB") from None
        except _BROKEN:
            raise UpstreamUnreachable(f"deployment {self._deployment_id} closed the connection") from None
        finally:
            self.close()

    def close(self) -> None:
        """Done with the response: a finished one's connection goes back to the pool; an unfinished
        one's is aborted, so that the upstream stops too."""
        if not self._done:
            self._done = True
            self._pool.release(self._conn)


class UpstreamClient:
    def __init__(self, max_connections: int, keepalive_s: float = KEEPALIVE_S,
                 max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._max_response_bytes = max_response_bytes
        self._pool: Pool | None = None
        self._tls: ssl.SSLContext | None = None
        # Parsed URLs, by exact_url: the same few deployment URLs come back on every call.
        self._targets: tuple[dict[str, Target], dict[str, Target]] = ({}, {})

    async def start(self) -> None:
        self._pool = Pool(asyncio.get_running_loop(), self._max_connections, self._keepalive_s)

    @property
    def started(self) -> bool:
        return self._pool is not None and not self._pool.closed

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        stream = await self.open(call, stream=False)
        body = await stream.read()
        return UpstreamResponse(stream.status, stream.headers, body)

    async def open(self, call: UpstreamCall, stream: bool = True) -> UpstreamStream:
        """Send the request and return once the response headers are in.

        Unary (`stream=False`): one deadline, `timeout_s`, over connecting, writing and the whole
        response. A stream: each wait, for bytes (the headers included) or for an upload's write,
        gets `timeout_s`; the stream as a whole has no bound. Connecting (waiting for a slot
        included) gets `connect_timeout_s`."""
        pool = self._pool
        assert pool is not None, "UpstreamClient.start() was not awaited"
        body = call.body
        upload: BodyFactory | None = None
        if body is not None and not isinstance(body, bytes):
            upload, body = body, None
        try:
            target = self._targets[call.exact_url].get(call.url) or self._target(call)
            head, chunked = request_head(call.method, target, call.headers, body, upload is not None)
        except (InvalidURL, InvalidHeader) as exc:
            raise _error(exc, call) from None
        deadline = None if stream else pool.loop.time() + call.timeout_s
        conn = pool.take(target.key)
        if conn is None:
            conn = await self._connect(pool, target, call, deadline)
        limit = self._max_response_bytes
        try:
            conn.begin(deadline, call.timeout_s if stream else 0.0, limit)
            if upload is not None:
                await self._upload(conn, head, chunked, upload)
            elif body and len(body) >= 1 << 16:
                conn.write(head)  # not copied into one buffer with the head
                conn.write(body)
            else:
                conn.write(head + body if body else head)
            while not conn.headers_done:
                await conn.wait(HEADERS)
        except BaseException as exc:
            pool.release(conn)  # unfinished: aborted
            raise _error(exc, call) from None
        return UpstreamStream(conn, pool, call.deployment_id, limit)

    def _target(self, call: UpstreamCall) -> Target:
        targets = self._targets[call.exact_url]
        if len(targets) >= _TARGETS_KEPT:
            targets.clear()
        target = targets[call.url] = parse_target(call.url, call.exact_url)
        return target

    async def _connect(self, pool: Pool, target: Target, call: UpstreamCall, deadline: float | None) -> Connection:
        """A pooled connection, or a new one, within the connect timeout (and the deadline)."""
        limit = call.connect_timeout_s
        if deadline is not None:
            limit = min(limit, deadline - pool.loop.time())
        try:
            async with asyncio.timeout(limit):
                conn = await pool.acquire(target.key)
                if conn is not None:
                    return conn
                try:
                    return await self._open_connection(pool, target)
                except BaseException:
                    pool.free_slot()
                    raise
        except BaseException as exc:
            raise _error(exc, call) from None

    async def _open_connection(self, pool: Pool, target: Target) -> Connection:
        _, host, port = target.key
        conn = Connection(pool.loop, target.key, pool)
        tls = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        try:
            await pool.loop.create_connection(lambda: conn, host, port, ssl=tls,
                                              server_hostname=host if tls is not None else None)
        except BaseException:
            conn.abort()  # cancelled just as it connected: not left open outside the pool
            raise
        pool.opened(conn)
        return conn

    @staticmethod
    async def _upload(conn: Connection, head: bytes, chunked: bool, body: BodyFactory) -> None:
        """The head, then the body's chunks as the upstream takes them, until it has `answered`
        (a 413, say): the answer stands, and the connection, mid-request, is not reused."""
        conn.write(head)
        async for chunk in body():
            await conn.drain()  # raises if the connection broke, unless the answer is in
            if conn.answered:
                conn.cut_short = True
                return
            if chunk:
                conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        await conn.drain()
        if conn.answered:
            conn.cut_short = True  # the chunked terminator unsent, or the last bytes never taken
        elif chunked:
            conn.write(b"0\r\n\r\n")


def _error(exc: BaseException, call: UpstreamCall) -> BaseException:
    """The gateway's error for a failure before the response's headers; anything else as it is."""
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"deployment {call.deployment_id} did not answer within its timeout")
    if isinstance(exc, _BROKEN):
        return UpstreamUnreachable(f"deployment {call.deployment_id} is unreachable ({type(exc).__name__})")
    return exc
