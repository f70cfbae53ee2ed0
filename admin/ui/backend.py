"""The UI's only way to the data: the admin API's own handlers, called in-process.

Each call builds the request the JSON API would receive (method, path parameters, query, JSON
body) and hands it to the same `AdminApi` / `LedgerApi` method, with the signed-in user under
`UI_SESSION` instead of a bearer key. Validation, the audit log, change announcements and error
messages are therefore exactly the API's; a refusal arrives as the API's `GatewayError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from admin.api import UI_SESSION, AdminApi
from admin.ledger_api import LedgerApi
from admin.ui.session import Session

Handler = Callable[[Request], Awaitable[Response]]
Query = Mapping[str, str | int | None]


class Backend:
    def __init__(self, admin: AdminApi, ledger: LedgerApi) -> None:
        self.admin = admin
        self.ledger = ledger

    async def get(self, session: Session, handler: Handler, query: Query | None = None, **path: str) -> Any:
        return await self._call(session, handler, "GET", path, query, None)

    async def post(self, session: Session, handler: Handler, body: Mapping[str, Any] | None = None, **path: str
                   ) -> Any:
        return await self._call(session, handler, "POST", path, None, body)

    async def patch(self, session: Session, handler: Handler, body: Mapping[str, Any], **path: str) -> Any:
        return await self._call(session, handler, "PATCH", path, None, body)

    async def put(self, session: Session, handler: Handler, body: Mapping[str, Any], **path: str) -> Any:
        return await self._call(session, handler, "PUT", path, None, body)

    async def delete(self, session: Session, handler: Handler, **path: str) -> Any:
        return await self._call(session, handler, "DELETE", path, None, None)

    async def _call(self, session: Session, handler: Handler, method: str, path: Mapping[str, str],
                    query: Query | None, body: Mapping[str, Any] | None) -> Any:
        raw = orjson.dumps(body) if body is not None else b""
        pairs = {k: str(v) for k, v in (query or {}).items() if v is not None and v != ""}
        scope = {
            "type": "http",
            "method": method,
            "path": "/admin/api/(ui)",
            "query_string": urlencode(pairs).encode(),
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
            "path_params": dict(path),
            "state": {},
            UI_SESSION: (session.actor, session.role),
        }
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        response = await handler(Request(scope, receive))
        return orjson.loads(bytes(response.body))
