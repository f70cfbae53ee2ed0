"""A tiny webhook receiver on a real loopback socket: records what it is sent, answers as told."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from aiohttp import web

from tests.procs import free_port


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[dict[str, Any]] = []
        # Statuses to answer with, in order; once empty, 200.
        self.script: deque[int] = deque()
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        status = self.script.popleft() if self.script else 200
        if status == 200:
            self.received.append(await request.json())
            self.arrived.set()
        return web.Response(status=status, text="ok" if status == 200 else "failing")

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[dict[str, Any]]:
        """Wait until `count` posts have arrived (a bound for a hung test, not a timing assertion)."""
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received
