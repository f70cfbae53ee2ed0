"""Embeddings for plugins from the gateway itself: a POST to its own `/v1/embeddings`, in process.

The call goes through the whole app (auth with the master key, limits, routing, the ledger, which
tags it `gateway.purpose=semantic-cache`, or the caller's purpose: `complexity-routing` for the
router's classifier), over an ASGI transport instead of a socket.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp

from gateway.core.errors import UpstreamError

PURPOSE = "semantic-cache"


class SelfEmbedder:
    def __init__(self, master_key: str, timeout_s: float = 30.0, purpose: str = PURPOSE) -> None:
        self._auth = {"Authorization": f"Bearer {master_key}", "x-gateway-tags": f"gateway.purpose={purpose}"}
        self._timeout = timeout_s
        self._client: httpx.AsyncClient | None = None

    def bind(self, app: ASGIApp) -> None:
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.internal",
                                         timeout=self._timeout)

    async def __call__(self, model: str, texts: list[str]) -> list[list[float]]:
        assert self._client is not None, "SelfEmbedder.bind() has not run"
        response = await self._client.post("/v1/embeddings", json={"model": model, "input": texts},
                                           headers=self._auth)
        if response.status_code != 200:
            error: dict[str, Any] = {}
            try:
                error = response.json().get("error") or {}
            except ValueError:
                pass
            raise UpstreamError(f"embedding model {model} answered {response.status_code}",
                                status=response.status_code, type=str(error.get("type") or "server_error"),
                                code=str(error.get("code") or "embedding_failed"))
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        return [item["embedding"] for item in data]

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
