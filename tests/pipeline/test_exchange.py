"""Every request is finished exactly once, recorded exactly once, settled once if admitted (issue 15, item 2).

A proxy served by uvicorn on loopback, in front of the fake upstream, with an admission and a
recorder that count what they see per request id, and a plugin that fails (or answers) where a
request asks it to. Each test ends a request one way and checks the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette

from gateway.accounting.pricing import PriceBook, load_price_table
from gateway.config.file import config_from_dict
from gateway.config.plugins import PluginsSection
from gateway.config.settings import Settings
from gateway.core.errors import RateLimited
from gateway.core.request import ClientRequest
from gateway.core.types import BudgetUsage, Endpoint, RequestOutcome
from gateway.dialects.anthropic.endpoint import MESSAGES as MESSAGES_DIALECT
from gateway.edge.front import Front
from gateway.identity.auth import MasterKeyAuth
from gateway.pipeline.context import RequestContext
from gateway.pipeline.proxy import Proxy
from gateway.pipeline.record import RequestRecord
from gateway.plugins.base import Answer, ChunkHook, Plugin, Services
from gateway.plugins.runner import Plugins
from gateway.providers.registry import provider_classes
from gateway.routing.router import Router
from gateway.upstream.client import UpstreamClient
from tests.procs import MASTER_KEY, FakeUpstream, free_port

MESSAGES = [{"role": "user", "content": "hi there"}]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
ANSWER = {"id": "cached", "object": "chat.completion", "created": 1, "model": "gpt-test",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "from the cache"},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}}  # fmt: skip


@dataclass(frozen=True)
class Held:
    """The test admission's reservation."""

    request_id: str
    headers: dict[str, str] = field(default_factory=dict)


class Counting:
    """The admission and the recorder: what each saw, per request id."""

    def __init__(self) -> None:
        self.admitted: Counter[str] = Counter()
        self.settled: Counter[str] = Counter()
        self.recorded: Counter[str] = Counter()
        self.statuses: dict[str, tuple[int, str | None, bool]] = {}

    async def admit(self, request: ClientRequest) -> Held:
        if request.user == "refuse":
            raise RateLimited("refused by the test's limiter", retry_after=1.0)
        self.admitted[request.request_id] += 1
        return Held(request.request_id)

    async def settle(self, reservation: Held, outcome: RequestOutcome) -> list[BudgetUsage]:
        self.settled[reservation.request_id] += 1
        return []

    def record(self, record: RequestRecord) -> None:
        self.recorded[record.request_id] += 1
        self.statuses[record.request_id] = (record.status, record.error_type, record.cancelled)


class Tripwire(Plugin):
    """Fails in the hook the request's `user` names (`boom:before`...), or answers it (`cache`)."""

    name = "tripwire"

    async def before(self, ctx: RequestContext) -> Answer | None:
        if ctx.user == "cache":
            return Answer(dict(ANSWER), headers={"x-gateway-cache": "hit"})
        self._trip(ctx, "before")
        return None

    def on_chunk(self, ctx: RequestContext) -> ChunkHook | None:
        self._trip(ctx, "on_chunk")
        return None

    async def after(self, ctx: RequestContext, answer: Answer) -> None:
        self._trip(ctx, "after")

    async def on_error(self, ctx: RequestContext) -> None:
        self._trip(ctx, "on_error")

    @staticmethod
    def _trip(ctx: RequestContext, hook: str) -> None:
        if ctx.user == f"boom:{hook}" or (hook == "on_error" and ctx.user is not None and ctx.user.startswith("boom")):
            raise RuntimeError(f"the tripwire in {hook}")


class Served:
    def __init__(self, url: str, counts: Counting, proxy: Proxy) -> None:
        self.url = url
        self.counts = counts
        self.proxy = proxy
        self._ids = count()

    def request_id(self) -> str:
        return f"req_exchange_{next(self._ids)}"

    async def once(self, rid: str, *, admitted: bool) -> tuple[int, str | None, bool]:
        """Wait for the request's record, then check nothing is counted twice; its (status, error, cancelled)."""
        counts = self.counts
        for _ in range(500):
            if counts.recorded[rid]:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # time for a second finish, were there one
        assert counts.recorded[rid] == 1
        assert counts.admitted[rid] == (1 if admitted else 0)
        assert counts.settled[rid] == counts.admitted[rid]
        return counts.statuses[rid]


