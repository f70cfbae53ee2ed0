"""Keep-alive connections to the upstreams, at most `limit` open in all (aiohttp's connector `limit`).

A connection holds one slot from the moment it starts opening until it is closed. A caller finds an
idle connection to its host, or takes a free slot and opens one; at the limit it waits in line
(first come, first served) for a connection to its host or a slot. An idle connection to another
host is closed to make room rather than keep anyone waiting. Idle connections close after
`keepalive_s` (aiohttp's 15 s), and one the server closed leaves the pool at once. Closing the pool
fails those waiting in line at once.
"""

from __future__ import annotations

import asyncio
from collections import deque

from gateway.upstream.h1 import Connection

Key = tuple[str, str, int]


class PoolClosed(ConnectionError):
    """The client was closed while the caller waited for a connection."""


class Pool:
    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, keepalive_s: float) -> None:
        self.loop = loop
        self._limit = limit
        self._keepalive_s = keepalive_s
        self._open = 0  # slots held: connections open or opening
        self._idle: dict[Key, list[Connection]] = {}  # oldest first; taken from the end
        self._waiters: deque[tuple[Key, asyncio.Future[Connection | None]]] = deque()
        self._live: set[Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    def take(self, key: Key) -> Connection | None:
        """An idle connection to `key`, if one is free to take now without queueing."""
        if self._waiters:
            return None
        stack = self._idle.get(key)
        while stack:
            conn = stack.pop()
            conn.pooled = False
            if conn.failure is None:
                return conn
            self.discard(conn)
        return None

    async def acquire(self, key: Key) -> Connection | None:
        """An idle connection to `key`, or None: a slot to open a new one with (give it back with
        `opened` or `free_slot`)."""
        if not self._waiters:
            conn = self.take(key)
            if conn is not None:
                return conn
            if self._open < self._limit:
                self._open += 1
                return None
            if self._evict_idle():
                return None
        entry: tuple[Key, asyncio.Future[Connection | None]] = (key, self.loop.create_future())
        self._waiters.append(entry)
        try:
            got = await entry[1]
        except BaseException:
            future = entry[1]
            if future.done() and not future.cancelled():
                if future.exception() is None:
                    got = future.result()  # handed over just as the caller gave up: pass it on
                    if got is None:
                        self._free()
                    else:
                        self.release(got)
            else:
                try:
                    self._waiters.remove(entry)
                except ValueError:
                    pass
            raise
        if got is not None and got.failure is not None:
            # It broke while being handed over: keep its slot and open a new one.
            got.abort()
            self._live.discard(got)
            return None
        return got

    def opened(self, conn: Connection) -> None:
        self._live.add(conn)

    def free_slot(self) -> None:
        """A slot from `acquire` whose connection never opened."""
        self._free()

    def release(self, conn: Connection) -> None:
        """The exchange on `conn` is over: back to the pool if it may carry another, else closed."""
        conn.done()
        if not conn.reusable or self.closed:
            self.discard(conn)
            return
        while self._waiters:
            key, future = self._waiters.popleft()
            if future.done():
                continue
            if key == conn.key:
                future.set_result(conn)
            else:
                self._live.discard(conn)
                conn.close()
                future.set_result(None)  # this connection's slot goes to a caller of another host
            return
        conn.pooled = True
        conn.idle_since = self.loop.time()
        stack = self._idle.get(conn.key)
        if stack is None:
            self._idle[conn.key] = [conn]
        else:
            stack.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_at(conn.idle_since + self._keepalive_s, self._sweep)

    def discard(self, conn: Connection) -> None:
        """Abort `conn` (an unfinished or broken exchange) and free its slot."""
        conn.abort()
        if conn in self._live:
            self._live.discard(conn)
            self._free()

    def lost_idle(self, conn: Connection) -> None:
        """The server closed an idle connection: out of the pool."""
        conn.pooled = False
        stack = self._idle.get(conn.key)
        if stack is not None and conn in stack:
            stack.remove(conn)
        if conn in self._live:
            self._live.discard(conn)
            self._free()

    def close(self) -> None:
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._idle.clear()
        waiters, self._waiters = self._waiters, deque()
        for _, future in waiters:
            if not future.done():
                future.set_exception(PoolClosed("the upstream client was closed"))
        for conn in list(self._live):
            conn.pooled = False
            conn.abort()
        self._live.clear()
        self._open = 0

    @property
    def open_connections(self) -> int:
        return self._open

    # inside

    def _free(self) -> None:
        while self._waiters:
            _, future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot passes to the first in line
                return
        self._open -= 1

    def _evict_idle(self) -> bool:
        """Close the longest-idle connection (to some other host) so that its slot can be reused."""
        oldest: Connection | None = None
        for stack in self._idle.values():
            if stack and (oldest is None or stack[0].idle_since < oldest.idle_since):
                oldest = stack[0]
        if oldest is None:
            return False
        self._idle[oldest.key].pop(0)
        oldest.pooled = False
        self._live.discard(oldest)
        oldest.close()
        return True

    def _sweep(self) -> None:
        self._sweeper = None
        cutoff = self.loop.time() - self._keepalive_s
        next_at: float | None = None
        for key, stack in list(self._idle.items()):
            while stack and stack[0].idle_since <= cutoff:
                conn = stack.pop(0)
                conn.pooled = False
                self._live.discard(conn)
                conn.close()
                self._free()
            if not stack:
                del self._idle[key]
            elif next_at is None or stack[0].idle_since < next_at:
                next_at = stack[0].idle_since
        if next_at is not None:
            self._sweeper = self.loop.call_at(next_at + self._keepalive_s, self._sweep)
