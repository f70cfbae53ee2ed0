"""Who is calling: the master key, or a virtual key looked up (through a per-worker cache) by its hash.

Refusals follow OpenAI: a missing, unknown, revoked or expired key is 401 `invalid_api_key`
(429 once an address or a key prefix has guessed wrong too often: gateway/identity/throttle.py); a
key asking for a model outside its allowed models is 403 `model_not_found`, which is what
OpenAI answers when a project's key may not use a model ("Project ... does not have access to
model ..."). A model the gateway does not serve at all stays 404, checked before this.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from typing import Protocol

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from gateway.config.file import ConfigError
from gateway.core.errors import AuthenticationFailed, PermissionDenied
from gateway.core.types import Principal
from gateway.identity.access import Access
from gateway.identity.keycache import KeyState
from gateway.identity.keys import DISPLAY_LENGTH, KEY_PREFIX, display_prefix, hash_key
from gateway.identity.throttle import AuthThrottle, key_bucket

MASTER = Principal(key_id="master", key_prefix="master", is_master=True)
# Longer than any key we issue by a wide margin; anything longer is not worth hashing.
_MAX_KEY_LENGTH = 256
MIN_MASTER_KEY_LENGTH = 32


def check_master_key(master_key: SecretStr | None, *, demo: bool = False) -> SecretStr:
    """A short master key is guessable; only the demo, on loopback, keeps its well-known one."""
    if master_key is None:
        raise ConfigError("config error: settings.master_key: required (set GATEWAY_MASTER_KEY)")
    length = len(master_key.get_secret_value())
    if length < MIN_MASTER_KEY_LENGTH and not demo:
        raise ConfigError(f"config error: settings.master_key: at least {MIN_MASTER_KEY_LENGTH} characters, "
                          f"not {length} (a short key can be guessed; `openssl rand -hex 32` makes one)")
    return master_key


def client_address(request: HTTPConnection) -> str:
    """Who is asking, as the throttle counts failures (uvicorn puts a trusted proxy's client here)."""
    client = request.scope.get("client")  # the tuple itself: `request.client` builds an object per call
    return client[0] if client else ""


def presented_key(headers: Headers) -> str | None:
    """The key as OpenAI (`Authorization: Bearer`), Anthropic (`x-api-key`) or Azure (`api-key`) clients send it."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return headers.get("x-api-key") or headers.get("api-key")


def _missing() -> AuthenticationFailed:
    return AuthenticationFailed("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.")


def _incorrect() -> AuthenticationFailed:
    # Never echo the key back, not even a part of it.
    return AuthenticationFailed("Incorrect API key provided.")


class Authenticator(Protocol):
    async def authenticate(self, headers: Headers, client: str = "") -> Principal: ...
    def check_model(self, principal: Principal | None, model: str) -> None: ...


class MasterKeyAuth:
    """The master key alone: for apps built without a key store."""

    def __init__(self, master_key: SecretStr) -> None:
        self._master = master_key.get_secret_value().encode()

    async def authenticate(self, headers: Headers, client: str = "") -> Principal:
        key = presented_key(headers)
        if key is None:
            raise _missing()
        if not hmac.compare_digest(key.encode(), self._master):
            raise _incorrect()
        return MASTER

    def check_model(self, principal: Principal | None, model: str) -> None:
        return None


class KeyAuth:
    """The master key, plus the virtual keys of the store; wrong guesses throttled (throttle.py)."""

    def __init__(self, master_key: SecretStr, access: Access, throttle: AuthThrottle) -> None:
        self._master = master_key.get_secret_value().encode()
        self.access = access
        self.throttle = throttle

    async def authenticate(self, headers: Headers, client: str = "") -> Principal:
        principal, _ = await self.identify(headers, client)
        return principal

    async def identify(self, headers: Headers, client: str = "") -> tuple[Principal, bool]:
        """The caller (`client`: its address) and whether it may use the admin API."""
        key = presented_key(headers)
        if key is None:
            raise _missing()
        ours = key.startswith(KEY_PREFIX) and DISPLAY_LENGTH < len(key) <= _MAX_KEY_LENGTH
        if self.throttle.held:
            self.throttle.check(client, key_bucket(display_prefix(key)) if ours else None)
        if hmac.compare_digest(key.encode(), self._master):
            return MASTER, True
        if not ours:
            # Not one of ours, so no need to look it up: a guess at the master key, or a typo.
            await self.throttle.failed(client)
            raise _incorrect()
        state = await self.access.cache.get(hash_key(key), display_prefix(key))
        if state.principal is None:
            # Only unknown keys are guesses: a revoked or expired key was once handed out.
            await self.throttle.failed(client, key_bucket(display_prefix(key)))
        return _accept(state), state.is_admin

    def check_model(self, principal: Principal | None, model: str) -> None:
        if principal is not None and principal.allowed_models is not None and model not in principal.allowed_models:
            raise PermissionDenied(
                f"This key does not have access to model `{model}`.", param="model", code="model_not_found"
            )

    @staticmethod
    def visible_models(principal: Principal, names: Iterable[str]) -> list[str]:
        allowed = principal.allowed_models
        return [n for n in names if allowed is None or n in allowed]


def _accept(state: KeyState) -> Principal:
    if state.principal is None:
        raise _incorrect()
    if state.revoked:
        raise AuthenticationFailed("This API key has been revoked.")
    if state.expires_at is not None and time.time() >= state.expires_at:
        if state.rotated:
            raise AuthenticationFailed("This API key was rotated and its grace period has ended.")
        raise AuthenticationFailed("This API key has expired.")
    return state.principal
