"""Fixtures for the limiter: both backends (plus a private Redis Cluster), a clock tests can move,
and requests built the way the proxy builds them.

The shared Redis fails these tests loudly when it is down; nothing here skips. Every test gets its
own key prefix under a per-session one, and the session deletes its own keys (never FLUSHDB).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from gateway.accounting.limits import Limiter, LimiterOptions, Reservation
from gateway.accounting.limits.checks import Backend
from gateway.accounting.limits.memory import MemoryBackend
from gateway.accounting.limits.redis_backend import RedisBackend, connect
from gateway.accounting.pricing import charge
from gateway.config.file import Price
from gateway.core.errors import GatewayError
from gateway.core.request import ClientRequest
from gateway.core.types import BudgetUsage, Endpoint, Limits, Principal, RequestOutcome, Usage
from tests.accounting.limits.servers import PrivateCluster

SHARED_REDIS = os.environ.get("GATEWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")
TIMEOUT_S = 2.0  # generous: the shared Redis is busy with other sessions' tests
MODEL = "m1"
PRICE = Price(input_per_mtok=Decimal(10), output_per_mtok=Decimal(30))
# 400 characters are 100 estimated tokens, plus 4 for the message: 104 prompt + 100 output = 204.
BODY: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 100}
BODY_TOKENS = 204
BODY_MICRO = 104 * 10 + 100 * 30  # 4040 micro-USD at PRICE
START = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC).timestamp()

_counter = itertools.count()


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def session_prefix() -> str:
    return "lt" + secrets.token_hex(5)


@pytest.fixture
def prefix(session_prefix: str) -> str:
    return f"{session_prefix}-{next(_counter)}"


@pytest.fixture(scope="session")
async def shared_redis(session_prefix: str) -> AsyncIterator[Redis]:
    client = connect(SHARED_REDIS, cluster=False, timeout_s=TIMEOUT_S)
    assert isinstance(client, Redis)
    await client.ping()  # the shared Redis must be up: fail, never skip
    yield client
    async for key in client.scan_iter(match="{" + session_prefix + "*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture(scope="session")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
async def cluster_client(private_cluster: PrivateCluster) -> AsyncIterator[RedisCluster]:
    client = connect(private_cluster.url, cluster=True, timeout_s=TIMEOUT_S)
    assert isinstance(client, RedisCluster)
    await client.ping()
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis", "cluster"])
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_backend(backend_kind: str, request: pytest.FixtureRequest) -> Callable[[], Awaitable[Backend]]:
    """Backends over the same store: for Redis, each is a client of its own, like another process."""
    shared = MemoryBackend()
    url, cluster = SHARED_REDIS, False
    if backend_kind == "redis":
        request.getfixturevalue("shared_redis")
    elif backend_kind == "cluster":
        url, cluster = request.getfixturevalue("private_cluster").url, True

    async def make() -> Backend:
        if backend_kind == "memory":
            return shared
        backend = RedisBackend(url, timeout_s=TIMEOUT_S, cluster=cluster)
        await backend.start()
        return backend

    return make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_limiter(
    make_backend: Callable[[], Awaitable[Backend]], prefix: str, clock: FakeClock
) -> AsyncIterator[Callable[..., Awaitable[Limiter]]]:
    made: list[Limiter] = []

    async def make(model_limits: Limits | None = None, **options: Any) -> Limiter:
        limiter = Limiter(
            await make_backend(),
            options=LimiterOptions(prefix=prefix, **options),
            model_limits={MODEL: model_limits} if model_limits else {},
            model_prices={MODEL: PRICE},
            clock=clock,
        )
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        if not isinstance(limiter.backend, MemoryBackend):  # the memory backend is shared by all of them
            await limiter.close()


def key(key_limits: Limits | None = None, team_limits: Limits | None = None, *, team: str | None = "team-a",
        key_id: str = "key-1") -> Principal:  # fmt: skip
    return Principal(
        key_id=key_id, key_prefix="sk-gw-abcdef", team_id=team,
        key_limits=key_limits or Limits(), team_limits=team_limits or Limits(),
    )  # fmt: skip


@dataclass
class Held:
    """A request as the proxy holds it around the limiter: the request value admission reads, what
    admission returned (or the refusal's headers), and how the request ended, which settle is given."""

    request: ClientRequest
    reservation: Reservation | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    budgets: list[BudgetUsage] = field(default_factory=list)
    status: int = 0
    cancelled: bool = False
    usage: Usage | None = None
    cost_usd: Decimal | None = None


def request(principal: Principal, body: dict[str, Any] | None = None) -> Held:
    body = dict(body or BODY)
    return Held(ClientRequest("req", Endpoint.CHAT, "", principal, body["model"], body))


async def admit_held(limiter: Limiter, held: Held) -> None:
    """`limiter.admit` as the proxy calls it: the reservation kept, its headers (or a refusal's) seen."""
    try:
        held.reservation = await limiter.admit(held.request)
    except GatewayError as error:
        held.response_headers.update(error.extra_headers)
        raise
    if held.reservation is not None:
        held.response_headers.update(held.reservation.headers)


async def settle_held(limiter: Limiter, held: Held) -> None:
    """`limiter.settle` as the proxy's exchange calls it: once, with how the request ended."""
    reservation, held.reservation = held.reservation, None
    if reservation is not None:
        outcome = RequestOutcome(held.status, held.cancelled, held.usage, held.cost_usd)
        held.budgets = list(await limiter.settle(reservation, outcome))


def served(held: Held, prompt: int, completion: int) -> Held:
    """What the proxy knows after a good answer, before settle."""
    held.status = 200
    held.usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
    held.cost_usd = charge(PRICE, prompt, completion)
    return held
