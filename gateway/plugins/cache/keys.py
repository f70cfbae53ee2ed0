"""What makes two requests the same answer, and the `x-gateway-cache` request header.

The key is a SHA-256 over the endpoint, the model and every body field except the few that do
not change the answer (whether it streams, the end-user id, storage flags), plus the caller's
team (or its key, without a team) unless the cache is configured as shared.

    x-gateway-cache: no-cache        do not look up (the fresh answer is still stored)
    x-gateway-cache: no-store        do not store this answer
    x-gateway-cache: ttl=60          store it for 60 s (capped by the cache's max_ttl_s)
    x-gateway-cache: use             opt in, where the cache is configured `opt_in: header`
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.core.errors import InvalidRequest
from gateway.core.fingerprint import answer_material
from gateway.pipeline.context import RequestContext

HEADER = "x-gateway-cache"


@dataclass(frozen=True, slots=True)
class Directives:
    lookup: bool = True
    store: bool = True
    ttl_s: float | None = None
    opted_in: bool = False


NONE = Directives()


def directives(ctx: RequestContext) -> Directives:
    raw = ctx.request_headers.get(HEADER)
    if not raw:
        return NONE
    lookup, store, ttl, opted = True, True, None, False
    for item in raw.split(","):
        item = item.strip().lower()
        if item == "no-cache":
            lookup = False
        elif item == "no-store":
            store = False
        elif item == "use":
            opted = True
        elif item.startswith("ttl="):
            try:
                ttl = float(item[4:])
            except ValueError:
                ttl = -1.0
            if not 0 < ttl < 10**7:
                raise InvalidRequest(f"The {HEADER} header's ttl must be a number of seconds above 0.",
                                     param=HEADER, code="invalid_cache_directive")
            opted = True
        elif item:
            raise InvalidRequest(f"The {HEADER} header takes no-cache, no-store, use and ttl=<seconds>.",
                                 param=HEADER, code="invalid_cache_directive")
    return Directives(lookup, store, ttl, opted)


def scope(ctx: RequestContext, shared: bool) -> str:
    if shared:
        return "shared"
    principal = ctx.principal
    if principal is None:
        return "anonymous"
    return f"team:{principal.team_id}" if principal.team_id else f"key:{principal.key_id}"


def cache_key(ctx: RequestContext, shared: bool, body: dict[str, Any] | None = None) -> str:
    # The ledger's fingerprint (gateway/core/fingerprint.py) is the same material without the scope.
    material = answer_material(ctx.endpoint.value, ctx.model, ctx.body if body is None else body)
    material["scope"] = scope(ctx, shared)
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()
