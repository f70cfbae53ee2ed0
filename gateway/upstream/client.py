"""The one module that talks to upstream providers over HTTP.

aiohttp's client is used here because it measured several times faster than httpx on this
path (docs/performance.md); everything else in the gateway may use httpx. aiohttp's
exceptions are translated here, once, into the gateway's own errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from gateway.core.errors import UpstreamTimeout, UpstreamUnreachable
from gateway.core.upload import BodyFactory


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
    # Send the URL exactly as written, percent-escapes and all: a signed URL (SigV4) must reach
    # the server as it was signed, and aiohttp would otherwise unescape `%3A` and the like.
    exact_url: bool = False


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class UpstreamStream:
    status: int
    headers: dict[str, str]
    _response: aiohttp.ClientResponse = field(repr=False)
    _deployment_id: str = ""

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, whatever the framing of the reads."""
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError:
            raise UpstreamTimeout(f"deployment {self._deployment_id} stopped sending within its timeout") from None
        except aiohttp.ClientError:
            raise UpstreamUnreachable(f"deployment {self._deployment_id} closed the stream early") from None

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except TimeoutError:
            raise UpstreamTimeout(f"deployment {self._deployment_id} timed out") from None
        except aiohttp.ClientError:
            raise UpstreamUnreachable(f"deployment {self._deployment_id} closed the connection") from None
        finally:
            self.close()

    def close(self) -> None:
        # close(), not release(): an unfinished stream must end upstream too, not go back to the pool.
        if not self._response.closed:
            self._response.close()


class UpstreamClient:
    def __init__(self, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, float, bool], aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )

    @property
    def started(self) -> bool:
        return self._session is not None and not self._session.closed

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timeout(self, call: UpstreamCall, stream: bool) -> aiohttp.ClientTimeout:
        key = (call.timeout_s, call.connect_timeout_s, stream)
        timeout = self._timeouts.get(key)
        if timeout is None:
            if stream:
                # A stream may run long; what must not run long is each wait for the next bytes.
                timeout = aiohttp.ClientTimeout(connect=call.connect_timeout_s, sock_read=call.timeout_s)
            else:
                timeout = aiohttp.ClientTimeout(total=call.timeout_s, connect=call.connect_timeout_s)
            self._timeouts[key] = timeout
        return timeout

    async def send(self, call: UpstreamCall) -> UpstreamResponse:
        stream = await self.open(call, stream=False)
        body = await stream.read()
        return UpstreamResponse(stream.status, stream.headers, body)

    async def open(self, call: UpstreamCall, stream: bool = True) -> UpstreamStream:
        """Send the request and return once the response headers are in."""
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        try:
            response = await self._session.request(
                call.method,
                URL(call.url, encoded=True) if call.exact_url else call.url,
                data=call.body() if callable(call.body) else call.body,
                headers=call.headers,
                timeout=self._timeout(call, stream),
                allow_redirects=False,
            )
        except TimeoutError:
            raise UpstreamTimeout(f"deployment {call.deployment_id} did not answer within its timeout") from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnreachable(
                f"deployment {call.deployment_id} is unreachable ({type(exc).__name__})"
            ) from None
        return UpstreamStream(response.status, dict(response.headers), response, call.deployment_id)