@pytest.fixture(scope="module")
async def served(upstream: FakeUpstream) -> AsyncIterator[Served]:
    settings = Settings(master_key=SecretStr(MASTER_KEY))
    classes = provider_classes()
    config, _ = config_from_dict({"models": [
        {"name": "gpt-test", "deployments": [{"provider": "openai", "base_url": upstream.url, "model": "fake-gpt"}]},
    ]}, set(classes))  # fmt: skip
    prices = PriceBook(load_price_table())
    router = Router(config.models, config.routing, prices=prices)
    client = UpstreamClient(16)
    counts = Counting()
    plugins = Plugins(PluginsSection.model_validate({"global": [{"name": "tripwire"}]}), {"tripwire": Tripwire},
                      Services(settings, prices))  # fmt: skip
    proxy = Proxy(auth=MasterKeyAuth(SecretStr(MASTER_KEY)), router=router, upstream=client, prices=prices,
                  providers={name: cls(settings) for name, cls in classes.items()}, max_body_bytes=1 << 20,
                  admission=counts, recorders=[counts], plugins=plugins)  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await client.start()
        router.start(client)
        try:
            yield
        finally:
            await router.close()
            await client.close()

    routes = {"/v1/chat/completions": proxy.handler(Endpoint.CHAT),
              "/v1/messages": proxy.handler(Endpoint.CHAT, lambda: MESSAGES_DIALECT)}  # fmt: skip
    front = Front(Starlette(lifespan=lifespan), routes, max_inflight=64, retry_after_s=1.0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(front, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers a flag, not an event)
        await asyncio.sleep(0.01)
    yield Served(f"http://127.0.0.1:{port}", counts, proxy)
    server.should_exit = True
    await task


async def post(served: Served, rid: str, body: dict[str, Any], *, path: str = "/v1/chat/completions",
               headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        sent = {**AUTH, "x-request-id": rid, **(headers or {})}
        response = await http.post(served.url + path, json=body, headers=sent)
        await response.aread()
        return response


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": MESSAGES, **extra}


async def test_unary_answer(served: Served) -> None:
    rid = served.request_id()
    assert (await post(served, rid, chat())).status_code == 200
    assert await served.once(rid, admitted=True) == (200, None, False)


async def test_streamed_answer(served: Served) -> None:
    rid = served.request_id()
    response = await post(served, rid, chat(stream=True))
    assert response.status_code == 200 and response.text.rstrip().endswith("[DONE]")
    assert await served.once(rid, admitted=True) == (200, None, False)


async def test_streamed_answer_in_another_dialect(served: Served) -> None:
    rid = served.request_id()
    body = {"model": "gpt-test", "max_tokens": 20, "messages": MESSAGES, "stream": True}
    response = await post(served, rid, body, path="/v1/messages")
    assert response.status_code == 200 and "message_stop" in response.text
    assert await served.once(rid, admitted=True) == (200, None, False)


@pytest.mark.parametrize(("body", "headers", "status"), [
    (chat(), {"authorization": "Bearer wrong"}, 401),  # at authentication
    ({"model": "nope", "messages": MESSAGES}, {}, 404),  # an unknown model
    (chat(user="refuse"), {}, 429),  # by admission
])  # fmt: skip
async def test_refused(served: Served, body: dict[str, Any], headers: dict[str, str], status: int) -> None:
    rid = served.request_id()
    assert (await post(served, rid, body, headers=headers)).status_code == status
    recorded, error, _ = await served.once(rid, admitted=False)
    assert recorded == status and error is not None


async def test_shed_for_overload(served: Served) -> None:
    # The front door sheds before the proxy sees the request, then hands it what it refused.
    rid = served.request_id()
    await served.proxy.refused(rid, Endpoint.CHAT, RateLimited("shed"))
    assert await served.once(rid, admitted=False) == (429, RateLimited.type, False)


@pytest.mark.parametrize("stream", [False, True])
async def test_cached(served: Served, stream: bool) -> None:
    rid = served.request_id()
    response = await post(served, rid, chat(user="cache", stream=stream))
    assert response.status_code == 200 and response.headers["x-gateway-cache"] == "hit"
    assert await served.once(rid, admitted=False) == (200, None, False)


@pytest.mark.parametrize(("fake", "status"), [({"status": 400}, 400), ({"status": 500}, 502)])
async def test_failed_upstream(served: Served, fake: dict[str, Any], status: int) -> None:
    rid = served.request_id()
    got = await post(served, rid, chat(fake=fake))
    recorded = await served.once(rid, admitted=True)
    assert recorded[0] == got.status_code and got.status_code >= 400 and recorded[1] is not None


async def test_stream_failing_mid_way(served: Served) -> None:
    rid = served.request_id()
    response = await post(served, rid, chat(stream=True, fake={"drop_after": 2}))
    assert response.status_code == 200 and '"error"' in response.text
    status, error, cancelled = await served.once(rid, admitted=True)
    assert status == 200 and error is not None and not cancelled


async def test_client_leaves_mid_stream(served: Served) -> None:
    rid = served.request_id()
    body = chat(stream=True, fake={"tokens": 1000, "inter_token_ms": 20})
    async with httpx.AsyncClient(timeout=30) as http, http.stream(
        "POST", served.url + "/v1/chat/completions", json=body, headers={**AUTH, "x-request-id": rid}
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                break  # and leave: the connection closes with the stream half sent
    assert await served.once(rid, admitted=True) == (200, None, True)


async def test_client_leaves_while_sending_its_body(served: Served) -> None:
    rid = served.request_id()
    _, writer = await asyncio.open_connection(*served.url.removeprefix("http://").split(":"))
    writer.write((f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER_KEY}\r\n"
                  f"x-request-id: {rid}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
                  '{"model": "gpt-test",').encode())  # fmt: skip
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    status, _, cancelled = await served.once(rid, admitted=False)
    assert cancelled and status == 499


@pytest.mark.parametrize(("hook", "stream"), [("before", False), ("after", False), ("before", True),
                                              ("on_chunk", True), ("on_error", False)])  # fmt: skip
async def test_plugin_that_raises(served: Served, hook: str, stream: bool) -> None:
    rid = served.request_id()
    fake = {"status": 500} if hook == "on_error" else {}
    response = await post(served, rid, chat(user=f"boom:{hook}", stream=stream, fake=fake))
    status, error, _ = await served.once(rid, admitted=hook not in ("before",))
    assert status == response.status_code and status >= 400 and error is not None
