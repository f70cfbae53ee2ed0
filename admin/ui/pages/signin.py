"""Signing in (with the master key, or an admin user's name and password) and out."""

from __future__ import annotations

import hmac
import logging

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin.ui.forms import FormError, read_form
from admin.ui.passwords import PasswordChecker
from admin.ui.session import LOGIN_COOKIE, MASTER, SESSION_COOKIE, clear_cookie
from admin.ui.web import SECURITY_HEADERS, Ui, Visit, safe_next, same_origin
from gateway.core.errors import GatewayError, RateLimited
from gateway.identity.auth import client_address
from gateway.identity.store.users import USERNAME
from gateway.identity.throttle import AuthThrottle, user_bucket

log = logging.getLogger("gateway.admin.ui")
WRONG = "The user name or password is not right (leave the user name empty to sign in with the master key)."


class SignIn:
    def __init__(self, ui: Ui, master_key: SecretStr, passwords: PasswordChecker, throttle: AuthThrottle) -> None:
        self.ui = ui
        self._master = master_key.get_secret_value().encode()
        self.passwords = passwords
        # Shared with the API's keys: a wrong password and a wrong key are both guesses from an address.
        self.throttle = throttle

    def _form(self, request: Request, status: int = 200, error: str | None = None, username: str = "",
              next_path: str | None = None) -> Response:
        token = self.ui.sessions.login_token(request)
        response = self.ui.render(request, None, "login.html", status, csrf=token, error=error, username=username,
                                  next=safe_next(next_path or request.query_params.get("next")))
        self.ui.sessions.login_cookie(request, response, token)
        return response

    async def show(self, request: Request) -> Response:
        try:
            signed_in = await self.ui.session_of(request) is not None
        except GatewayError:
            signed_in = False
        if signed_in:
            return RedirectResponse(safe_next(request.query_params.get("next")), 303, headers=SECURITY_HEADERS)
        return self._form(request)

    async def submit(self, request: Request) -> Response:
        if not same_origin(request):
            return self.ui.refused(request, 403, "This form was sent from another site.")
        try:
            form = await read_form(request)
        except FormError as exc:
            return self.ui.refused(request, exc.status, exc.message)
        if not self.ui.sessions.login_token_matches(request, form.get("csrf_token")):
            return self._form(request, 403, "The sign-in form's security token is missing or out of date: "
                                            "try again.", next_path=form.get("next"))
        username = form.get("username", "").strip()
        password = form.get("password", "")
        next_path = form.get("next")
        if not password:
            return self._form(request, 400, "Password: required.", username, next_path)
        address = client_address(request)
        # A user's own bucket, as a key's prefix has one; names no user can have are counted by address alone.
        bucket = user_bucket(username) if username and USERNAME.match(username) else None
        try:
            self.throttle.check(address, bucket)
        except RateLimited as exc:  # before the slow password hash: guessing costs the guesser, not us
            return self._throttled(request, exc, username, next_path)
        if not username:
            if not hmac.compare_digest(password.encode(), self._master):
                log.warning("admin ui: failed sign-in with the master key")
                return await self._failed(request, address, None, "", next_path)
            session = self.ui.sessions.open(MASTER, "admin", self.ui.master_fingerprint)
        else:
            try:
                user = await self.ui.users().get(username) if bucket else None
            except GatewayError as exc:  # the user store is unreachable
                return self._form(request, exc.status, exc.message, username, next_path)
            if not await self.passwords.verify(password, user.password_hash if user else None) or user is None:
                log.warning("admin ui: failed sign-in for a user name of %d characters", len(username))
                return await self._failed(request, address, bucket, username, next_path)
            session = self.ui.sessions.open(f"user:{user.username}", user.role,
                                            self.ui.signer.fingerprint(user.password_hash))
        log.info("admin ui: %s signed in (%s)", session.actor, session.role)
        response = RedirectResponse(safe_next(form.get("next")), 303, headers=SECURITY_HEADERS)
        self.ui.sessions.write(request, response, session)
        clear_cookie(request, response, LOGIN_COOKIE)
        return response

    async def _failed(self, request: Request, address: str, bucket: str | None, username: str,
                      next_path: str | None) -> Response:
        try:
            await self.throttle.failed(address, bucket)
        except RateLimited as exc:
            return self._throttled(request, exc, username, next_path)
        return self._form(request, 401, WRONG, username, next_path)

    def _throttled(self, request: Request, exc: RateLimited, username: str, next_path: str | None) -> Response:
        response = self._form(request, 429, exc.message, username, next_path)
        response.headers.update(exc.headers())
        return response

    async def sign_out(self, visit: Visit) -> Response:
        response = RedirectResponse("/admin/login", 303, headers=SECURITY_HEADERS)
        clear_cookie(visit.request, response, SESSION_COOKIE)
        self.ui.sessions.flash(visit.request, response, "Signed out.")
        return response
