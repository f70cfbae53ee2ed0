"""Every response carries `x-request-id`: the client's own, if it sent a sane one."""

from __future__ import annotations

import os
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SANE = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def new_request_id() -> str:
    return "req_" + os.urandom(12).hex()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                raw = value if _SANE.fullmatch(value) else None
                break
        request_id = raw.decode() if raw else new_request_id()
        header = (b"x-request-id", request_id.encode())
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
