"""Realistic traffic against a gateway, measured the way its clients see it.

From the repository root, with the project installed (`pip install -e '.[test]'` brings locust):

    export GATEWAY_MASTER_KEY=sk-local-$(python -c 'import secrets; print(secrets.token_hex(16))')
    gateway fake-upstream --port 9911 --ttft-ms 150 --inter-token-ms 20 &
    gateway serve --config loadtests/gateway.yaml &         # listens on 127.0.0.1:4000
    locust --config loadtests/locust.conf                   # this file, headless, against that host

The gateway and locust read the same GATEWAY_MASTER_KEY (the key requests are sent with unless
LOADTEST_KEYS names others), so export it in the shell both start from. locust.conf sets the
host (`--host http://127.0.0.1:4000`), users, spawn rate and run time; flags override it.

Several teams' keys; a mix of streamed and non-streamed chat, embeddings, requests over a
budget or rate limit and requests to a failing deployment. The report shows, per kind of
request, latency (a stream's is the whole stream), time to first token (request type `TTFT`,
one sample per stream that produced a token) and errors by kind: `<status> <code>` in the
failures table, `in-band <code>` for an error inside a stream.

The failing and over-limit requests fail on purpose, and are reported like any failure; when
they are the only failures (a 5xx from the failing deployment, a 429 from the limit) the run
exits 0. Any other failure, or an exception in this file, makes it exit 1.

Set through `LOADTEST_*` environment variables (`Config.from_env`); the model names default to
those of loadtests/gateway.yaml:

    LOADTEST_KEYS             comma-separated `team=key` (or bare keys); default: GATEWAY_MASTER_KEY
    LOADTEST_CHAT_MODEL       default gpt-4o-mini
    LOADTEST_EMBEDDING_MODEL  default text-embedding-3-small
    LOADTEST_FAILING_MODEL    a model whose deployment fails, default broken-model; empty: none sent
    LOADTEST_LIMITED_MODEL    a model whose budget or rate limit is spent, default spent-model;
                              empty: none sent
    LOADTEST_LIMITED_KEYS     comma-separated keys over their own budget or rate limit; when set,
                              over-limit requests use them with the chat model instead
    LOADTEST_MIX              weights, default stream=4,chat=3,embeddings=2,failing=1,over_limit=1
    LOADTEST_CYCLES           how many times each user goes through the mix before stopping;
                              0 (default) runs until --run-time
    LOADTEST_WAIT_S           the most a user waits between requests, default 0.5
    LOADTEST_MAX_TOKENS       max_tokens of chat requests, default 64
    LOADTEST_TIMEOUT_S        the longest a request may take, a stream included, default 120;
                              a stream past it is a failure ("stream timed out")
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import gevent
from locust import HttpUser, between, events, task
from locust.env import Environment
from locust.exception import StopUser
from locust.stats import CSV_STATS_INTERVAL_SEC
from requests import RequestException

KINDS = ("stream", "chat", "embeddings", "failing", "over_limit")
NAMES = {
    "stream": "chat stream",
    "chat": "chat",
    "embeddings": "embeddings",
    "failing": "chat (failing deployment)",
    "over_limit": "chat (over limit)",
}
DEFAULT_MIX = "stream=4,chat=3,embeddings=2,failing=1,over_limit=1"
PROMPTS = (
    "Summarise the attached meeting notes in three bullet points.",
    "Write a SQL query that returns the ten largest customers by revenue.",
    "Translate 'the invoice is overdue' into French and German.",
    "Explain the difference between a mutex and a semaphore.",
)


@dataclass(frozen=True)
class Config:
    keys: list[tuple[str, str]]  # (team, key)
    limited_keys: list[str]
    chat_model: str
    embedding_model: str
    failing_model: str
    limited_model: str
    mix: dict[str, int]
    cycles: int
    wait_s: float
    max_tokens: int
    timeout_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Config:
        keys = [_team_key(i, item) for i, item in enumerate(_items(env.get("LOADTEST_KEYS", "")))]
        if not keys and env.get("GATEWAY_MASTER_KEY"):
            keys = [("team-0", env["GATEWAY_MASTER_KEY"])]
        if not keys:
            raise SystemExit("set LOADTEST_KEYS (or GATEWAY_MASTER_KEY) to the keys to send traffic with")
        config = cls(
            keys=keys,
            limited_keys=_items(env.get("LOADTEST_LIMITED_KEYS", "")),
            chat_model=env.get("LOADTEST_CHAT_MODEL", "gpt-4o-mini"),
            embedding_model=env.get("LOADTEST_EMBEDDING_MODEL", "text-embedding-3-small"),
            failing_model=env.get("LOADTEST_FAILING_MODEL", "broken-model"),
            limited_model=env.get("LOADTEST_LIMITED_MODEL", "spent-model"),
            mix=_mix(env.get("LOADTEST_MIX", DEFAULT_MIX)),
            cycles=int(env.get("LOADTEST_CYCLES", "0")),
            wait_s=float(env.get("LOADTEST_WAIT_S", "0.5")),
            max_tokens=int(env.get("LOADTEST_MAX_TOKENS", "64")),
            timeout_s=float(env.get("LOADTEST_TIMEOUT_S", "120")),
        )
        return config.without_unservable_kinds()

    def without_unservable_kinds(self) -> Config:
        """A kind with nothing configured to send it to is left out of the mix."""
        mix = dict(self.mix)
        if not self.failing_model:
            mix["failing"] = 0
        if not self.limited_keys and not self.limited_model:
            mix["over_limit"] = 0
        return replace(self, mix=mix)

    def schedule(self) -> list[str]:
        """One cycle of the mix: each kind as often as its weight, spread out rather than in runs."""
        slots = [(i / weight, kind) for kind, weight in self.mix.items() if weight for i in range(weight)]
        return [kind for _, kind in sorted(slots)]


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _team_key(index: int, item: str) -> tuple[str, str]:
    team, sep, key = item.partition("=")
    return (team, key) if sep else (f"team-{index}", item)


def _mix(text: str) -> dict[str, int]:
    mix = dict.fromkeys(KINDS, 0)
    for item in _items(text):
        kind, _, weight = item.partition("=")
        if kind not in mix:
            raise SystemExit(f"LOADTEST_MIX: unknown kind {kind!r} (known: {', '.join(KINDS)})")
        mix[kind] = int(weight)
    return mix


def error_kind(status: int, body: bytes | None) -> str:
    """`<status> <code>` from an OpenAI-shaped error body: the kind a client's SDK would raise on."""
    if status == 0:
        return "connection error"
    try:
        error = json.loads(body or b"")["error"]
        code = error.get("code") or error.get("type") or "unknown"
    except (ValueError, KeyError, TypeError, AttributeError):
        code = "non-json"
    return f"{status} {code}"


