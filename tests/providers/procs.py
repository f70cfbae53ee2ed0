"""Provider fakes in their own processes, for tests that drive them through a real gateway."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx

from tests.procs import free_port, stop, wait_http

# The path under which each fake serves its API, i.e. the deployment's `base_url` suffix.
# The OpenAI-compatible services (the presets' fakes) serve under /v1.
BASE_PATHS = {"anthropic": "/v1", "azure": "", "gemini": "/v1beta", "vllm": "/v1", "bedrock": "", "vertex": ""}


class ProviderFake:
    def __init__(self, provider: str, require_key: str | None = None, *extra: str) -> None:
        """`extra`: more of the fake's options (`--agent`, `--context-words N`)."""
        self.provider = provider
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root + BASE_PATHS.get(provider, "/v1")
        args = [sys.executable, "-m", "gateway.fake.providers", provider, "--port", str(self.port)]
        if require_key is not None:
            args += ["--require-key", require_key]
        args += extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        try:
            wait_http(self.root + "/_fake/stats", self.proc)
        except BaseException:
            stop(self.proc)  # never ready: it must not outlive its test
            raise

    def stats(self) -> dict[str, int]:
        return httpx.get(self.root + "/_fake/stats").json()

    def requests(self, request_id: str) -> list[dict[str, Any]]:
        return httpx.get(self.root + "/_fake/requests", params={"request_id": request_id}).json()

    def control(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return httpx.post(self.root + "/_fake/" + path, json=body).json()

    def close(self) -> None:
        stop(self.proc)
