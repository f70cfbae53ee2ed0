"""One end user's or key's data, exported or erased, under /admin/api/privacy/.

    POST export   {"user": "<id>"} or {"key": "<key id>"} -> JSON Lines: a manifest, then the records
    POST erase    the same body -> the counts erased per source, and the audit entry's pseudonym

Both are POST so that an end user's id travels in a body, never in a URL that proxies log. Both
need an admin (a viewer of the admin UI may do neither: an export is the person's data).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from admin.api import UI_SESSION, by_method
from admin.inputs import read_model
from admin.report_schemas import SubjectBody
from gateway.core.errors import PermissionDenied
from gateway.edge.responses import json_response
from gateway.privacy.service import Privacy
from gateway.privacy.subject import Subject, subject_of

PREFIX = "/admin/api/privacy"
Authorize = Callable[[Request], Awaitable[str]]


class PrivacyApi:
    def __init__(self, privacy: Callable[[], Privacy], authorize: Authorize) -> None:
        # Built on first use: the key store's database exists only once the app has started.
        self.privacy = privacy
        self.authorize = authorize

    async def _admit(self, request: Request) -> tuple[str, Subject]:
        actor = await self.authorize(request)
        signed_in = request.scope.get(UI_SESSION)
        if signed_in is not None and signed_in[1] != "admin":
            raise PermissionDenied("Only an admin may export or erase a person's data.")
        body = await read_model(request, SubjectBody, required=True)
        return actor, subject_of(body.user, body.key)

    async def export(self, request: Request) -> Response:
        actor, subject = await self._admit(request)
        lines = self.privacy().export(subject, actor)
        # The first line (the manifest) is computed before the response starts, so a database
        # that is down is a 503 with an error body, not a cut stream.
        first = await anext(lines)

        async def body() -> AsyncIterator[bytes]:
            yield first
            async for line in lines:
                yield line

        return StreamingResponse(body(), media_type="application/jsonl", headers={
            "content-disposition": f'attachment; filename="export-{subject.kind}.jsonl"'})

    async def erase(self, request: Request) -> Response:
        actor, subject = await self._admit(request)
        erasure = await self.privacy().erase(subject, actor)
        return json_response(erasure.record())


def privacy_routes(api: PrivacyApi) -> list[Route]:
    return [by_method(f"{PREFIX}/export", {"POST": api.export}), by_method(f"{PREFIX}/erase", {"POST": api.erase})]
