"""`/metrics` of a gateway with two workers counts every request once, whichever worker served it
and whichever worker answers the scrape.

The fake upstream's usage is deterministic: prompt_tokens is the number of words in all messages,
completion_tokens is 16 (its default) times `n`.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests.observability.scrape import Scrape, scrape
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

MODELS = "gpt-test", "other-model"
SYSTEM = {"role": "system", "content": "be brief"}  # 2 words


def models(upstream: FakeUpstream) -> list[dict[str, object]]:
    return [{"name": name, "deployments": [deployment(upstream)]} for name in MODELS]


@pytest.fixture(scope="module")
def operator_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prom")
    # Left over from an earlier run: it must not be summed in (and is not even readable).
    (path / "counter_1.db").write_bytes(b"stale garbage")
    return path


@pytest.fixture(scope="module")
def two_workers(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, operator_dir: Path
) -> Iterator[Gateway]:
    gw = Gateway(
        tmp_path_factory.mktemp("gw2"), models(upstream), workers=2,
        env={"PROMETHEUS_MULTIPROC_DIR": str(operator_dir)},
    )  # fmt: skip
    wait_for_workers(gw, 2)
    yield gw
    gw.close()


def wait_for_workers(gw: Gateway, count: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while scrape(gw.base).total("llm_gateway_workers") != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} workers did not start")
        time.sleep(0.05)


class Traffic:
    """Sends requests on fresh connections, so that both workers get some, and tallies what to expect."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.requests: Counter[tuple[str, str, str]] = Counter()  # (model, status_class, stream)
        self.prompt = self.completion = self.streams = 0

    async def run(self, unary: int, unary_n2: int, streams: int, unknown: int, bad_key: int) -> None:
        async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)) as http:
            client = openai.AsyncOpenAI(base_url=self.gw.url, api_key=MASTER_KEY, max_retries=0, http_client=http)
            bad = openai.AsyncOpenAI(base_url=self.gw.url, api_key="sk-wrong", max_retries=0, http_client=http)
            calls = [self._unary(client, 1) for _ in range(unary)]
            calls += [self._unary(client, 2) for _ in range(unary_n2)]
            calls += [self._stream(client) for _ in range(streams)]
            calls += [self._unknown(client) for _ in range(unknown)]
            calls += [self._bad_key(bad) for _ in range(bad_key)]
            gate = asyncio.Semaphore(8)

            async def bounded(call: object) -> None:
                async with gate:
                    await call  # type: ignore[misc]

            await asyncio.gather(*(bounded(c) for c in calls))

    async def _unary(self, client: openai.AsyncOpenAI, n: int) -> None:
        reply = await client.chat.completions.create(
            model="gpt-test", n=n, messages=[SYSTEM, {"role": "user", "content": "one two three"}]
        )
        assert reply.usage is not None and reply.usage.prompt_tokens == 5
        self.requests["gpt-test", "2xx", "false"] += 1
        self.prompt += 5
        self.completion += 16 * n

    async def _stream(self, client: openai.AsyncOpenAI) -> None:
        stream = await client.chat.completions.create(
            model="other-model", stream=True, stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "alpha beta"}],
        )  # fmt: skip
        async for _ in stream:
            pass
        self.requests["other-model", "2xx", "true"] += 1
        self.prompt += 2
        self.completion += 16
        self.streams += 1

    async def _unknown(self, client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="made-up-model-xyz", messages=[{"role": "user", "content": "x"}])
        # A model the config does not know is "other": clients cannot mint series.
        self.requests["other", "4xx", "false"] += 1

    async def _bad_key(self, client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
        # Refused at authentication, but its small body came at once: counted under the model it named.
        self.requests["gpt-test", "4xx", "false"] += 1

    def check(self, s: Scrape) -> None:
        for (model, status_class, stream), count in self.requests.items():
            assert s.total("llm_gateway_requests_total", model=model, status_class=status_class, stream=stream) == count
        assert s.total("llm_gateway_requests_total") == sum(self.requests.values())
        assert s.total("llm_gateway_tokens_total", type="prompt") == self.prompt
        assert s.total("llm_gateway_tokens_total", type="completion") == self.completion
        assert s.total("llm_gateway_tokens_total", model="gpt-test", provider="openai", team="none") > 0
        errors = "llm_gateway_errors_total"
        assert s.total(errors, model="other", status="404") == self.requests["other", "4xx", "false"]
        assert s.total(errors, model="gpt-test", status="401") == self.requests["gpt-test", "4xx", "false"]
        served = sum(c for (_, status_class, _), c in self.requests.items() if status_class == "2xx")
        assert s.total("llm_gateway_request_duration_seconds_count") == sum(self.requests.values())
        assert s.total("llm_gateway_upstream_latency_seconds_count") == served
        assert s.total("llm_gateway_overhead_seconds_count") == served
        assert s.total("llm_gateway_time_to_first_token_seconds_count") == self.streams
        # Every observation falls in the +Inf bucket.
        assert s.total("llm_gateway_time_to_first_token_seconds_bucket", le="+Inf") == self.streams
        assert s.total("llm_gateway_inflight_requests") == 0


def requests_per_worker(directory: Path, tmp: Path) -> dict[str, float]:
    """Each worker's own count, read from its own file alone."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        alone = tmp / path.stem
        alone.mkdir(parents=True)
        shutil.copy(path, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        total = sum(
            s.value for m in registry.collect() for s in m.samples if s.name == "llm_gateway_requests_total"
        )
        if total:
            counts[path.stem] = total
    return counts


async def test_two_workers_count_every_request_once(two_workers: Gateway, operator_dir: Path, tmp_path: Path) -> None:
    assert not (operator_dir / "counter_1.db").exists(), "the multiprocess directory is wiped at start"
    traffic = Traffic(two_workers)
    await traffic.run(unary=24, unary_n2=4, streams=8, unknown=3, bad_key=2)
    # Fresh connections land on either worker; rarely one gets them all, so send more until both served.
    for _ in range(10):
        if len(requests_per_worker(operator_dir, tmp_path / f"w{_}")) >= 2:
            break
        await traffic.run(unary=16, unary_n2=0, streams=0, unknown=0, bad_key=0)
    per_worker = requests_per_worker(operator_dir, tmp_path / "final")
    assert len(per_worker) == 2, per_worker
    assert sum(per_worker.values()) == sum(traffic.requests.values())

    # Whichever worker answers, the scrape is the sum of both.
    for _ in range(6):
        s = scrape(two_workers.base)
        traffic.check(s)
        assert s.total("llm_gateway_workers") == 2


async def test_the_default_directory_works_without_an_operator(upstream: FakeUpstream, tmp_path: Path) -> None:
    gw = Gateway(tmp_path, models(upstream), workers=2)
    try:
        wait_for_workers(gw, 2)
        traffic = Traffic(gw)
        await traffic.run(unary=12, unary_n2=2, streams=4, unknown=1, bad_key=1)
        for _ in range(4):
            traffic.check(scrape(gw.base))
    finally:
        gw.close()
