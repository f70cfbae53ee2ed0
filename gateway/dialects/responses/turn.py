"""One `POST /v1/responses` call as the endpoint read it: a value no later stage writes.

The dialect's reader makes it and returns it beside the neutral body, and the proxy places it on
the request context (`ctx.dialect`), where the adapter chooser and the native adapter read it
(adapters.py). What comes back is not noted here: which deployment served the call is the
attempt's (`ctx.deployment`, whose Responses mode says whether it was relayed natively), and the
answer to store is what the dialect's writer is handed (endpoint.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core.types import Principal
from gateway.dialects.responses.request import ResponsesRequest

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
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
