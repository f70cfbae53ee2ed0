"""Slow clients cannot pin the gateway (issue 17, item 3): every phase a client controls is bounded.

Headers, the body (in all and between parts), a stream the client stops reading; and one key
trickling bodies holds no more of a worker than its own max_parallel.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.accounting.ledger.helpers import migrate, wait_for, wait_rows
from tests.dbs import create_pg_database, drop_pg_database
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

SETTINGS = {
    "client_header_timeout_s": 1.0,
    "client_body_timeout_s": 3.0,
    "client_body_idle_s": 1.0,
    "client_send_timeout_s": 2.0,
    "client_send_buffer_bytes": 1024,
    "max_inflight": 8,
    "ledger_flush_s": 0.05,
}
# Bounds a failure, not a speed: a loaded machine is slow, a missing timeout is for ever.
GIVE_UP_S = 30.0


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()  # its own, so that its stream counts are this module's
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def slow_dsn() -> Iterator[str]:
    dsn = create_pg_database()
    migrate(dsn)
    yield dsn
    drop_pg_database(dsn)


@pytest.fixture(scope="module")
def slow_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slow-logs") / "gateway.log"


@pytest.fixture(scope="module")
def slow_gateway(
    slow_upstream: FakeUpstream, slow_dsn: str, slow_log: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    models = [{"name": "gpt-test", "deployments": [deployment(slow_upstream)]}]
    gw = Gateway(tmp_path_factory.mktemp("slow-gw"), models, settings={**SETTINGS, "database_url": slow_dsn},
                 log=slow_log)  # fmt: skip
    yield gw
    gw.close()


def head(path: str, key: str, length: int, rid: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\n"
            f"x-request-id: {rid}\r\ncontent-length: {length}\r\n\r\n").encode()  # fmt: skip


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or GIVE_UP_S passes)."""
    sock.settimeout(GIVE_UP_S)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def read_response(sock: socket.socket) -> bytes:
    """One response, head and content-length body, without waiting for the connection to close."""
    sock.settimeout(GIVE_UP_S)
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    declared = re.search(rb"(?im)^content-length: *(\d+)", head)
    while declared is not None and len(body) < int(declared[1]) and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def status_and_body(raw: bytes) -> tuple[int, dict[str, Any]]:
    header, _, body = raw.partition(b"\r\n\r\n")
    return int(header.split(b" ")[1]), json.loads(body)


def test_headers_that_never_complete_are_cut(slow_gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", slow_gateway.port)) as silent, \
         socket.create_connection(("127.0.0.1", slow_gateway.port)) as partial:  # fmt: skip
        partial.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthor")
        started = time.monotonic()
        assert read_all(silent) == b""
        assert read_all(partial) == b""
        assert time.monotonic() - started < GIVE_UP_S


def test_the_next_request_on_a_kept_alive_connection_has_its_own_header_deadline(slow_gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", slow_gateway.port)) as conn:
        conn.settimeout(GIVE_UP_S)
        conn.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        # Past most of the first request's header deadline: the second one's clock is its own.
        time.sleep(SETTINGS["client_header_timeout_s"] * 0.7)
        conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthor")
        sent = time.monotonic()
        assert read_all(conn) == b""  # cut without an answer
        waited = time.monotonic() - sent
    assert SETTINGS["client_header_timeout_s"] * 0.9 <= waited < GIVE_UP_S


def test_a_body_with_a_long_gap_is_a_408(slow_gateway: Gateway, slow_dsn: str) -> None:
    with socket.create_connection(("127.0.0.1", slow_gateway.port)) as sock:
        sock.sendall(head("/v1/chat/completions", MASTER_KEY, 1000, "slow-idle") + b'{"model": "gpt-test", ')
        status, body = status_and_body(read_all(sock))
    assert status == 408
    assert body["error"]["code"] == "request_timeout" and "between two of its parts" in body["error"]["message"]
    assert wait_rows(slow_dsn, ["slow-idle"])["slow-idle"]["status"] == 408


def test_an_upload_with_a_long_gap_is_a_408(slow_gateway: Gateway) -> None:
    """Multipart uploads (audio, image edits) are read by their own reader, under the same limits."""
    part = (b"--b0\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\ngpt-test\r\n"
            b"--b0\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF")
    request = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER_KEY}\r\n"
               "content-type: multipart/form-data; boundary=b0\r\ncontent-length: 5000\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", slow_gateway.port)) as sock:
        sock.sendall(request + part)
        status, body = status_and_body(read_all(sock))
    assert status == 408
    assert body["error"]["code"] == "request_timeout" and "between two of its parts" in body["error"]["message"]


