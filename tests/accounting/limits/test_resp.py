"""The limits' own Redis connection (gateway/accounting/limits/resp.py): the wire format, and real servers.

Every server here is a private redis-server (restarted, paused, flushed, with a password, TLS or
a unix socket); each test runs on both event loops the gateway may use.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from gateway.accounting.limits import build_limiter
from gateway.accounting.limits.resp import (
    ProtocolError,
    ReplyError,
    Script,
    ScriptChannel,
    UnsupportedOption,
    encode,
    evalsha,
    parse,
)
from gateway.accounting.pricing import PriceBook
from gateway.config.file import Config, ConfigError
from gateway.config.settings import Settings
from tests.accounting.limits.servers import PrivateRedis
from tests.procs import free_port

TIMEOUT_S = 1.0
ECHO = Script("redis.call('INCR', KEYS[1]) return ARGV[1]")
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture(params=list(LOOPS))
def run(request: pytest.FixtureRequest) -> Run:
    def run(coro: Awaitable[Any]) -> Any:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
            return runner.run(coro)  # type: ignore[arg-type]

    return run


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    yield redis
    redis.stop()


# The wire format.

Reply = Any
line = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20)
replies: st.SearchStrategy[Reply] = st.recursive(
    st.none() | st.binary(max_size=40) | st.integers(-(2**63), 2**63 - 1)
    | line.map(lambda t: ("+", t)) | line.filter(bool).map(lambda t: ("-", t)),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=10,
)  # fmt: skip


def wire(reply: Reply) -> bytes:
    """How Redis sends `reply` (RESP2), written independently of the parser."""
    if reply is None:
        return b"$-1\r\n"
    if isinstance(reply, bytes):
        return b"$%d\r\n%s\r\n" % (len(reply), reply)
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, tuple):
        return reply[0].encode() + reply[1].encode() + b"\r\n"
    return b"*%d\r\n" % len(reply) + b"".join(wire(r) for r in reply)


def expected(reply: Reply) -> Any:
    if isinstance(reply, tuple):
        return reply[1].encode() if reply[0] == "+" else ("error", reply[1])
    if isinstance(reply, list):
        return [expected(r) for r in reply]
    return reply


def comparable(parsed: Any) -> Any:
    if isinstance(parsed, ReplyError):
        return ("error", str(parsed))
    if isinstance(parsed, list):
        return [comparable(p) for p in parsed]
    return parsed


@given(st.lists(replies, min_size=1, max_size=5), st.data())
def test_replies_parse_back_whatever_the_reads_split_them_into(sent: list[Reply], data: st.DataObject) -> None:
    stream = b"".join(wire(r) for r in sent)
    cut = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    buffer, got = bytearray(), []
    for start, end in zip([0, *cut], [*cut, len(stream)], strict=True):
        buffer += stream[start:end]
        at = 0
        while at < len(buffer):
            reply, end_at = parse(buffer, at)
            if end_at < 0:
                break
            got.append(comparable(reply))
            at = end_at
        del buffer[:at]
    assert got == [expected(r) for r in sent]
    assert not buffer


@pytest.mark.parametrize("garbage", [b"?what\r\n", b"$x\r\nab\r\n", b":1.5\r\n"])
def test_bytes_that_are_not_resp_are_a_protocol_error(garbage: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse(garbage)


def test_commands_are_arrays_of_bulk_strings() -> None:
    assert encode(["EVALSHA", "ab", 1, "k", b"\r\n"]) == (
        b"*5\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$1\r\nk\r\n$2\r\n\r\n\r\n"
    )


def test_a_script_call_is_encoded_as_a_whole_command_whichever_heads_are_cached() -> None:
    """The head (script, keys) is kept per set of keys: other keys or another number of arguments
    must never reuse it, and a full cache starts again."""
    heads: dict[tuple[str, tuple[str, ...], int], bytes] = {}
    calls = [(["{a}:rpm", "{a}:usd:2026-03-10"], [1, "m1", 2, "r 5 1 0"]),
             (["{a}:rpm", "{a}:usd:2026-03-10"], [3, "m2", 4, "r 5 1 0 b 9 9 9"]),
             (["{a}:rpm", "{a}:usd:2026-03-11"], [5, "m3", 6, "r 5 1 0"]),
             (["{a}:rpm"], [5, "m3", 6, "r 5 1 0"]),
             (["{a}:rpm", "{a}:usd:2026-03-10"], [7, "m4"])]  # fmt: skip
    for keys, args in calls * 2:
        assert evalsha(heads, ECHO, keys, args) == encode(["EVALSHA", ECHO.sha, len(keys), *keys, *args])
    assert len(heads) == 4
    for at in range(5000):
        evalsha(heads, ECHO, [f"k{at}"], ["x"])
    assert len(heads) <= 4096
    assert evalsha(heads, ECHO, ["k0"], ["y"]) == encode(["EVALSHA", ECHO.sha, 1, "k0", "y"])


# Real servers.


@contextlib.asynccontextmanager
async def channel_to(url: str, timeout_s: float = TIMEOUT_S) -> AsyncIterator[ScriptChannel]:
    channel = ScriptChannel(url, timeout_s=timeout_s)
    try:
        yield channel
    finally:
        await channel.close()


async def echo(url: str, text: str) -> Any:
    """One call on a channel of its own."""
    async with channel_to(url) as channel:
        return await channel.run(ECHO, ["n"], [text])


def test_each_caller_gets_its_own_reply_in_a_burst(server: PrivateRedis, run: Run) -> None:
    async def burst() -> list[Any]:
        async with channel_to(server.url) as channel:
            await channel.run(ECHO, ["n"], ["first"])  # connects
            return await asyncio.gather(*(channel.run(ECHO, ["n"], [f"call-{i}"]) for i in range(300)))

    with server.client() as client:
        before = client.info("stats")["total_connections_received"]
    assert run(burst()) == [f"call-{i}".encode() for i in range(300)]
    with server.client() as client:
        assert client.get("n") == b"301"
        # One connection did it all (the other new one is this client's).
        assert client.info("stats")["total_connections_received"] - before == 2


def test_a_caller_that_gives_up_does_not_shift_the_replies_of_the_others(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> tuple[Any, Any]:
        async with channel_to(server.url) as channel:
            await channel.run(ECHO, ["n"], ["warm"])
            abandoned = asyncio.ensure_future(channel.run(ECHO, ["n"], ["abandoned"]))
            await asyncio.sleep(0)  # sent, not yet answered
            abandoned.cancel()
            after = await channel.run(ECHO, ["n"], ["after"])
            return abandoned.cancelled(), after

    assert run(scenario()) == (True, b"after")


def test_noscript_loads_the_script_once_and_every_call_runs(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> list[Any]:
        async with channel_to(server.url) as channel:
            await channel.run(ECHO, ["n"], ["loads it"])
            with server.client() as client:
                client.script_flush()
            return await asyncio.gather(*(channel.run(ECHO, ["n"], [str(i)]) for i in range(10)))

    assert run(scenario()) == [str(i).encode() for i in range(10)]
    with server.client() as client:
        stats = client.info("commandstats")
    assert stats["cmdstat_script|load"]["calls"] == 2  # the first NOSCRIPT, then one for all ten
    assert stats["cmdstat_evalsha"]["failed_calls"] == 1 + 10
    assert "cmdstat_eval" not in stats  # the script text only ever travels in SCRIPT LOAD


def test_a_script_error_reaches_the_caller_and_the_connection_stays_usable(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> Any:
        async with channel_to(server.url) as channel:
            with pytest.raises(ReplyError, match="boom"):
                await channel.run(Script("return redis.error_reply('boom')"), [], [])
            return await channel.run(ECHO, ["n"], ["still fine"])

    assert run(scenario()) == b"still fine"


def test_a_hung_server_times_out_and_the_next_call_after_it_answers_again(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> Any:
        async with channel_to(server.url, timeout_s=0.3) as channel:
            await channel.run(ECHO, ["n"], ["before"])
            server.pause()
            try:
                calls = [asyncio.ensure_future(channel.run(ECHO, ["n"], [str(i)])) for i in range(3)]
                done = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
            finally:
                server.resume()
            assert all(isinstance(d, TimeoutError | ConnectionError) for d in done), done
            return await channel.run(ECHO, ["n"], ["after"])

    assert run(scenario()) == b"after"


def test_a_restarted_server_is_reconnected_to(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> Any:
        async with channel_to(server.url) as channel:
            await channel.run(ECHO, ["n"], ["before"])
            server.stop()
            with pytest.raises(ConnectionError):
                await channel.run(ECHO, ["n"], ["while down"])
            server.start()  # empty, scripts and all
            return await channel.run(ECHO, ["n"], ["after"])

    assert run(scenario()) == b"after"


def test_password_and_database_from_the_url(tmp_path: Path, run: Run) -> None:
    server = PrivateRedis(tmp_path, password="p@ss:word/1")
    try:
        good = f"redis://:p%40ss%3Aword%2F1@127.0.0.1:{server.port}/3"
        assert run(echo(good, "in db 3")) == b"in db 3"
        with server.client() as client:
            client.select(3)
            assert client.get("n") == b"1"
        with pytest.raises(ConnectionError) as refused:
            run(echo(f"redis://:wrong-secret@127.0.0.1:{server.port}/0", "refused"))
        assert "wrong-secret" not in str(refused.value)
    finally:
        server.stop()


def test_unix_socket(tmp_path: Path, run: Run) -> None:
    socket = tmp_path / "r.sock"
    server = PrivateRedis(tmp_path, "--unixsocket", str(socket))
    try:
        assert run(echo(f"unix://{socket}?db=2", "over the socket")) == b"over the socket"
        with server.client() as client:
            client.select(2)
            assert client.get("n") == b"1"
    finally:
        server.stop()


def test_tls_with_a_verified_certificate(tmp_path: Path, run: Run) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls_port = free_port()
    server = PrivateRedis(tmp_path, "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file",
                          str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")  # fmt: skip
    try:
        assert run(echo(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}", "encrypted")) == b"encrypted"
        # A certificate nobody vouches for is refused, unless verification is turned off.
        with pytest.raises(ssl.SSLCertVerificationError):
            run(echo(f"rediss://127.0.0.1:{tls_port}/0", "refused"))
        assert run(echo(f"rediss://127.0.0.1:{tls_port}/0?ssl_cert_reqs=none", "unverified")) == b"unverified"
    finally:
        server.stop()


def test_a_server_that_turns_the_connection_away_fails_the_call_at_once(tmp_path: Path, run: Run) -> None:
    server = PrivateRedis(tmp_path, "--maxclients", "1")
    try:
        with server.client() as holder:
            holder.ping()  # the one client slot, taken: Redis answers the next connection with an error
            # The error arrives before or after the call is sent: a dropped connection or the call's
            # error, either way at once. A timeout here would mean the error was lost.
            with pytest.raises((ConnectionError, ReplyError), match="max number of clients"):
                run(echo(server.url, "turned away"))  # db 0: no handshake, the greeting is all it gets
    finally:
        server.stop()


def test_close_during_a_connect_fails_its_callers_and_later_calls(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> tuple[BaseException | None, BaseException | None]:
        channel = ScriptChannel(server.url.replace("/0", "/1"), timeout_s=10)  # SELECT: a handshake
        server.pause()  # the connection opens, the handshake hangs
        try:
            call = asyncio.ensure_future(channel.run(ECHO, ["n"], ["never"]))
            await asyncio.sleep(0.2)
            await channel.close()
            first = await asyncio.gather(call, return_exceptions=True)
            later = await asyncio.gather(channel.run(ECHO, ["n"], ["after close"]), return_exceptions=True)
        finally:
            server.resume()
        return first[0], later[0]

    first, later = run(scenario())
    # Not CancelledError: the caller was not cancelled, the channel went away under it.
    assert isinstance(first, ConnectionError) and isinstance(later, ConnectionError), (first, later)


def test_one_deadline_covers_connecting_and_calling(server: PrivateRedis, run: Run) -> None:
    async def scenario() -> BaseException | None:
        async with channel_to(server.url.replace("/0", "/1"), timeout_s=0.3) as channel:
            server.pause()
            try:
                done = await asyncio.wait_for(asyncio.gather(channel.run(ECHO, ["n"], ["x"]),
                                                             return_exceptions=True), 10)  # fmt: skip
            finally:
                server.resume()
            return done[0]

    assert isinstance(run(scenario()), TimeoutError)


def test_url_options_the_connection_would_ignore_are_refused_without_showing_the_url() -> None:
    with pytest.raises(UnsupportedOption, match="ssl_min_version"):
        ScriptChannel("rediss://:hunter2@127.0.0.1:6380/0?ssl_min_version=2", timeout_s=1)
    assert ScriptChannel("rediss://127.0.0.1:6380/0?ssl_check_hostname=false&ssl_cert_reqs=none", timeout_s=1)

    config = Config(models=[])
    for url, says in [("rediss://:hunter2@127.0.0.1:6380/0?ssl_min_version=2", "ssl_min_version"),
                      ("redis://:hunter2/with-slash@127.0.0.1:6380/0", "not a valid Redis URL")]:  # fmt: skip
        with pytest.raises(ConfigError, match=says) as refused:
            build_limiter(config, Settings(redis_url=SecretStr(url)), PriceBook({}))
        assert "hunter2" not in str(refused.value)


def test_the_connection_keeps_itself_alive_through_idle_minutes(server: PrivateRedis, run: Run) -> None:
    async def options() -> tuple[int, int]:
        async with channel_to(server.url) as channel:
            await channel.run(ECHO, ["n"], ["connects"])
            conn = channel._conn
            assert conn is not None and conn.transport is not None
            sock = conn.transport.get_extra_info("socket")
            return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))  # fmt: skip

    keepalive, idle = run(options())
    assert keepalive != 0 and idle == 60
