"""What a failed attempt means for the rest of the request and for the deployment's health."""

from __future__ import annotations

from enum import Enum

from gateway.core.errors import (
    ContextLengthExceeded,
    GatewayError,
    QuotaExceeded,
    RateLimited,
    UpstreamTimeout,
    UpstreamUnreachable,
)

# The error codes OpenAI and Azure use when a prompt or completion is refused on content grounds.
CONTENT_POLICY_CODES = frozenset({"content_policy_violation", "content_filter", "content_policy"})
# An attempt cut short by the request's own deadline says nothing about the deployment.
DEADLINE_CODE = "deadline_exceeded"


class Outcome(Enum):
    TRANSIENT = "transient"  # timeouts, connection errors, 5xx
    RATE_LIMITED = "rate_limited"  # 429: the deployment cools down for its retry-after
    QUOTA = "quota"  # its quota is spent: it cools down for long
    BROKEN = "broken"  # it rejects the gateway's own credentials: not again in this request
    MISSING = "missing"  # it does not serve this model: not again in this request
    CONTEXT_LENGTH = "context_length"  # to the group's larger-context fallback, if any
    CONTENT_POLICY = "content_policy"  # to the group's content-policy fallback, if any
    CLIENT_FAULT = "client_fault"  # the request itself is wrong: retrying cannot help
    DEADLINE = "deadline"

    @property
    def retryable(self) -> bool:
        """Whether another deployment (or this one, later) may still answer the request."""
        return self in _RETRYABLE

    @property
    def counts_against_circuit(self) -> bool:
        return self in _AGAINST_CIRCUIT


_RETRYABLE = frozenset({Outcome.TRANSIENT, Outcome.RATE_LIMITED, Outcome.QUOTA, Outcome.BROKEN, Outcome.MISSING})
_AGAINST_CIRCUIT = frozenset({Outcome.TRANSIENT, Outcome.BROKEN})


def classify(error: GatewayError) -> Outcome:
    if isinstance(error, ContextLengthExceeded):
        return Outcome.CONTEXT_LENGTH
    if error.code in CONTENT_POLICY_CODES:
        return Outcome.CONTENT_POLICY
    if error.code == DEADLINE_CODE:
        return Outcome.DEADLINE
    if isinstance(error, QuotaExceeded):
        return Outcome.QUOTA
    if isinstance(error, RateLimited) or error.status == 429:
        return Outcome.RATE_LIMITED
    if isinstance(error, UpstreamTimeout | UpstreamUnreachable):
        return Outcome.TRANSIENT
    if error.code == "upstream_auth_failed":
        return Outcome.BROKEN
    if error.code == "upstream_not_found":
        return Outcome.MISSING
    if error.status >= 500 or error.status == 408:
        return Outcome.TRANSIENT
    return Outcome.CLIENT_FAULT
