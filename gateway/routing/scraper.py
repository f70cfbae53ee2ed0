"""Reading replicas' load on an interval, for `least-busy` and `prefix-affinity`.

Reading a server's load is an optional capability of a provider adapter (the vLLM adapter has it):
the adapter knows the request (`metrics_call`) and the page (`parse_metrics`); the one upstream
client sends it. Which adapter reads which deployment is decided where the adapters are built and
handed in as `probe_for`, so routing never imports a provider. A replica that cannot be read loses
its figures until it can, so the router falls back to counting its own requests in flight there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from gateway.config.file import Deployment
from gateway.core.errors import GatewayError
from gateway.core.types import ReportedLoad
from gateway.routing.load import LoadBoard
from gateway.upstream.client import UpstreamCall, UpstreamClient

log = logging.getLogger("gateway.routing")


@runtime_checkable
class LoadProbe(Protocol):
    """What a provider adapter offers when its servers report their own load."""

    def metrics_call(self, deployment: Deployment) -> UpstreamCall: ...

    def parse_metrics(self, text: str) -> ReportedLoad | None:
        """The load figures of the page; None when it has none of them."""
        ...


# Which probe reads a deployment's load; None: it is not read.
ProbeFor = Callable[[Deployment], LoadProbe | None]


def no_probes(deployment: Deployment) -> LoadProbe | None:
    return None


class LoadScraper:
    def __init__(self, deployments: Sequence[Deployment], board: LoadBoard, interval_s: float,
                 probe_for: ProbeFor = no_probes) -> None:  # fmt: skip
        self._calls: list[tuple[UpstreamCall, LoadProbe]] = [
            (probe.metrics_call(d), probe) for d in deployments if (probe := probe_for(d)) is not None
        ]
        self._board = board
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    @property
    def targets(self) -> int:
        return len(self._calls)

    def start(self, upstream: UpstreamClient) -> None:
        if self._calls and self._interval_s > 0:
            self._task = asyncio.create_task(self._run(upstream), name="load-scraper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def scrape_once(self, upstream: UpstreamClient) -> None:
        await asyncio.gather(*(self._scrape(upstream, call, probe) for call, probe in self._calls))

    async def _run(self, upstream: UpstreamClient) -> None:
        while True:
            await self.scrape_once(upstream)
            await asyncio.sleep(self._interval_s)

    async def _scrape(self, upstream: UpstreamClient, call: UpstreamCall, probe: LoadProbe) -> None:
        load: ReportedLoad | None = None
        try:
            response = await upstream.send(call)
            if response.status == 200:
                load = probe.parse_metrics(response.body.decode("utf-8", "replace"))
        except GatewayError as exc:
            log.debug("could not read the load of %s: %s", call.deployment_id, exc.message)
        self._board.report(call.deployment_id, load)
