"""A tiny scripted HTTP/1.1 server on a real socket, for the upstream client's tests.

Each test gives it a `respond(request, writer)` coroutine that writes whatever bytes the case needs
(well-formed or not) and says whether to keep the connection open for another request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gateway.core.upload import BodyFactory
from gateway.upstream.client import KEEPALIVE_S, MAX_RESPONSE_BYTES, UpstreamCall, UpstreamClient


@dataclass
class Request:
    method: str
    target: str
    head: bytes  # as received, for checks on names' case and order
    headers: dict[str, str]  # lower-cased names
    body: bytes


Respond = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class Server:
    respond: Respond
    requests: list[Request] = field(default_factory=list)
    connections: int = 0  # accepted so far
    closed: int = 0  # connections that ended (the client closed, or we did)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set on every request
    server: asyncio.Server | None = None
    readers: list[asyncio.StreamReader] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def url(self, path: str = "/v1/chat/completions") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def gone(self) -> int:
        """Connections the client closed or aborted, seen even while a response is being held back."""
        return sum(1 for r in self.readers if r.at_eof() or r.exception() is not None)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.readers.append(reader)
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    break
                self.requests.append(request)
                self.arrived.set()
                if not await self.respond(request, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed += 1
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("utf-8").split("\r\n")
    method, target, _ = lines[0].split(" ")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readexactly(2)
        body = b"".join(parts)
    else:
        body = b""
    return Request(method, target, head, headers, body)


def response(body: bytes = b'{"ok":true}', status: int = 200, headers: tuple[str, ...] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} OK", f"Content-Length: {len(body)}", *headers, "", ""]
    return "\r\n".join(lines).encode() + body


async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
    """A plain keep-alive answer echoing the body's length."""
    writer.write(response(b'{"got":%d}' % len(request.body)))
    return True


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Respond], Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(respond: Respond = answer) -> Server:
        s = Server(respond)
        s.server = await asyncio.start_server(s.serve, "127.0.0.1", 0)
        servers.append(s)
        return s

    yield start
    for s in servers:
        assert s.server is not None
        s.server.close()


NewClient = Callable[..., Awaitable[UpstreamClient]]


@pytest.fixture
async def new_client() -> AsyncIterator[NewClient]:
    """Started clients (`UpstreamClient`'s arguments), closed after the test."""
    clients: list[UpstreamClient] = []

    async def make(max_connections: int, keepalive_s: float = KEEPALIVE_S,
                   max_response_bytes: int = MAX_RESPONSE_BYTES) -> UpstreamClient:
        c = UpstreamClient(max_connections, keepalive_s, max_response_bytes)
        await c.start()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


@pytest.fixture
async def client(new_client: NewClient) -> UpstreamClient:
    return await new_client(8)


def call(url: str, body: bytes | BodyFactory | None = b"{}", *, method: str = "POST",
         headers: dict[str, str] | None = None, timeout_s: float = 5.0, connect_timeout_s: float = 2.0,
         exact_url: bool = False) -> UpstreamCall:
    return UpstreamCall(method, url, {"Content-Type": "application/json"} if headers is None else headers, body,
                        timeout_s=timeout_s, connect_timeout_s=connect_timeout_s, deployment_id="d1",
                        exact_url=exact_url)


async def until(predicate: Callable[[], bool], timeout_s: float = 2.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 (polls state the server and client keep, not an event)
            await asyncio.sleep(0.005)
