"""Reading a fake vLLM replica's /metrics through the gateway's upstream client, and the load board."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.config.file import Deployment
from gateway.config.settings import Settings
from gateway.core.types import ReportedLoad
from gateway.providers import PROVIDERS
from gateway.providers.registry import probe_for
from gateway.routing.load import LoadBoard, pressure
from gateway.routing.scraper import LoadScraper, ProbeFor
from gateway.upstream.client import UpstreamClient
from tests.routing.conftest import Replica


@pytest.fixture(scope="module")
def replica() -> Iterator[Replica]:
    r = Replica("scraped")
    yield r
    r.close()


def probes() -> ProbeFor:
    return probe_for({name: cls(Settings()) for name, cls in PROVIDERS.items()})


def deployment(replica: Replica, **fields: object) -> Deployment:
    return Deployment(id="v1", provider="vllm", base_url=replica.url, **fields)  # type: ignore[arg-type]


async def test_a_scrape_reaches_the_board(replica: Replica) -> None:
    replica.behave(report={"waiting": 3, "running": 7, "kv": 0.5}, old_metric_names=False)
    board = LoadBoard()
    scraper = LoadScraper([deployment(replica)], board, interval_s=1, probe_for=probes())
    upstream = UpstreamClient(10)
    await upstream.start()
    try:
        await scraper.scrape_once(upstream)
        assert board.reported("v1") == ReportedLoad(waiting=3, running=7, kv_usage=0.5)
        replica.behave(report={"waiting": 0, "running": 1, "kv": 0.25}, old_metric_names=True)
        await scraper.scrape_once(upstream)
        assert board.reported("v1") == ReportedLoad(waiting=0, running=1, kv_usage=0.25)
    finally:
        await upstream.close()


async def test_an_unreadable_replica_loses_its_figures(replica: Replica) -> None:
    board = LoadBoard()
    board.report("v1", ReportedLoad(1, 1, 0.1))
    gone = Deployment(id="v1", provider="vllm", base_url="http://127.0.0.1:9/v1")
    scraper = LoadScraper([gone], board, interval_s=1, probe_for=probes())
    upstream = UpstreamClient(10)
    await upstream.start()
    try:
        await scraper.scrape_once(upstream)
    finally:
        await upstream.close()
    assert board.reported("v1") is None


def test_only_vllm_or_configured_deployments_are_scraped(replica: Replica) -> None:
    scraped = probes()
    assert scraped(deployment(replica)) is not None
    assert scraped(Deployment(provider="openai", base_url="https://api.openai.com/v1")) is None
    configured = Deployment(provider="openai", base_url="http://h/v1", metrics_url="http://h/metrics")
    assert (probe := scraped(configured)) is not None and probe.metrics_call(configured).url == "http://h/metrics"


def test_board_counts_our_requests_now_and_others_as_last_reported() -> None:
    board = LoadBoard()
    board.started("a")
    assert board.load("a") == 1
    # The replica held 6 requests (1 ours, 5 another gateway's), 2 of them queued, KV 90% full.
    reported = ReportedLoad(waiting=2, running=4, kv_usage=0.9)
    board.report("a", reported)
    assert pressure(reported) == 2 + 2  # the queue, and half way from the knee to full
    assert board.load("a") == 1 + 5 + 4
    board.started("a")
    assert board.load("a") == 2 + 5 + 4
    board.ended("a")
    board.ended("a")
    assert board.load("a") == 0 + 5 + 4  # ours finished: a stale scrape does not hold them
    assert board.inflight("a") == 0
