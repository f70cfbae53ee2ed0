"""The `x-ratelimit-*` headers, as OpenAI sends them, so clients' own back-off works."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.accounting.limits.checks import Check, Outcome


def go_duration(ms: int) -> str:
    """Milliseconds as Go prints a time.Duration: `0s`, `12ms`, `6s`, `7.66s`, `1m0s`, `1h2m3.5s`."""
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def rate_limit_headers(
    checks: Sequence[Check], outcomes: Sequence[Outcome], requests_at: Sequence[int], tokens_at: Sequence[int]
) -> dict[str, str]:
    """For requests and for tokens, the limit that binds hardest (least remaining) of key, team, model:
    `requests_at` and `tokens_at` are the positions of the RPM and of the TPM checks.

    A dimension with no limit anywhere gets no headers: there is nothing true to say about it.
    """
    headers: dict[str, str] = {}
    for positions, name in ((requests_at, "requests"), (tokens_at, "tokens")):
        if not positions:
            continue
        tightest = positions[0]
        for at in positions[1:]:
            outcome, held = outcomes[at], outcomes[tightest]
            if (outcome.remaining, -outcome.reset_ms) < (held.remaining, -held.reset_ms):
                tightest = at
        outcome = outcomes[tightest]
        headers[f"x-ratelimit-limit-{name}"] = str(checks[tightest].limit)
        headers[f"x-ratelimit-remaining-{name}"] = str(outcome.remaining)
        headers[f"x-ratelimit-reset-{name}"] = go_duration(outcome.reset_ms)
    return headers
