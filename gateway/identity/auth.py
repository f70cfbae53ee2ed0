"""Who is calling: the master key, or a virtual key looked up (through a per-worker cache) by its hash.

Refusals follow OpenAI: a missing, unknown, revoked or expired key is 401 `invalid_api_key`; a
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

from gateway.core.errors import AuthenticationFailed, PermissionDenied
from gateway.core.types import Principal
from gateway.identity.access import Access
from gateway.identity.keycache import KeyState
from gateway.identity.keys import DISPLAY_LENGTH, KEY_PREFIX, display_prefix, hash_key

MASTER = Principal(key_id="master", key_prefix="master", is_master=True)
# Longer than any key we issue by a wide margin; anything longer is not worth hashing.
_MAX_KEY_LENGTH = 256


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
    async def authenticate(self, headers: Headers) -> Principal: ...
    def check_model(self, principal: Principal | None, model: str) -> None: ...


class MasterKeyAuth:
    """The master key alone: for apps built without a key store."""

    def __init__(self, master_key: SecretStr) -> None:
        self._master = master_key.get_secret_value().encode()

    async def authenticate(self, headers: Headers) -> Principal:
        key = presented_key(headers)
        if key is None:
            raise _missing()
        if not hmac.compare_digest(key.encode(), self._master):
            raise _incorrect()
        return MASTER

    def check_model(self, principal: Principal | None, model: str) -> None:
        return None


class KeyAuth:
    """The master key, plus the virtual keys of the store."""

    def __init__(self, master_key: SecretStr, access: Access) -> None:
        self._master = master_key.get_secret_value().encode()
        self.access = access

    async def authenticate(self, headers: Headers) -> Principal:
        principal, _ = await self.identify(headers)
        return principal

    async def identify(self, headers: Headers) -> tuple[Principal, bool]:
        """The caller and whether it may use the admin API."""
        key = presented_key(headers)
        if key is None:
            raise _missing()
        if hmac.compare_digest(key.encode(), self._master):
            return MASTER, True
        if not key.startswith(KEY_PREFIX) or not DISPLAY_LENGTH < len(key) <= _MAX_KEY_LENGTH:
            raise _incorrect()  # not one of ours: no need to look it up
        state = await self.access.cache.get(hash_key(key), display_prefix(key))
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
