"""The gateway's one error hierarchy.

Every failure a client can see is a `GatewayError`: it knows its HTTP status and its OpenAI
error `type` and `code`, and renders the OpenAI error object. Foreign exceptions (sockets and
HTTP parsing upstream, redis, asyncpg, provider error bodies) are translated into these at their boundary and
nowhere else.
"""

from __future__ import annotations

import orjson


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None
    # Official SDKs retry 408/409/429/5xx on their own; this says when retrying is pointless.
    retryable: bool | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.extra_headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers)
        if self.retry_after is not None:
            headers["retry-after"] = _seconds(self.retry_after)
            headers["retry-after-ms"] = str(int(self.retry_after * 1000))
        if self.retryable is not None:
            headers["x-should-retry"] = "true" if self.retryable else "false"
        return headers


def _seconds(value: float) -> str:
    return str(max(1, int(value + 0.999)))


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"
    retryable = False


class PermissionDenied(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"
    retryable = False


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class Conflict(GatewayError):
    """The request contradicts stored state (a taken name, a team that still has keys)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"
    retryable = False


class RequestTimeout(GatewayError):
    """The client took too long to send its body; the connection is closed after the answer."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "connection": "close"}


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"
    retryable = False


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class QuotaExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
    retryable = False


class InternalError(GatewayError):
    status = 500
    type = "server_error"


class Overloaded(GatewayError):
    """The gateway sheds load instead of queueing it."""

    status = 503
    type = "server_error"
    code = "overloaded"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class UpstreamError(GatewayError):
    """An upstream answered with an error; status and type are mapped from its answer."""

    def __init__(self, message: str, *, status: int, type: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.status = status
        self.type = type


class UpstreamUnreachable(GatewayError):
    status = 502
    type = "server_error"
    code = "upstream_unreachable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "server_error"
    code = "upstream_timeout"


def sse_error_event(error: GatewayError) -> bytes:
    """An error that happens after a stream has started goes in-band, as the SDKs expect."""
    return b"data: " + error.body_bytes() + b"\n\n"
