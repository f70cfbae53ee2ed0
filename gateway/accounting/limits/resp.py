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
- Connecting has `timeout_s`, and so has each call from when it is written. One watchdog timer
  per connection (not one per call) looks at the oldest call in line: past its deadline, with no
  reply bytes waiting in the socket, Redis has stalled, and the connection is closed (every call
  behind it in line would wait as long); the next call connects again. So does a call after
  Redis closed the connection. Reply bytes waiting unread mean the worker's own event loop was
  late (uvloop runs due timers before it polls sockets), never that Redis was: the watchdog then
  lets the reply be read. `stalls_in_row` counts stalls since the last reply: one stall on a
  healthy connection is a slow moment, two in a row is a Redis that is down.
- NOSCRIPT (Redis restarted or flushed its scripts) loads the script once, however many calls
  met it, and runs each of them again. (Only then can a settle run after an admit sent after
  it; Redis has just lost its counters anyway.)

Everything else (the cluster client, pub/sub, caches, reads for the admin API) stays on redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import select
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from redis.connection import SSLConnection, parse_url


class ReplyError(Exception):
    """An error reply from Redis (`-ERR ...`, `-NOSCRIPT ...`)."""


class ProtocolError(ConnectionError):
    """Bytes that are not RESP: the connection cannot be trusted any further."""


class UnsupportedOption(ValueError):
    """A Redis URL option this connection does not implement (it would be silently ignored)."""


@dataclass(frozen=True, slots=True)
class Script:
    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())


def encode(args: Sequence[str | bytes | int]) -> bytes:
    """A command as a RESP array of bulk strings."""
    return b"*%d\r\n" % len(args) + bulk_strings(args)


def bulk_strings(args: Sequence[str | bytes | int]) -> bytes:
    """The elements of a command's array, without the array's header."""
    out = []
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


# EVALSHA heads kept per channel: one per script and set of counters (a key's, a team's and a
# model's, and a budget's period) seen lately. Past this the cache starts again.
MAX_HEADS = 4096


def evalsha(heads: dict[tuple[str, tuple[str, ...], int], bytes], script: Script, keys: Sequence[str],
            args: Sequence[str | int]) -> bytes:  # fmt: skip
    """`EVALSHA sha numkeys keys... args...` encoded. Everything before the arguments is the same
    for every call of a script on the same counters: it is encoded once and kept in `heads`."""
    ident = (script.sha, tuple(keys), len(args))
    head = heads.get(ident)
    if head is None:
        if len(heads) >= MAX_HEADS:
            heads.clear()
        parts: list[str | int] = ["EVALSHA", script.sha, len(keys), *keys]
        head = heads[ident] = b"*%d\r\n" % (len(parts) + len(args)) + bulk_strings(parts)
    return head + bulk_strings(args)


_INCOMPLETE = object()
# A reply that arrived while the event loop was late is read first; the watchdog looks again after this.
_LATE_RECHECK_S = 0.05


@dataclass(slots=True)
class _Health:
    """Shared by a channel's successive connections."""

    # Connections closed for a stall since the last reply came back.
    stalls_in_row: int = 0


# Our scripts answer with flat replies; deeper nesting is not Redis talking to us.
_MAX_DEPTH = 8
# A connection whose replies have stopped while calls pile up is given up on past this.
_MAX_WAITING = 100_000


def _int(line: bytes) -> int:
    digits = line[1:] if line[:1] == b"-" else line
    if not digits.isdigit():
        raise ProtocolError(f"not a RESP number: {line[:20]!r}")
    return int(line)


def parse(buf: bytes | bytearray, pos: int = 0, depth: int = 0) -> tuple[Any, int]:
    """One RESP2 reply starting at `pos`: (reply, where the next one starts), or (_INCOMPLETE, -1)."""
    kind = buf[pos]
    if kind not in b"$+-:*" or depth > _MAX_DEPTH:
        raise ProtocolError(f"not a RESP reply (type byte {bytes([kind])!r})")
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return _INCOMPLETE, -1
    line = bytes(buf[pos + 1 : nl])
    if kind == 0x24:  # $ bulk string
        size = _int(line)
        if size < 0:
            return None, nl + 2
        end = nl + 2 + size
        if len(buf) < end + 2:
            return _INCOMPLETE, -1
        if buf[end : end + 2] != b"\r\n":
            raise ProtocolError("a bulk string longer than it said")
        return bytes(buf[nl + 2 : end]), end + 2
    if kind == 0x2B:  # + simple string
        return line, nl + 2
    if kind == 0x2D:  # - error
        return ReplyError(line.decode(errors="replace")), nl + 2
    if kind == 0x3A:  # : integer
        return _int(line), nl + 2
    count = _int(line)  # * array
    if count < 0:
        return None, nl + 2
    items, at = [], nl + 2
    for _ in range(count):
        if at >= len(buf):
            return _INCOMPLETE, -1
        item, at = parse(buf, at, depth + 1)
        if at < 0:
            return _INCOMPLETE, -1
        items.append(item)
    return items, at


