"""The ON_DISCONNECT extension of the gateway's protocol, on a real uvicorn and real sockets: a
stream's watcher hears of a client that left, including one gone before the watch began, and a
watcher that has stopped never cuts what its request does next (finishing it: settle, record)."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn

from gateway.edge.protocol import ClientLimits, GatewayProtocol, ServerConfig
from gateway.edge.relay import DisconnectWatcher
from tests.procs import free_port


async def _serve_one(app: Any, request: bytes, leave_after_s: float, wait_s: float) -> None:
    port = free_port()
    config = ServerConfig(app, client_limits=ClientLimits(), host="127.0.0.1", port=port, http=GatewayProtocol,
                          lifespan="off", log_level="warning", loop="asyncio")  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        await asyncio.sleep(leave_after_s)
        writer.close()  # the client leaves
        await asyncio.sleep(wait_s)
    finally:
        server.should_exit = True
        await serving


REQUEST = b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n"


async def test_a_client_that_leaves_mid_stream_cancels_it() -> None:
    seen: dict[str, object] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        watcher = DisconnectWatcher(receive, scope)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await asyncio.sleep(5)  # the stream, waiting for its upstream
            seen["stream"] = "ran to its end"
        except asyncio.CancelledError:
            seen["stream"] = "cancelled by its watcher" if watcher.absorb() else "cancelled by something else"
        finally:
            watcher.stop()

    await _serve_one(app, REQUEST, leave_after_s=0.1, wait_s=0.3)
    assert seen == {"stream": "cancelled by its watcher"}


async def test_a_client_gone_before_the_watch_began_is_heard_but_never_after_the_stop() -> None:
    seen: dict[str, object] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.3)  # auth and admission, while the client leaves
        # 1. Watching, with the client already gone: the watcher hears of it.
        watcher = DisconnectWatcher(receive, scope)
        try:
            await asyncio.sleep(1)
            seen["watching"] = "not told"
        except asyncio.CancelledError:
            seen["watching"] = "told" if watcher.absorb() else "cancelled by something else"
        finally:
            watcher.stop()
        # 2. A second stream's watch that stops before the loop comes round (its upstream failed at
        # once): what the request does next, finishing it, is not cut.
        watcher = DisconnectWatcher(receive, scope)
        watcher.stop()
        try:
            await asyncio.sleep(0.05)  # settle, the ledger row
            seen["finish"] = "completed"
        except asyncio.CancelledError:
            seen["finish"] = "cancelled after the watch had stopped"

    await _serve_one(app, REQUEST, leave_after_s=0.05, wait_s=0.8)
    assert seen == {"watching": "told", "finish": "completed"}
