"""`gateway demo` as a new user runs it: the banner's examples work as printed, a taken port is one
line before any banner, and a stranger on the fake upstream's old port 9911 is never asked."""

from __future__ import annotations

import http.server
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.demo.command import DEMO_KEY, banner
from tests.procs import free_port, stop

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.upper().startswith("GATEWAY_")}
# This interpreter's `python` first, as in an activated virtualenv.
ENV = {**CLEAN_ENV, "PATH": f"{Path(sys.executable).parent}:{CLEAN_ENV.get('PATH', '/usr/bin:/bin')}"}
STRANGER_PORT = 9911


class Stranger(http.server.BaseHTTPRequestHandler):
    """Whatever else listens on 9911: answers 501 to everything, and counts what it was asked."""

    asked: list[str] = []

    def do_GET(self) -> None:
        self._refuse()

    def do_POST(self) -> None:
        self._refuse()

    def _refuse(self) -> None:
        Stranger.asked.append(self.path)
        self.send_response(501)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stranger() -> Iterator[list[str]]:
    """A stranger on 9911, unless something else already has the port (a stranger too, then)."""
    Stranger.asked = []
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", STRANGER_PORT), Stranger)
    except OSError:
        yield Stranger.asked
        return
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Stranger.asked
    server.shutdown()
    server.server_close()


def read_until(proc: subprocess.Popen[bytes], done: str, seconds: float = 60) -> str:
    """The process's stdout until it contains `done`. Read from the unbuffered pipe: a buffered
    reader may hold what select() would wait for."""
    assert proc.stdout is not None
    text, deadline = b"", time.monotonic() + seconds
    while done.encode() not in text:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"no {done!r} in the output: {text!r}"
        if select.select([proc.stdout], [], [], left)[0]:
            text += os.read(proc.stdout.fileno(), 65536)
    return text.decode()


def example(text: str, start: str) -> str:
    """One example of the banner: its first line starts with `start`, a trailing backslash continues it."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip().startswith(start))
    command = []
    for line in lines[first:]:
        command.append(line.strip().removesuffix("\\"))
        if not line.endswith("\\"):
            break
    return " ".join(command)


def test_the_banner_examples_work_as_printed(tmp_path: Path, stranger: list[str]) -> None:
    port = free_port()
    with (tmp_path / "stderr.log").open("wb") as err:
        demo = subprocess.Popen([sys.executable, "-m", "gateway", "demo", "--port", str(port)], cwd=tmp_path,
                                env=ENV, stdout=subprocess.PIPE, stderr=err, bufsize=0)
    try:
        text = read_until(demo, "print(c.chat.completions.create")
        assert f"Gateway: http://127.0.0.1:{port}/v1" in text and f"Key:     {DEMO_KEY}" in text
        assert "fake-upstream listening" not in text  # the fake's own line is the demo's business
        assert "pip install" not in text  # openai is installed here: no hint needed
        curl = subprocess.run(["bash", "-c", example(text, "curl ")], capture_output=True, text=True, timeout=60,
                              env=ENV)
        assert curl.returncode == 0 and '"choices"' in curl.stdout, curl.stdout + curl.stderr
        python = subprocess.run(["bash", "-c", example(text, "python -c")], capture_output=True, text=True,
                                timeout=60, env=ENV)
        assert python.returncode == 0 and "ChatCompletion(" in python.stdout, python.stderr
    finally:
        assert stop(demo, signal.SIGINT) == 0  # Ctrl-C
    said = (tmp_path / "stderr.log").read_text()
    assert "Traceback" not in said
    assert f"key store: sqlite {tmp_path / '.gateway' / 'gateway.db'}" in said
    assert "limiter: in-process, per worker" in said
    assert stranger == []


def test_a_taken_port_is_one_line_and_no_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "gateway", "demo", "--port", str(port)], cwd=tmp_path,
                                env=ENV, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"gateway: cannot listen on 127.0.0.1:{port}: Address already in use "
        "(another process has it: pick a free one with --port)"]


def test_without_openai_the_banner_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # as if not installed: `import openai` fails
    text = banner("http://127.0.0.1:4000/v1", DEMO_KEY)
    hint = text.index("-m pip install openai")
    assert hint < text.index('-c "import openai')
    assert re.search(r"pip install -e '\.\[demo\]'", text)
