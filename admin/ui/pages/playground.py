"""The playground: a chat request to any model as a chosen key, streamed back as it arrives.

The page never holds a key: the user pastes one (a virtual key, or the master key) and the
browser sends the request itself, with that key as its bearer token, to this gateway's
`/v1/chat/completions` (admin/ui/static/playground.js). So the call is exactly what a client with
that key gets (its models, limits and budget apply, and it lands in the ledger under that key),
and the server neither stores nor renders the key, nor acts as anyone the session is not.
"""

from __future__ import annotations

from starlette.responses import Response

from admin.ui.web import Ui, Visit


class Playground:
    def __init__(self, ui: Ui, models: list[str]) -> None:
        self.ui = ui
        self.models = models

    async def show(self, visit: Visit) -> Response:
        return self.ui.show(visit, "playground.html", models=self.models)