def test_a_body_trickled_past_the_total_is_a_408(slow_gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", slow_gateway.port)) as sock:
        sock.sendall(head("/v1/chat/completions", MASTER_KEY, 1000, "slow-total"))
        # One byte every 0.3 s never trips the 1 s idle limit; the 3 s total stops it.
        sock.settimeout(0.3)
        answer = b""
        for _ in range(int(GIVE_UP_S / 0.3)):
            try:
                sock.sendall(b" ")
                answer = sock.recv(65536)
                break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                answer = b""
                break
        answer += read_all(sock)
    status, body = status_and_body(answer)
    assert status == 408 and "in all" in body["error"]["message"]


def new_key(base: str, **limits: int) -> str:
    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    made = httpx.post(f"{base}/admin/api/keys", json={"name": "trickler", **limits}, headers=admin, timeout=10)
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def test_one_key_trickling_bodies_holds_only_its_own_slots(slow_gateway: Gateway) -> None:
    key = new_key(slow_gateway.base, max_parallel=1, rpm=100)
    socks = [socket.create_connection(("127.0.0.1", slow_gateway.port)) for _ in range(8)]
    try:
        for i, sock in enumerate(socks):
            sock.sendall(head("/v1/chat/completions", key, 1000, f"pin-{i}") + b"{")
        # Seven are refused at once (the key's one slot is taken), before their bodies are read.
        # Which one takes the slot is the server's order (their key lookups run side by side), so
        # the answers are taken as they come: seven refusals at once, one request still being read.
        answers: dict[socket.socket, bytes] = {}
        give_up = time.monotonic() + GIVE_UP_S
        while len(answers) < 7 and time.monotonic() < give_up:
            ready, _, _ = select.select([s for s in socks if s not in answers], [], [], give_up - time.monotonic())
            answers.update((sock, read_response(sock)) for sock in ready)
        assert Counter(status_and_body(answer)[0] for answer in answers.values()) == Counter({429: 7})

        async def others() -> Counter[int]:
            statuses: Counter[int] = Counter()
            async with httpx.AsyncClient(base_url=slow_gateway.url, timeout=GIVE_UP_S) as http:
                body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
                for _ in range(2):  # five at a time: the seven slots the trickler left are enough
                    answers = await asyncio.gather(*(http.post("/chat/completions", json=body,
                                                               headers={"authorization": f"Bearer {MASTER_KEY}"})
                                                     for _ in range(5)))  # fmt: skip
                    statuses.update(a.status_code for a in answers)
            return statuses

        # While the trickler still holds its one slot, everyone else is served.
        assert asyncio.run(others()) == Counter({200: 10})
    finally:
        for sock in socks:
            sock.close()


def test_a_stream_the_client_stops_reading_is_cancelled(
    slow_gateway: Gateway, slow_upstream: FakeUpstream, slow_dsn: str, slow_log: Path
) -> None:
    before = slow_upstream.stats()
    # The fake echoes the prompt's words: 20 kB a chunk, 200 chunks a second, for minutes.
    body = json.dumps({"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "w" * 20_000}],
                       "fake": {"tokens": 100_000, "inter_token_ms": 5}}).encode()  # fmt: skip
    with socket.socket() as sock:
        # A small receive window, so that the kernel's buffers fill quickly too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", slow_gateway.port))
        sock.sendall(head("/v1/chat/completions", MASTER_KEY, len(body), "never-read") + body)
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
        # ... and never reads again, until the gateway has given up on it.
        row = wait_rows(slow_dsn, ["never-read"])["never-read"]
    assert row["status"] == 200 and row["cancelled"] is True
    # The upstream stream was closed, not run to its end.
    after = wait_for(lambda: (s := slow_upstream.stats())["active_streams"] == before["active_streams"] and s,
                     "the upstream stream to close")  # fmt: skip
    assert after["streams_cancelled"] == before["streams_cancelled"] + 1, (before, after)
    assert after["streams_completed"] == before["streams_completed"]
    log = slow_log.read_text()
    assert "never-read: the client stopped reading its stream" in log and "Traceback" not in log


def test_headers_past_their_size_limit_are_a_431(slow_gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", slow_gateway.port)) as sock:
        # Just past 64 kB of headers, never finished, then nothing: the gateway reads it all and refuses.
        filler = "".join(f"x-filler-{i}: {'v' * 500}\r\n" for i in range(132))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n" + filler.encode())
        answer = read_all(sock)
    status, body = status_and_body(answer)
    assert status == 431 and body["error"]["code"] == "request_header_fields_too_large"


def test_a_large_body_in_the_same_packets_as_its_headers_is_served(slow_gateway: Gateway) -> None:
    words = " ".join(["word"] * 40_000)  # 200 kB: past the header limit, all of it body
    answer = httpx.post(slow_gateway.url + "/chat/completions", timeout=GIVE_UP_S,
                        headers={"authorization": f"Bearer {MASTER_KEY}"},
                        json={"model": "gpt-test", "messages": [{"role": "user", "content": words}],
                              "max_tokens": 5})  # fmt: skip
    assert answer.status_code == 200, answer.text
