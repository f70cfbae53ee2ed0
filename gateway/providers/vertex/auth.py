"""Google access tokens for Vertex AI, from google-auth (the `vertex` extra), cached and refreshed early.

Credentials are Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS` naming a
service-account or external-account JSON, `gcloud auth application-default login`, or the
metadata server: GKE workload identity, Compute Engine), or the JSON file a deployment names in
`options.credentials_file`. One token source per credentials, shared by every deployment that
uses them.

A token is reused until it nears its expiry. Once less than `REFRESH_AHEAD_S` (or half its
lifetime, for short-lived tokens) is left, one background thread fetches the next while requests
keep using the current one, so requests do not wait for the token endpoint. Only the first
request, or one that finds the token already (nearly) expired after a long idle spell, waits for
a fetch. google-auth's refresh is synchronous HTTP, hence the thread.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from gateway.core.errors import UpstreamError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
REFRESH_AHEAD_S = 300.0
# A token with less than this left is not sent: it could expire on the way.
MIN_VALID_S = 10.0


def google_auth_missing() -> str | None:
    try:
        import google.auth.transport.requests  # noqa: F401
    except ImportError:
        return "provider 'vertex' needs google-auth: pip install 'llm-gateway[vertex]'"
    return None


def _auth_failed(exc: Exception) -> UpstreamError:
    return UpstreamError(f"could not get a Google access token for Vertex AI ({type(exc).__name__}); tell the "
                         "gateway's operator", status=502, type="server_error", code="upstream_auth_failed")


class TokenSource:
    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials
        # Held while fetching; the event loop takes it only when it must wait for a token anyway.
        self._lock = threading.Lock()
        self._submit_lock = threading.Lock()
        self._refreshing: Future[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lifetime_s = 3600.0
        self.fetches = 0

    def _left_s(self) -> float:
        expiry: datetime | None = self._credentials.expiry
        if self._credentials.token is None or expiry is None:
            return 0.0 if self._credentials.token is None else float("inf")
        # google-auth keeps expiry as a naive UTC datetime.
        return (expiry.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()

    def _refresh(self) -> None:
        import google.auth.transport.requests

        started = time.time()
        self._credentials.refresh(google.auth.transport.requests.Request())
        self.fetches += 1
        left = self._left_s()
        if left != float("inf"):
            self._lifetime_s = max(1.0, left + (time.time() - started))

    def token(self) -> str:
        left = self._left_s()
        if left < MIN_VALID_S:
            with self._lock:
                if self._left_s() < MIN_VALID_S:
                    try:
                        self._refresh()
                    except Exception as exc:  # google-auth's RefreshError, TransportError, bad key files
                        raise _auth_failed(exc) from None
        elif left < min(REFRESH_AHEAD_S, self._lifetime_s / 2):
            self._refresh_in_background()
        return str(self._credentials.token)

    def _refresh_in_background(self) -> None:
        with self._submit_lock:
            if self._refreshing is not None and not self._refreshing.done():
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vertex-token")
            self._refreshing = self._executor.submit(self._refresh_quietly)

    def _refresh_quietly(self) -> None:
        try:
            with self._lock:
                self._refresh()
        except Exception:  # the current token still works; the next request tries again
            return


class Tokens:
    """Token sources by credentials file (None: Application Default Credentials)."""

    def __init__(self) -> None:
        self._sources: dict[str | None, TokenSource] = {}
        self._lock = threading.Lock()

    def source(self, credentials_file: str | None) -> TokenSource:
        found = self._sources.get(credentials_file)
        if found is not None:
            return found
        with self._lock:
            if credentials_file not in self._sources:
                self._sources[credentials_file] = TokenSource(_load(credentials_file))
            return self._sources[credentials_file]


def _load(credentials_file: str | None) -> Any:
    import google.auth

    try:
        if credentials_file is not None:
            credentials, _ = google.auth.load_credentials_from_file(credentials_file, scopes=SCOPES)
        else:
            credentials, _ = google.auth.default(scopes=SCOPES)
    except Exception as exc:  # DefaultCredentialsError, a malformed file
        raise _auth_failed(exc) from None
    return credentials
