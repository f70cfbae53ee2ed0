"""One `POST /v1/responses` call as it travels: what the endpoint read, and what came back.

The dialect's reader makes it and returns it beside the neutral body, and the proxy places it on
the request context (`ctx.dialect`); the adapter chooser (adapters.py) marks whether the deployment
that serves it relays it natively, and the native adapter notes the upstream's final response
there. The endpoint stores it at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core.types import Principal
from gateway.dialects.responses.request import ResponsesRequest

JSON = dict[str, Any]


@dataclass(slots=True)
class ResponsesTurn:
    request: ResponsesRequest
    # The client's body as parsed: what a native upstream is sent (with the history put in).
    body: JSON
    # The items of the earlier turns a `previous_response_id` stands for (empty without one).
    history: list[JSON]
    principal: Principal | None
    # The gateway's id for a translated answer; a native answer keeps its upstream's.
    id: str
    created_at: int
    native: bool = False
    deployment_id: str | None = None
    # The finished `response` object, once known (the native adapter's, or the endpoint's own).
    response: JSON | None = None
    # A native answer's body as the adapter wrote it, before the plugins' `after` hooks saw it.
    relayed: bytes = b""
    stored: bool = False
