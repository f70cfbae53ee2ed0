"""What goes on the wire (request line, headers, bodies) and how responses of each framing are read."""

from __future__ import annotations

import asyncio
import base64
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.core.errors import UpstreamUnreachable
from gateway.upstream.client import UpstreamClient
from gateway.upstream.h1 import parse_target
from tests.upstream.conftest import Request, Respond, Server, call, response

Serve = Callable[[Respond], Awaitable[Server]]


def raw(*parts: bytes, close: bool = False, pause: float = 0.01) -> Respond:
    """Answer with `parts`, written one at a time so that the reads split where they do."""
    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause)
        return not close
    return respond


async def test_request_line_and_headers(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(response()))
    headers = {"Content-Type": "application/json", "X-Api-Key": "k", "anthropic-version": "2023-06-01"}
    await client.send(call(server.url("/v1/messages?beta=true"), b'{"a":1}', headers=headers))
    request = server.requests[0]
    assert request.head.startswith(b"POST /v1/messages?beta=true HTTP/1.1\r\n")
    # The caller's headers as given, names in their case; Host with the port; no User-Agent.
    assert b"\r\nX-Api-Key: k\r\n" in request.head and b"\r\nanthropic-version: 2023-06-01\r\n" in request.head
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["content-length"] == "7" and request.body == b'{"a":1}'
    assert request.headers["accept-encoding"] == "gzip, deflate"
    assert "user-agent" not in request.headers and "transfer-encoding" not in request.headers


async def test_content_length_of_empty_bodies(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(response()))
    await client.send(call(server.url(), None))
    await client.send(call(server.url("/metrics"), None, method="GET"))
    post, get = server.requests
    assert post.headers["content-length"] == "0"
    assert "content-length" not in get.headers and get.head.startswith(b"GET /metrics HTTP/1.1\r\n")


async def test_exact_url_is_sent_as_written(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(response()))
    await client.send(call(server.url("/model/a%3Ab%2F1/converse"), exact_url=True))
    await client.send(call(server.url("/model/a%3Ab/x y/é?q=a b")))
    exact, encoded = server.requests
    assert exact.target == "/model/a%3Ab%2F1/converse"
    # Only what a request line cannot hold is encoded; existing escapes stay as they are.
    assert encoded.target == "/model/a%3Ab/x%20y/%C3%A9?q=a%20b"


def test_host_header_and_pool_key() -> None:
    assert parse_target("https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse", True).host_header == \
        "bedrock-runtime.us-east-1.amazonaws.com"
    assert parse_target("https://Example.com:443/x", False).host_header == "example.com"
    assert parse_target("http://example.com:80", False).path == "/"
    target = parse_target("https://example.com:8443/v1#frag", False)
    assert (target.host_header, target.key, target.path, target.tls) == \
        ("example.com:8443", ("https", "example.com", 8443), "/v1", True)
    assert parse_target("http://[::1]:9000/v1", False).host_header == "[::1]:9000"


async def test_header_line_breaks_are_refused(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(response()))
    # A header from config that would smuggle in another: the gateway's error, without the value.
    with pytest.raises(UpstreamUnreachable, match=r"^deployment d1 is unreachable \(InvalidHeader\)$"):
        await client.send(call(server.url(), headers={"X-Evil": "secret\r\nX-Injected: 1"}))
    assert server.requests == [] and server.connections == 0


async def test_credentials_in_the_url_are_sent_as_basic_auth(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(response()))
    url = f"http://us%40er:p%3Ass%20w@127.0.0.1:{server.port}/v1"
    await client.send(call(url))
    await client.send(call(url, headers={"authorization": "Bearer k"}))  # the caller's own wins
    await client.send(call(f"http://user@127.0.0.1:{server.port}/v1"))
    basic, bearer, no_password = server.requests
    assert basic.headers["authorization"] == "Basic " + base64.b64encode(b"us@er:p:ss w").decode()
    assert basic.headers["host"] == f"127.0.0.1:{server.port}" and basic.target == "/v1"
    assert bearer.headers["authorization"] == "Bearer k" and bearer.head.count(b"uthorization") == 1
    assert no_password.headers["authorization"] == "Basic " + base64.b64encode(b"user:").decode()
    assert "us%40er" not in repr(parse_target(url, False))  # kept out of logs


async def _form() -> AsyncIterator[bytes]:
    for part in (b"--b\r\n", b"x" * 100_000, b"\r\n--b--\r\n"):
        yield part


