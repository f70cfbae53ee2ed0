"""The `x-ratelimit-*` headers, as OpenAI sends them, so clients' own back-off works."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.accounting.limits.checks import Check, Kind, Outcome


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


def rate_limit_headers(results: Iterable[tuple[Check, Outcome]]) -> dict[str, str]:
    """For requests and for tokens, the limit that binds hardest (least remaining) of key, team, model.

    A dimension with no limit anywhere gets no headers: there is nothing true to say about it.
    """
    tightest: dict[Kind, tuple[Check, Outcome]] = {}
    for check, outcome in results:
        if check.kind not in (Kind.RPM, Kind.TPM):
            continue
        held = tightest.get(check.kind)
        if held is None or (outcome.remaining, -outcome.reset_ms) < (held[1].remaining, -held[1].reset_ms):
            tightest[check.kind] = (check, outcome)
    headers: dict[str, str] = {}
    for kind, name in ((Kind.RPM, "requests"), (Kind.TPM, "tokens")):
        if kind in tightest:
            check, outcome = tightest[kind]
            headers[f"x-ratelimit-limit-{name}"] = str(check.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(outcome.remaining)
            headers[f"x-ratelimit-reset-{name}"] = go_duration(outcome.reset_ms)
    return headers
