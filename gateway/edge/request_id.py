"""Every response carries `x-request-id`: the client's own, if it sent a sane one."""

from __future__ import annotations

import itertools
import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SANE = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
# New ids: a random per-process prefix and a counter; unique without a system call per request.
_ID_PREFIX = "req_" + os.urandom(6).hex()
_ids = itertools.count(1)


def request_id(scope: Scope) -> str:
    """The client's `x-request-id` if it sent a sane one, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _SANE.fullmatch(value):
                return value.decode()
            break
    return f"{_ID_PREFIX}{next(_ids):012x}"


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        header = (b"x-request-id", rid.encode())
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