async def test_upload_with_its_content_length(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(response()))
    length = 5 + 100_000 + 9
    reply = await client.send(call(server.url(), _form, headers={"Content-Type": "multipart/form-data; boundary=b",
                                                                 "Content-Length": str(length)}))
    assert reply.status == 200
    request = server.requests[0]
    assert request.headers["content-length"] == str(length) and "transfer-encoding" not in request.headers
    assert request.body == b"--b\r\n" + b"x" * 100_000 + b"\r\n--b--\r\n"


async def test_upload_without_a_length_goes_chunked(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(response()))
    await client.send(call(server.url(), _form, headers={"Content-Type": "multipart/form-data; boundary=b"}))
    request = server.requests[0]
    assert request.headers["transfer-encoding"] == "chunked" and "content-length" not in request.headers
    assert request.body == b"--b\r\n" + b"x" * 100_000 + b"\r\n--b--\r\n"


async def test_an_upload_waits_while_the_upstream_is_not_reading(client: UpstreamClient) -> None:
    produced: list[int] = []
    chunks, size = 512, 65536  # 32 MiB: more than the socket buffers hold

    async def big() -> AsyncIterator[bytes]:
        for i in range(chunks):
            produced.append(i)
            yield b"y" * size

    reading = asyncio.Event()

    async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reading.wait()
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(chunks * size)
        writer.write(response(b"all"))
        await writer.drain()

    server = await asyncio.start_server(stalled, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        task = asyncio.create_task(client.send(call(f"http://127.0.0.1:{port}/v1/audio", big,
                                                    headers={"Content-Length": str(chunks * size)})))
        await asyncio.sleep(0.3)
        assert len(produced) < chunks // 2  # paused on the transport's buffer, not read into memory
        reading.set()
        assert (await task).body == b"all" and len(produced) == chunks
    finally:
        server.close()


async def test_chunked_response_across_reads(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Case-Kept: yes\r\n\r\n",
                             b"5\r\nhel", b"lo\r\n6\r\n world\r\n", b"0\r\n\r\n"))
    reply = await client.send(call(server.url()))
    assert reply.body == b"hello world"
    assert reply.headers["X-Case-Kept"] == "yes" and "x-case-kept" not in reply.headers
    stream = await client.open(call(server.url()))
    assert b"".join([c async for c in stream.chunks()]) == b"hello world"
    assert server.connections == 1  # chunked framing ended both exchanges cleanly


async def test_content_length_response_across_reads(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(b"HTTP/1.1 201 Created\r\nContent-Le", b"ngth: 10\r\n\r\n01234", b"56789"))
    reply = await client.send(call(server.url()))
    assert (reply.status, reply.body) == (201, b"0123456789")


async def test_a_body_read_until_the_close(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ", b"it", close=True))
    reply = await client.send(call(server.url()))
    assert reply.body == b"all of it"
    await client.send(call(server.url()))
    assert server.connections == 2


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),  # the old name RFC 9110 keeps for gzip
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send it
])
async def test_compressed_bodies_are_decoded(serve: Serve, client: UpstreamClient, encoding: str,
                                             encode: Callable[[bytes], bytes]) -> None:
    body = b'{"text":"' + b"spam " * 2000 + b'"}'
    packed = encode(body)
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    half = len(packed) // 2
    server = await serve(raw(head, b"%x\r\n%b\r\n" % (half, packed[:half]),
                             b"%x\r\n%b\r\n0\r\n\r\n" % (len(packed) - half, packed[half:])))
    assert (await client.send(call(server.url()))).body == body
    stream = await client.open(call(server.url()))
    assert b"".join([c async for c in stream.chunks()]) == body


async def test_other_encodings_pass_through(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(response(b"\x8b\x00brotli?", headers=("Content-Encoding: br",))))
    assert (await client.send(call(server.url()))).body == b"\x8b\x00brotli?"


async def test_an_interim_100_continue_is_skipped(serve: Serve, client: UpstreamClient) -> None:
    server = await serve(raw(b"HTTP/1.1 100 Continue\r\n\r\n", response(b"final")))
    reply = await client.send(call(server.url()))
    assert (reply.status, reply.body) == (200, b"final")


async def test_an_answer_before_the_upload_ends_stands(client: UpstreamClient) -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response(b"too large", status=413, headers=("Connection: close",)))
        await writer.drain()
        writer.close()

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):
            await asyncio.sleep(0.001)
            yield b"z" * 65536

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reply = await client.send(call(f"http://127.0.0.1:{port}/v1/audio", endless,
                                       headers={"Content-Length": str(10_000 * 65536)}))
        assert (reply.status, reply.body) == (413, b"too large")
    finally:
        server.close()
