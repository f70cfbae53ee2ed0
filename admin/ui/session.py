"""Signed session cookies for the admin UI, and the CSRF token each session carries.

A cookie is `<payload>.<signature>`: the payload is base64url JSON (who, role, CSRF token,
expiry), the signature HMAC-SHA256 of it under a key derived from `admin_session_secret`, or
from the master key when that is unset (so changing the master key signs everyone out). The
cookie is HttpOnly, SameSite=Strict, limited to /admin, and Secure when served over https.

Sessions are stateless: signing out clears the cookie, and a copied cookie stays valid until
its expiry, unless the user's password or role changes (the session names a fingerprint of
the password hash and its role, both checked on every request), or the secret changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

from gateway.identity.store.users import Role

SESSION_COOKIE = "gw_admin_session"
# Before sign-in there is no session to hold a CSRF token: the sign-in form gets its own.
LOGIN_COOKIE = "gw_admin_login"
FLASH_COOKIE = "gw_admin_flash"
COOKIE_PATH = "/admin"
LOGIN_TTL_S = 3600
FLASH_TTL_S = 60
MASTER = "master"


def same(a: str, b: str) -> bool:
    """Constant-time equality of two texts (any characters: compare_digest takes only ASCII str)."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class Session:
    actor: str  # "master" or "user:<name>", as the audit log names it
    role: Role
    csrf: str
    expires: int
    # A keyed fingerprint of the password hash (or of the master key) the session was opened with.
    credential: str = ""

    @property
    def can_change(self) -> bool:
        return self.role == "admin"

    @property
    def username(self) -> str | None:
        return self.actor.removeprefix("user:") if self.actor.startswith("user:") else None


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Signer:
    """Signs and checks small JSON payloads; one instance per app, its key derived once."""

    def __init__(self, secret: SecretStr, purpose: bytes = b"gateway admin ui v1") -> None:
        self._key = hmac.new(secret.get_secret_value().encode(), purpose, hashlib.sha256).digest()

    def sign(self, payload: dict[str, object]) -> str:
        body = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
        return f"{body}.{self._mac(body)}"

    def unsign(self, value: str | None, now: float | None = None) -> dict[str, object] | None:
        """The payload if the signature holds and it has not expired (`exp`), else None."""
        if not value or value.count(".") != 1 or len(value) > 4096:
            return None
        body, mac = value.split(".")
        if not same(mac, self._mac(body)):
            return None
        try:
            payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(payload, dict):
            return None
        expires = payload.get("exp")
        if not isinstance(expires, int) or expires <= (time.time() if now is None else now):
            return None
        return payload

    def fingerprint(self, secret: str) -> str:
        """Names a credential in a cookie without telling anything about it (the cookie is readable)."""
        return hmac.new(self._key, b"credential:" + secret.encode(), hashlib.sha256).hexdigest()[:32]

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Sessions:
    def __init__(self, signer: Signer, ttl_s: float) -> None:
        self.signer = signer
        self.ttl_s = int(ttl_s)

    def open(self, actor: str, role: Role, credential: str = "") -> Session:
        return Session(actor, role, new_token(), int(time.time()) + self.ttl_s, credential)

    def read(self, request: Request) -> Session | None:
        payload = self.signer.unsign(request.cookies.get(SESSION_COOKIE))
        if payload is None:
            return None
        actor, role, csrf, credential = (payload.get(k) for k in ("sub", "role", "csrf", "cred"))
        if not (isinstance(actor, str) and role in ("admin", "viewer") and isinstance(csrf, str)
                and isinstance(credential, str)):
            return None
        expires = payload["exp"]
        assert isinstance(expires, int)
        return Session(actor, role, csrf, expires, credential)

    def write(self, request: Request, response: Response, session: Session) -> None:
        value = self.signer.sign({"sub": session.actor, "role": session.role, "csrf": session.csrf,
                                  "cred": session.credential, "exp": session.expires})
        set_cookie(request, response, SESSION_COOKIE, value, self.ttl_s)

    def login_token(self, request: Request) -> str:
        """The sign-in form's CSRF token: the one its cookie holds, else a new one (set by `login_cookie`)."""
        payload = self.signer.unsign(request.cookies.get(LOGIN_COOKIE))
        token = payload.get("csrf") if payload else None
        return token if isinstance(token, str) else new_token()

    def login_cookie(self, request: Request, response: Response, token: str) -> None:
        value = self.signer.sign({"csrf": token, "exp": int(time.time()) + LOGIN_TTL_S})
        set_cookie(request, response, LOGIN_COOKIE, value, LOGIN_TTL_S)

    def login_token_matches(self, request: Request, sent: str | None) -> bool:
        payload = self.signer.unsign(request.cookies.get(LOGIN_COOKIE))
        token = payload.get("csrf") if payload else None
        return isinstance(token, str) and isinstance(sent, str) and same(token, sent)

    def flash(self, request: Request, response: Response, message: str) -> None:
        """A message for the next page (after a redirect): signed so no one else can write it."""
        value = self.signer.sign({"msg": message[:500], "exp": int(time.time()) + FLASH_TTL_S})
        set_cookie(request, response, FLASH_COOKIE, value, FLASH_TTL_S)

    def take_flash(self, request: Request) -> str | None:
        payload = self.signer.unsign(request.cookies.get(FLASH_COOKIE))
        message = payload.get("msg") if payload else None
        return message if isinstance(message, str) else None


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
