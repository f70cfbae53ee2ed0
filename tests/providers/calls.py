"""Building a real deployment and client request, as the gateway does, for `build_call` tests."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config.file import Deployment, config_from_dict
from gateway.config.settings import Settings
from gateway.core.request import ClientRequest
from gateway.core.types import Endpoint, Principal
from gateway.providers import PROVIDERS

KEY = "sk-upstream-secret-0123456789"


def deployment(monkeypatch: pytest.MonkeyPatch, **fields: Any) -> Deployment:
    monkeypatch.setenv("TEST_UPSTREAM_KEY", KEY)
    raw = {"models": [{"name": "public", "deployments": [{"api_key_env": "TEST_UPSTREAM_KEY", **fields}]}]}
    config, _ = config_from_dict(raw, set(PROVIDERS))
    return config.models[0].deployments[0]


CALLER = Principal(key_id="master", key_prefix="sk-master", is_master=True)


def request(body: dict[str, Any], endpoint: Endpoint = Endpoint.CHAT, wants_usage: bool = False) -> ClientRequest:
    return ClientRequest("req-1", endpoint, "", CALLER, "public", body, stream=body.get("stream") is True,
                         client_wants_usage=wants_usage)  # fmt: skip


def adapter(name: str) -> Any:
    return PROVIDERS[name](Settings())
