"""https: the certificate is verified against the host name in the URL."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.errors import UpstreamUnreachable
from gateway.upstream.client import UpstreamClient
from tests.upstream.conftest import NewClient, Server, answer, call


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for `localhost`: (certificate, key)."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
async def tls_server(certificate: tuple[Path, Path]) -> AsyncIterator[Server]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    s = Server(answer)
    s.server = await asyncio.start_server(s.serve, "127.0.0.1", 0, ssl=context)
    yield s
    s.server.close()


async def test_an_untrusted_certificate_is_refused(tls_server: Server, client: UpstreamClient) -> None:
    with pytest.raises(UpstreamUnreachable, match=r"is unreachable \(SSLCertVerificationError\)"):
        await client.send(call(f"https://localhost:{tls_server.port}/v1/chat/completions"))


async def test_a_trusted_certificate_for_the_host(tls_server: Server, certificate: tuple[Path, Path],
                                                   monkeypatch: pytest.MonkeyPatch, new_client: NewClient) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # read when the client makes its TLS context
    client = await new_client(2)
    for _ in range(2):
        reply = await client.send(call(f"https://localhost:{tls_server.port}/v1/chat/completions", b"{}"))
        assert (reply.status, reply.body) == (200, b'{"got":2}')
    assert tls_server.connections == 1
    assert tls_server.requests[0].headers["host"] == f"localhost:{tls_server.port}"
    # The name checked is the URL's host: the same server by its address does not match the certificate.
    with pytest.raises(UpstreamUnreachable, match="SSLCertVerificationError"):
        await client.send(call(f"https://127.0.0.1:{tls_server.port}/v1/chat/completions"))
