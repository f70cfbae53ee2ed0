"""What every page shares: the signed-in visit, the guard in front of each handler, rendering.

`Ui.page(...)` wraps a handler: it reads and checks the session (else: sign-in page for a GET,
401 for a POST), the role (a viewer's POST is 403), and for a POST the form and its CSRF token
(403 without the session's token), then calls the handler with a `Visit`. Every response carries
a strict Content-Security-Policy (scripts and styles from /admin/static only) and `no-store`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from admin.ui import formats
from admin.ui.backend import Backend
from admin.ui.forms import FormError, read_form
from admin.ui.session import FLASH_COOKIE, MASTER, SESSION_COOKIE, Session, Sessions, Signer, clear_cookie, same
from gateway.core.errors import GatewayError
from gateway.identity.store.users import UserStore

TEMPLATES = Path(__file__).parent / "templates"
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass
class Visit:
    request: Request
    session: Session
    form: dict[str, str]


PageHandler = Callable[[Visit], Awaitable[Response]]


def templates() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(usd=formats.usd, ms=formats.ms, pct=formats.pct, when=formats.when, count=formats.count,
                       limit=formats.limit, pretty=formats.pretty, key_status=formats.key_status)
    return env


class Ui:
    def __init__(self, backend: Backend, sessions: Sessions, users: Callable[[], UserStore],
                 master_fingerprint: str) -> None:
        self.backend = backend
        self.sessions = sessions
        self.users = users
        self.master_fingerprint = master_fingerprint
        self.env = templates()

    @property
    def signer(self) -> Signer:
        return self.sessions.signer

    # Rendering

    def render(self, request: Request, session: Session | None, template: str, status: int = 200,
               **context: Any) -> Response:
        flash = self.sessions.take_flash(request)
        html = self.env.get_template(template).render(session=session, path=request.url.path, flash=flash,
                                                      **context)
        response = HTMLResponse(html, status, headers=SECURITY_HEADERS)
        if flash:
            clear_cookie(request, response, FLASH_COOKIE)
        return response

    def show(self, visit: Visit, template: str, status: int = 200, **context: Any) -> Response:
        return self.render(visit.request, visit.session, template, status, **context)

    def done(self, visit: Visit, to: str, message: str) -> Response:
        """After a change: back to a page (303, so a reload does not post again) with a message."""
        response = RedirectResponse(to, 303, headers=SECURITY_HEADERS)
        self.sessions.flash(visit.request, response, message)
        return response

    def refused(self, request: Request, status: int, message: str, session: Session | None = None) -> Response:
        return self.render(request, session, "refused.html", status, status_code=status, message=message)

    # The guard

    async def session_of(self, request: Request) -> Session | None:
        session = self.sessions.read(request)
        if session is None:
            return None
        if session.actor == MASTER:
            return session if same(session.credential, self.master_fingerprint) else None
        username = session.username
        user = await self.users().get(username) if username else None
        if user is None or user.role != session.role:
            return None
        return session if same(session.credential, self.signer.fingerprint(user.password_hash)) \
            else None

    def page(self, handler: PageHandler, *, change: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """`change`: the handler changes something, so only an admin may call it."""

        async def endpoint(request: Request) -> Response:
            try:
                session = await self.session_of(request)
            except GatewayError as exc:  # the user store is unreachable
                return self.refused(request, exc.status, exc.message)
            post = request.method == "POST"
            if session is None:
                if post:
                    return self.refused(request, 401, "Your session has ended or was never opened: sign in again.")
                response = RedirectResponse(f"/admin/login?next={quote(_local(request))}", 303,
                                            headers=SECURITY_HEADERS)
                if SESSION_COOKIE in request.cookies:
                    clear_cookie(request, response, SESSION_COOKIE)
                return response
            if change and not session.can_change:
                return self.refused(request, 403, f"Your role ({session.role}) may look but not change anything.",
                                    session)
            form: dict[str, str] = {}
            if post:
                if not same_origin(request):
                    return self.refused(request, 403, "This form was sent from another site.", session)
                try:
                    form = await read_form(request)
                except FormError as exc:
                    return self.refused(request, exc.status, exc.message, session)
                if not same(form.get("csrf_token", ""), session.csrf):
                    return self.refused(request, 403, "The form's security token is missing or out of date: "
                                                      "reload the page and try again.", session)
            try:
                return await handler(Visit(request, session, form))
            except GatewayError as exc:
                return self.refused(request, exc.status, exc.message, session)

        return endpoint


def same_origin(request: Request) -> bool:
    """A browser names the page a POST came from; if it names one, it must be this site."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


def _local(request: Request) -> str:
    path = request.url.path
    return path + ("?" + request.url.query if request.url.query else "")


def safe_next(target: str | None) -> str:
    """Only a path of this UI: never another site (`//evil`, `https://…`)."""
    if target and target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin"
