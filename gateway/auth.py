"""Who is calling. Until virtual keys exist, the master key is the only credential."""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.datastructures import Headers

from gateway.context import Principal
from gateway.errors import AuthenticationFailed


def presented_key(headers: Headers) -> str | None:
    """The key as OpenAI (`Authorization: Bearer`), Anthropic (`x-api-key`) or Azure (`api-key`) clients send it."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return headers.get("x-api-key") or headers.get("api-key")


class MasterKeyAuth:
    def __init__(self, master_key: SecretStr) -> None:
        self._master = master_key.get_secret_value().encode()
        self._principal = Principal(key_id="master", key_prefix="master", is_master=True)

    async def authenticate(self, headers: Headers) -> Principal:
        key = presented_key(headers)
        if key is None:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            )
        if not hmac.compare_digest(key.encode(), self._master):
            # Never echo the key back, not even a part of it.
            raise AuthenticationFailed("Incorrect API key provided.")
        return self._principal