# The failures the mix provokes on purpose, by request name: the statuses each should get.
INTENDED = {NAMES["failing"]: ("502", "503", "504"), NAMES["over_limit"]: ("429",)}
_STATUS = re.compile(r"^(?:\w+\(['\"])?(?P<status>\d{3}) ")


def intended(name: str, error: str) -> bool:
    """Whether a failure (as locust records it: `CatchResponseError('502 ...')`) is one of the mix's
    own, answered as it should be."""
    match = _STATUS.match(error)
    return match is not None and match["status"] in INTENDED.get(name, ())


@events.quitting.add_listener
def _exit_code(environment: Environment, **_: Any) -> None:
    """Exit 0 when the only failures are the intended ones; otherwise locust's own rule (exit 1)."""
    runner = environment.runner
    if runner is None or environment.process_exit_code is not None or runner.exceptions:
        return
    errors = runner.errors.values()
    if errors and all(intended(e.name, e.error if isinstance(e.error, str) else repr(e.error)) for e in errors):
        environment.process_exit_code = 0


def sse_events(chunks: Iterator[bytes]) -> Iterator[dict[str, Any] | None]:
    """The JSON objects of `data:` lines as they arrive; None for `[DONE]`."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            yield None if data == b"[DONE]" else json.loads(data)


def _has_token(event: dict[str, Any]) -> bool:
    for choice in event.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls"):
            return True
    return False


CONFIG = Config.from_env()


class GatewayUser(HttpUser):
    """One client application of one team, going through the mix in a steady rotation.

    A fixed rotation (rather than a random pick per request) keeps the proportions of the mix
    and lets even a short run see every kind from every user.

    HttpUser (requests) rather than FastHttpUser: requests hands over each chunk of a stream as
    it arrives, which time to first token needs; geventhttpclient's reads wait for a full buffer.
    For more load than one process makes, run locust with `--processes`.
    """

    wait_time = between(0, CONFIG.wait_s)
    _numbers: ClassVar[Iterator[int]] = itertools.count()
    finished: ClassVar[int] = 0

    def on_start(self) -> None:
        number = next(self._numbers)
        self.team, self.key = CONFIG.keys[number % len(CONFIG.keys)]
        schedule = CONFIG.schedule()
        # Users start at different points of the rotation, so the kinds interleave across users.
        offset = number % len(schedule)
        self.schedule = schedule[offset:] + schedule[:offset]
        self.step = 0
        self.random = random.Random(number)

    @task
    def next_request(self) -> None:
        if CONFIG.cycles and self.step >= CONFIG.cycles * len(self.schedule):
            self._finish()
        kind = self.schedule[self.step % len(self.schedule)]
        self.step += 1
        if kind == "stream":
            self._stream()
        elif kind == "chat":
            self._chat(NAMES["chat"], CONFIG.chat_model, self.key)
        elif kind == "embeddings":
            self._embeddings()
        elif kind == "failing":
            self._chat(NAMES["failing"], CONFIG.failing_model, self.key)
        elif CONFIG.limited_keys:
            self._chat(NAMES["over_limit"], CONFIG.chat_model, self.random.choice(CONFIG.limited_keys))
        else:
            self._chat(NAMES["over_limit"], CONFIG.limited_model, self.key)

    def _finish(self) -> None:
        GatewayUser.finished += 1
        runner = self.environment.runner
        if runner is not None and GatewayUser.finished >= runner.target_user_count:
            # Quit from another greenlet (quitting stops every user, this one included), and only
            # after locust's CSV writer, which runs every CSV_STATS_INTERVAL_SEC, saw the last request.
            gevent.spawn_later(2 * CSV_STATS_INTERVAL_SEC, runner.quit)
        raise StopUser()

    def _headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def _chat_body(self, model: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": self.random.choice(PROMPTS)}],
            "max_tokens": CONFIG.max_tokens,
            "user": self.team,
        }
        if stream:
            body["stream"] = True
        return body

    def _chat(self, name: str, model: str, key: str) -> None:
        body = self._chat_body(model, stream=False)
        with self.client.post(
            "/v1/chat/completions", json=body, headers=self._headers(key), name=name, catch_response=True,
            timeout=CONFIG.timeout_s,
        ) as response:
            if response.status_code != 200:
                response.failure(error_kind(response.status_code, response.content))
            elif not (response.json().get("choices") or [{}])[0].get("message"):
                response.failure("200 no-message")

    def _embeddings(self) -> None:
        body = {"model": CONFIG.embedding_model, "input": self.random.choice(PROMPTS), "user": self.team}
        with self.client.post(
            "/v1/embeddings", json=body, headers=self._headers(self.key), name=NAMES["embeddings"],
            catch_response=True, timeout=CONFIG.timeout_s,
        ) as response:
            if response.status_code != 200:
                response.failure(error_kind(response.status_code, response.content))
            elif not response.json().get("data"):
                response.failure("200 no-data")

    def _stream(self) -> None:
        name = NAMES["stream"]
        body = self._chat_body(CONFIG.chat_model, stream=True)
        started = time.perf_counter()
        with self.client.post(
            "/v1/chat/completions",
            json=body,
            headers=self._headers(self.key),
            name=name,
            stream=True,
            catch_response=True,
            # Connecting, and each wait for the next bytes; the whole stream is bounded below.
            timeout=CONFIG.timeout_s,
        ) as response:
            if response.status_code != 200:
                response.failure(error_kind(response.status_code, response.content))
                return
            first_token_ms: float | None = None
            failure = "stream ended without [DONE]"
            try:
                deadline = started + CONFIG.timeout_s
                for event in sse_events(response.iter_content(chunk_size=None)):
                    if time.perf_counter() > deadline:
                        failure = "stream timed out"
                        break
                    if event is None:
                        failure = ""
                        break
                    if "error" in event:
                        error = event["error"] or {}
                        failure = f"in-band {error.get('code') or error.get('type') or 'unknown'}"
                        break
                    if first_token_ms is None and _has_token(event):
                        first_token_ms = (time.perf_counter() - started) * 1000
            except (OSError, ValueError, RequestException) as exc:
                failure = f"stream broken: {type(exc).__name__}"
            if failure:
                response.failure(failure)
            # Locust timed the headers; what the user waits for is the whole stream.
            response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
            if first_token_ms is not None:
                self.environment.events.request.fire(
                    request_type="TTFT",
                    name=name,
                    response_time=first_token_ms,
                    response_length=0,
                    exception=None,
                    context={},
                )