class _Connection(asyncio.Protocol):
    def __init__(self, timeout_s: float = 0.0, health: _Health | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        # When each call in `waiting` was written (the loop's clock), in the same order; calls
        # still in `batch` have no entry yet.
        self.sent_at: deque[float] = deque()
        self.buffer = bytearray()
        # Commands held back until the end of this event-loop iteration (see `send`).
        self.batch: list[bytes] | None = None
        # Why the connection is closed; None while it is open.
        self.closed: Exception | None = None
        # 0: calls wait as long as it takes (the tests' raw connections).
        self.timeout_s = timeout_s
        self.health = health if health is not None else _Health()
        self._watchdog: asyncio.TimerHandle | None = None
        self._fd = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """Write at once when nothing else went out in this iteration; else join the batch."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if len(self.waiting) >= _MAX_WAITING:
            self.abort(ConnectionError("Redis stopped answering"))
        if self.closed is not None:
            future.set_exception(self.closed)
            return future
        if self.batch is None:
            assert self.transport is not None
            self.transport.write(command)
            self.batch = []
            loop.call_soon(self._flush)
            if self.timeout_s:
                self._written(loop, 1)
        else:
            self.batch.append(command)
        self.waiting.append(future)
        return future

    def _written(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        """Deadlines run from when a call leaves, not from when it was queued behind others."""
        now = loop.time()
        self.sent_at.extend([now] * count)
        if self._watchdog is None:
            self._watchdog = loop.call_at(now + self.timeout_s, self._check)

    def _check(self) -> None:
        """The watchdog: the oldest call in line is due; has Redis stalled, or was the loop late?"""
        self._watchdog = None
        if self.closed is not None or not self.sent_at:
            return
        loop = asyncio.get_running_loop()
        due = self.sent_at[0] + self.timeout_s
        now = loop.time()
        if now < due:
            self._watchdog = loop.call_at(due, self._check)
        elif self._reply_waiting():
            # Answered while the loop was busy elsewhere: read it first, then look again.
            self._watchdog = loop.call_at(now + min(self.timeout_s, _LATE_RECHECK_S), self._check)
        else:
            self.health.stalls_in_row += 1
            self.abort(TimeoutError("Redis did not answer in time"))

    def _flush(self) -> None:
        batch, self.batch = self.batch, None
        if batch and self.closed is None and self.transport is not None:
            self.transport.write(b"".join(batch))
            if self.timeout_s:
                self._written(asyncio.get_running_loop(), len(batch))

    def _reply_waiting(self) -> bool:
        if self._fd < 0:
            return False
        try:
            readable, _, _ = select.select([self._fd], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(readable)

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
                    # Redis says why it will not serve us (maxclients, ...) before we asked anything.
                    raise reply if isinstance(reply, ReplyError) else ProtocolError("a reply nobody asked for")
                future = self.waiting.popleft()
                if self.sent_at:
                    self.sent_at.popleft()
                self.health.stalls_in_row = 0
                if future.done():
                    continue  # its caller gave up
                if isinstance(reply, ReplyError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (ProtocolError, ReplyError) as exc:
            self.abort(ConnectionError(f"the connection to Redis was dropped: {exc}"))
            return
        del buffer[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed is None:
            why = f" ({type(exc).__name__})" if exc is not None else ""
            self.closed = ConnectionError(f"the connection to Redis was lost{why}")
        self._fail()

    def abort(self, exc: Exception) -> None:
        if self.closed is None:
            self.closed = exc
        if self.transport is not None:
            self.transport.abort()
        self._fail()

    def _fail(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.sent_at.clear()
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                assert self.closed is not None
                future.set_exception(self.closed)


class ScriptChannel:
    """Runs scripts by SHA on one connection to one Redis (not a cluster)."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        options = parse_url(url)
        unknown = sorted(k for k in options if k.startswith("ssl_") and k not in _SSL_OPTIONS)
        if unknown:
            raise UnsupportedOption(f"the URL option {unknown[0]} is not supported by the limits' connection")
        self._path: str | None = options.get("path")
        self._host: str = options.get("host") or "localhost"
        self._port: int = int(options.get("port") or 6379)
        self._ssl = _ssl_context(options) if options.get("connection_class") is SSLConnection else None
        self._hello = _handshake(options)
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None
        self._loading: dict[str, asyncio.Future[Any]] = {}
        self._heads: dict[tuple[str, tuple[str, ...], int], bytes] = {}
        self._closed = False
        self.health = _Health()

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        command = evalsha(self._heads, script, keys, args)
        # Bounded by the connection's watchdog (and connecting by its own timeout): no timer per call.
        try:
            conn = self._conn  # `_call`, inline: this is every limited request's path, twice
            if conn is None or conn.closed is not None:
                conn = await self._open_connection()
            return await conn.send(command)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self._load(script)
        return await self._call(command)

    @property
    def stalls_in_row(self) -> int:
        """Connections closed because Redis stopped answering, since the last reply."""
        return self.health.stalls_in_row

    async def connect(self) -> None:
        """Connect ahead of the first call (it would otherwise connect itself)."""
        async with asyncio.timeout(self.timeout_s):
            await self._open_connection()

    async def _call(self, command: bytes) -> Any:
        conn = self._conn
        if conn is None or conn.closed is not None:
            conn = await self._open_connection()
        # Cancelled, the future keeps its place in line and its reply is dropped.
        return await conn.send(command)

    async def _load(self, script: Script) -> None:
        """SCRIPT LOAD once for every call that met NOSCRIPT at about the same time. It is bounded
        by its callers: one that times out closes the connection, which fails the load."""
        loading = self._loading.get(script.sha)
        if loading is None:
            loading = asyncio.ensure_future(self._call(encode(["SCRIPT", "LOAD", script.text])))
            self._loading[script.sha] = loading
            loading.add_done_callback(partial(self._loaded, script.sha))
        await asyncio.shield(loading)

    def _loaded(self, sha: str, task: asyncio.Future[Any]) -> None:
        if self._loading.get(sha) is task:
            del self._loading[sha]
        if not task.cancelled():
            task.exception()  # read here, so a load nobody waits for any more logs nothing

    async def _open_connection(self) -> _Connection:
        if self._closed:
            raise ConnectionError("the limits' Redis channel is closed")
        if self._conn is not None and self._conn.closed is None:
            return self._conn
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            self._connecting.add_done_callback(self._opened)
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        except asyncio.CancelledError:
            if connecting.cancelled() and not _being_cancelled():
                raise ConnectionError("the limits' Redis channel is closed") from None  # close() ran
            raise

    def _opened(self, task: asyncio.Future[_Connection]) -> None:
        if self._connecting is task:
            self._connecting = None
        if task.cancelled() or task.exception() is not None:
            return
        conn = task.result()
        if self._closed:
            conn.abort(ConnectionError("the limits' Redis channel is closed"))
        else:
            self._conn = conn

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout_s):
            if self._path is not None:
                _, conn = await loop.create_unix_connection(self._protocol, self._path)
            else:
                transport, conn = await loop.create_connection(self._protocol, self._host, self._port, ssl=self._ssl)
                _keep_alive(transport.get_extra_info("socket"))
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

    def _protocol(self) -> _Connection:
        return _Connection(self.timeout_s, self.health)

    async def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._conn is not None:
            self._conn.abort(ConnectionError("the limits' Redis channel is closed"))
            self._conn = None


def _keep_alive(sock: Any) -> None:
    """TCP keepalive after a minute of silence: a NAT or load balancer that forgets idle
    connections (often after 5 to 15 minutes) then never sees this one idle, and a peer that
    vanished without a word is noticed in about 90 s instead of at the next call's timeout."""
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):  # Linux names; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _handshake(options: dict[str, Any]) -> list[bytes]:
    commands = []
    password, username = options.get("password"), options.get("username")
    if password is not None:
        auth = ["AUTH", username, password] if username else ["AUTH", password]
        commands.append(encode(auth))
    if options.get("db"):
        commands.append(encode(["SELECT", int(options["db"])]))
    return commands


_SSL_OPTIONS = frozenset({
    "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_password",
    "ssl_check_hostname",
})  # fmt: skip


def _ssl_context(options: dict[str, Any]) -> ssl.SSLContext:
    """rediss:// with redis-py's query options of the same names (others are refused above)."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"), capath=options.get("ssl_ca_path"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"), options.get("ssl_password"))
    requirement = str(options.get("ssl_cert_reqs") or "required").lower()
    if requirement in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif requirement in ("optional", "cert_optional"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_OPTIONAL
    if options.get("ssl_check_hostname") is False:
        context.check_hostname = False
    return context
