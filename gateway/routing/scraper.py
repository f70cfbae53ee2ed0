"""Reading vLLM replicas' load on an interval, for `least-busy` and `prefix-affinity`.

The vLLM adapter knows the request (`metrics_call`) and the page (`parse_metrics`, both KV-cache
gauge names); the one upstream client sends it. A replica that cannot be read loses its figures
until it can, so the router falls back to counting its own requests in flight there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from gateway.config.file import Deployment
from gateway.core.errors import GatewayError
from gateway.providers.vllm import VLLMLoad, metrics_call, parse_metrics
from gateway.routing.load import LoadBoard
from gateway.upstream.client import UpstreamCall, UpstreamClient

log = logging.getLogger("gateway.routing")


def scraped(deployment: Deployment) -> bool:
    return deployment.provider == "vllm" or deployment.metrics_url is not None


class LoadScraper:
    def __init__(self, deployments: Sequence[Deployment], board: LoadBoard, interval_s: float) -> None:
        self._calls = [metrics_call(d) for d in deployments if scraped(d)]
        self._board = board
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    @property
    def targets(self) -> int:
        return len(self._calls)

    def start(self, upstream: UpstreamClient) -> None:
        if self._calls and self._interval_s > 0:
            self._task = asyncio.create_task(self._run(upstream), name="vllm-load-scraper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def scrape_once(self, upstream: UpstreamClient) -> None:
        await asyncio.gather(*(self._scrape(upstream, call) for call in self._calls))

    async def _run(self, upstream: UpstreamClient) -> None:
        while True:
            await self.scrape_once(upstream)
            await asyncio.sleep(self._interval_s)

    async def _scrape(self, upstream: UpstreamClient, call: UpstreamCall) -> None:
        load: VLLMLoad | None = None
        try:
            response = await upstream.send(call)
            if response.status == 200:
                load = parse_metrics(response.body.decode("utf-8", "replace"))
        except GatewayError as exc:
            log.debug("could not read the load of %s: %s", call.deployment_id, exc.message)
        self._board.report(call.deployment_id, load)
