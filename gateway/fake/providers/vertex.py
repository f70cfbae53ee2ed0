"""A fake of Vertex AI: Gemini and Claude models behind Google OAuth tokens, and the token endpoint.

- `GET /_fake/service-account.json`: a service-account key file whose `token_uri` is this fake
  and whose RSA key the fake made at start-up (the test writes it where google-auth reads it).
- `POST /token`: Google's OAuth token endpoint for service accounts (RFC 7523 JWT bearer grant):
  the assertion's RS256 signature, issuer, audience (Google's token endpoint) and scope are checked, and an access token
  valid for `lifetime_s` (`POST /_fake/tokens {"lifetime_s": N}`; default 3600) is issued.
  `GET /_fake/tokens` counts the tokens issued.
- `.../publishers/google/models/{m}:generateContent|streamGenerateContent`: the Gemini fake.
- `.../publishers/anthropic/models/{m}:rawPredict|streamRawPredict`: the Anthropic fake, with
  Vertex's differences: no `model` in the body, `anthropic_version: vertex-2023-10-16` in it.
A request without a token this fake issued, or with an expired one, is a 401 UNAUTHENTICATED.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.fake.app import Answer, Request, json_answer
from gateway.fake.behaviour import DEFAULT_BEHAVIOUR, Behaviour
from gateway.fake.providers.anthropic import AnthropicFake
from gateway.fake.providers.base import ProviderApp
from gateway.fake.providers.gemini import GeminiFake
from gateway.fake.replies import JSON, WireError

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
CLIENT_EMAIL = "gateway-test@fake-project.iam.gserviceaccount.com"
# The audience Google's token endpoint wants in a service account's assertion, wherever it is posted.
AUDIENCE = "https://oauth2.googleapis.com/token"
VERSION = "vertex-2023-10-16"
_MODEL = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/(?P<publisher>google|anthropic)" \
         r"/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class VertexFake(ProviderApp):
    def __init__(self, behaviour: Behaviour = DEFAULT_BEHAVIOUR, require_key: str | None = None) -> None:
        super().__init__(behaviour, require_key)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_id = secrets.token_hex(8)
        self._tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.lifetime_s = 3600.0
        self.issued = 0
        self._gemini = GeminiFake(behaviour)
        self._anthropic = AnthropicFake(behaviour)
        self.routes = [("POST", re.compile(_MODEL), self._model)]
        self._control[("GET", "/_fake/service-account.json")] = self._service_account
        self._control[("GET", "/_fake/tokens")] = lambda req: json_answer(200, {"issued": self.issued})
        self._control[("POST", "/_fake/tokens")] = self._set_tokens

    def handle(self, req: Request) -> Answer:
        if req.method == "POST" and req.path == "/token":
            return self._token(req)
        return super().handle(req)

    def authorize(self, req: Request) -> Answer | None:
        token = req.headers.get("authorization", "").removeprefix("Bearer ")
        expiry = self._tokens.get(token)
        if expiry is None or expiry <= time.time():
            return self.error(401, "Request had invalid authentication credentials. Expected OAuth 2 access "
                                   "token, login cookie or other valid authentication credential.")
        return None

    def error(self, status: int, message: str | None = None, behaviour: Behaviour | None = None) -> Answer:
        return self._gemini.error(status, message, behaviour)

    def _model(self, req: Request, match: re.Match[str], body: JSON, b: Behaviour, seq: int) -> Answer:
        method = match["method"]
        if match["publisher"] == "google":
            if method not in ("generateContent", "streamGenerateContent"):
                raise WireError(404, f"Method {method} not found for a Gemini model.")
            return self._gemini._generate(req, match, body, b, seq)
        if method not in ("rawPredict", "streamRawPredict"):
            raise WireError(404, f"Method {method} not found for an Anthropic model.")
        if "model" in body:
            raise WireError(400, "model: Extra inputs are not permitted")
        if body.get("anthropic_version") != VERSION:
            raise WireError(400, f"anthropic_version: must be {VERSION}")
        fields = {k: v for k, v in body.items() if k != "anthropic_version"}
        if (method == "streamRawPredict") != (fields.get("stream") is True):
            raise WireError(400, "stream must be true for streamRawPredict and absent for rawPredict")
        answer = self._anthropic._messages(req, match, {**fields, "model": match["model"]}, b, seq)
        return answer

    def _service_account(self, req: Request) -> Answer:
        pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        host = req.headers.get("host", "127.0.0.1")
        return json_answer(200, {
            "type": "service_account", "project_id": "fake-project", "private_key_id": self._key_id,
            "private_key": pem, "client_email": CLIENT_EMAIL, "client_id": "1234567890",
            "token_uri": f"http://{host}/token", "auth_uri": f"http://{host}/auth",
        })

    def _set_tokens(self, req: Request) -> Answer:
        update: Any = orjson.loads(req.body or b"{}")
        self.lifetime_s = float(update.get("lifetime_s", self.lifetime_s))
        return json_answer(200, {"lifetime_s": self.lifetime_s, "issued": self.issued})

    def _token(self, req: Request) -> Answer:
        form = {k: v[0] for k, v in parse_qs(req.body.decode("latin-1")).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return json_answer(400, {"error": "unsupported_grant_type"})
        problem = self._check_assertion(form.get("assertion", ""))
        if problem is not None:
            return json_answer(400, {"error": "invalid_grant", "error_description": problem})
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self._tokens[token] = time.time() + self.lifetime_s
        self.issued += 1
        return json_answer(200, {"access_token": token, "expires_in": int(self.lifetime_s), "token_type": "Bearer"})

    def _check_assertion(self, assertion: str) -> str | None:
        try:
            head, claims, signature = assertion.split(".")
            header, payload = orjson.loads(_unb64url(head)), orjson.loads(_unb64url(claims))
            self._key.public_key().verify(_unb64url(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(),
                                          hashes.SHA256())
        except (ValueError, InvalidSignature, orjson.JSONDecodeError):
            return "Invalid JWT Signature."
        if header.get("alg") != "RS256" or header.get("kid") != self._key_id:
            return "Invalid JWT: unexpected key."
        if payload.get("iss") != CLIENT_EMAIL or payload.get("aud") != AUDIENCE:
            return "Invalid JWT: issuer or audience."
        if SCOPE not in str(payload.get("scope", "")).split():
            return "Invalid JWT: the cloud-platform scope is missing."
        if not payload.get("iat", 0) - 300 <= time.time() <= payload.get("exp", 0):
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        return None

