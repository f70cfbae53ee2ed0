"""One pipelined Redis connection per worker for the two limit scripts: EVALSHA and nothing else.

Every limited request makes two script calls, so their cost is the limiter's cost. Through
redis-py each call takes a pooled connection, wraps it in retry and timeout machinery, writes,
waits and parses with general-purpose code: about 70 µs of CPU per call here, most of the
limits' share of a request (loadtests/bench_limits.py). This speaks just enough RESP2 for
`EVALSHA` (and the `SCRIPT LOAD`, `AUTH` and `SELECT` around it) over one socket:

- A call is written at once, so a request's settle goes out with its answer; calls made in the
  same event-loop iteration after it travel together in one write. One socket keeps them in
  order: a settle sent before the next admit is run before it.
- Replies come back in order and resolve the calls' futures in turn. A caller that gave up
  (cancelled) leaves its future in line; its reply is read and dropped.
- A call that gets no reply within the timeout closes the connection (its place in line is
  lost, and so is every call behind it); the next call connects again.
- NOSCRIPT (Redis restarted or flushed its scripts) loads the script once, however many calls
  met it, and runs each of them again.

Everything else (the cluster client, pub/sub, caches, reads for the admin API) stays on redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url


class ReplyError(Exception):
    """An error reply from Redis (`-ERR ...`, `-NOSCRIPT ...`)."""


class ProtocolError(ConnectionError):
    """Bytes that are not RESP: the connection cannot be trusted any further."""


@dataclass(frozen=True, slots=True)
class Script:
    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())


def encode(args: Sequence[str | bytes | int]) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


_INCOMPLETE = object()


def parse(buf: bytes | bytearray, pos: int = 0) -> tuple[Any, int]:
    """One RESP2 reply starting at `pos`: (reply, where the next one starts), or (_INCOMPLETE, -1)."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return _INCOMPLETE, -1
    kind, line = buf[pos], bytes(buf[pos + 1 : nl])
    try:
        if kind == 0x24:  # $ bulk string
            size = int(line)
            if size < 0:
                return None, nl + 2
            end = nl + 2 + size
            if len(buf) < end + 2:
                return _INCOMPLETE, -1
            return bytes(buf[nl + 2 : end]), end + 2
        if kind == 0x2B:  # + simple string
            return line, nl + 2
        if kind == 0x2D:  # - error
            return ReplyError(line.decode(errors="replace")), nl + 2
        if kind == 0x3A:  # : integer
            return int(line), nl + 2
        if kind == 0x2A:  # * array
            count = int(line)
            if count < 0:
                return None, nl + 2
            items, at = [], nl + 2
            for _ in range(count):
                item, at = parse(buf, at)
                if at < 0:
                    return _INCOMPLETE, -1
                items.append(item)
            return items, at
    except ValueError:
        pass
    raise ProtocolError(f"not a RESP reply (type byte {kind!r})")


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buffer = bytearray()
        # Commands held back until the end of this event-loop iteration (see `send`).
        self.batch: list[bytes] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """Write at once when nothing else went out in this iteration; else join the batch."""
        loop = asyncio.get_running_loop()
        if self.batch is None:
            assert self.transport is not None
            self.transport.write(command)
            self.batch = []
            loop.call_soon(self._flush)
        else:
            self.batch.append(command)
        future = loop.create_future()
        self.waiting.append(future)
        return future

    def _flush(self) -> None:
        batch, self.batch = self.batch, None
        if batch and not self.closed and self.transport is not None:
            self.transport.write(b"".join(batch))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        at = 0
        try:
            while at < len(buffer):
                reply, end = parse(buffer, at)
                if end < 0:
                    break
                at = end
                if not self.waiting:
                    raise ProtocolError("a reply nobody asked for")
                future = self.waiting.popleft()
                if future.done():
                    continue  # its caller gave up
                if isinstance(reply, ReplyError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except ProtocolError as exc:
            self.abort(exc)
            return
        del buffer[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("the connection to Redis was lost"))

    def abort(self, exc: Exception) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)


class ScriptChannel:
    """Runs scripts by SHA on one connection to one Redis (not a cluster)."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        options = parse_url(url)
        self._path: str | None = options.get("path")
        self._host: str = options.get("host") or "localhost"
        self._port: int = int(options.get("port") or 6379)
        self._ssl = _ssl_context(options) if options.get("connection_class") is SSLConnection else None
        if options.get("connection_class") is UnixDomainSocketConnection:
            self._ssl = None
        self._hello = _handshake(options)
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._loading: dict[str, asyncio.Future[None]] = {}

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        command = encode(["EVALSHA", script.sha, len(keys), *keys, *args])
        try:
            return await self._call(command)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self._load(script)
        return await self._call(command)

    async def _call(self, command: bytes) -> Any:
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connect()
        future = conn.send(command)
        try:
            async with asyncio.timeout(self.timeout_s):
                return await future
        except TimeoutError:
            # Its reply would come out of turn for everything sent after it: start afresh.
            conn.abort(TimeoutError("Redis did not answer in time"))
            raise
        # Cancelled by its caller instead, the future keeps its place in line: the reply is dropped.

    async def _load(self, script: Script) -> None:
        """SCRIPT LOAD once for every call that met NOSCRIPT at about the same time."""
        loading = self._loading.get(script.sha)
        if loading is None:
            loading = asyncio.ensure_future(self._call(encode(["SCRIPT", "LOAD", script.text])))
            self._loading[script.sha] = loading
            loading.add_done_callback(lambda _: self._loading.pop(script.sha, None))
        await asyncio.shield(loading)

    async def connect(self) -> None:
        """Connect ahead of the first call (it would otherwise connect itself)."""
        if self._conn is None or self._conn.closed:
            await self._connect()

    async def _connect(self) -> _Connection:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._opened)
        return await asyncio.shield(self._connecting)

    def _opened(self, task: asyncio.Future[_Connection]) -> None:
        self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._conn = task.result()

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout_s):
            if self._path is not None:
                _, conn = await loop.create_unix_connection(_Connection, self._path)
            else:
                _, conn = await loop.create_connection(_Connection, self._host, self._port, ssl=self._ssl)
            try:
                for command in self._hello:
                    await conn.send(command)
            except BaseException as exc:
                conn.abort(ConnectionError("the Redis handshake failed"))
                if isinstance(exc, ReplyError):
                    # AUTH or SELECT refused: the error's code only, never what was sent.
                    code = str(exc).split(" ", 1)[0]
                    raise ConnectionError(f"Redis refused the connection's handshake ({code})") from None
                raise
        return conn

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._conn is not None:
            self._conn.abort(ConnectionError("closed"))
            self._conn = None


def _handshake(options: dict[str, Any]) -> list[bytes]:
    commands = []
    password, username = options.get("password"), options.get("username")
    if password is not None:
        auth = ["AUTH", username, password] if username else ["AUTH", password]
        commands.append(encode(auth))
    if options.get("db"):
        commands.append(encode(["SELECT", int(options["db"])]))
    return commands


def _ssl_context(options: dict[str, Any]) -> ssl.SSLContext:
    """rediss:// with redis-py's query options: ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    requirement = str(options.get("ssl_cert_reqs") or "required").lower()
    if requirement in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif requirement in ("optional", "cert_optional"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
