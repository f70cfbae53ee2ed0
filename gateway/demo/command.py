"""`gateway demo`: a fake upstream on a free port, the gateway in front of it, and a banner of examples.

The fake upstream is started on port 0 and tells its own address in its first line, so the demo
only ever talks to the process it started, never to whatever else listens on a well-known port.
The banner shows only examples that work here: the Python one needs the `openai` package, and
when it is missing the banner says how to install it.
"""

from __future__ import annotations

import importlib.util
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from gateway.config.file import ConfigError, config_from_dict
from gateway.providers.registry import provider_classes
from gateway.serve import serve_config

DEMO_CONFIG = Path(__file__).parent / "config.yaml"
DEMO_KEY = "sk-demo-master-key"
ANNOUNCE = "fake-upstream listening on "
START_TIMEOUT_S = 15.0

CURL = """  curl {base}/chat/completions -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{"model": "demo-model", "messages": [{{"role": "user", "content": "hello there"}}]}}'
"""
PYTHON = """  {python} -c "import openai; c = openai.OpenAI(base_url='{base}', api_key='{key}'); \\
    print(c.chat.completions.create(model='demo-model', messages=[{{'role': 'user', 'content': 'hi'}}]))"
"""
NO_OPENAI = """  # The Python example needs the openai package (pip install -e '.[demo]' in a checkout):
  {python} -m pip install openai
"""


class DemoError(Exception):
    """One line saying why the demo cannot start."""


def demo_command(port: int) -> int:
    key = os.environ.setdefault("GATEWAY_MASTER_KEY", DEMO_KEY)
    try:
        fake, upstream = start_fake_upstream()
    except DemoError as exc:
        print(f"gateway demo: {exc}", file=sys.stderr)
        return 1
    try:
        config, settings = config_from_dict(demo_config(upstream), provider_classes())
        return serve_config(config, settings, "127.0.0.1", port, 1, banner=banner(f"http://127.0.0.1:{port}/v1", key),
                            demo=True)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def start_fake_upstream() -> tuple[subprocess.Popen[str], str]:
    """The fake upstream on a port the system picks; returns the process and its base URL."""
    fake = subprocess.Popen(
        [sys.executable, "-m", "gateway", "fake-upstream", "--port", "0", "--inter-token-ms", "30"],
        stdout=subprocess.PIPE, text=True,
    )
    assert fake.stdout is not None
    ready, _, _ = select.select([fake.stdout], [], [], START_TIMEOUT_S)
    line = fake.stdout.readline() if ready else ""
    if not line.startswith(ANNOUNCE):
        fake.kill()
        fake.wait()
        raise DemoError(f"the fake upstream did not start within {START_TIMEOUT_S:.0f} s")
    return fake, line.removeprefix(ANNOUNCE).strip()


def demo_config(upstream: str) -> dict[str, Any]:
    """The demo's config file, every deployment pointed at the fake upstream that was started."""
    raw: dict[str, Any] = yaml.safe_load(DEMO_CONFIG.read_text())
    for group in raw["models"]:
        for deployment in group["deployments"]:
            deployment["base_url"] = upstream
    return raw


def banner(base: str, key: str) -> str:
    python = python_command()
    examples = []
    if shutil.which("curl"):
        examples.append(CURL.format(base=base, key=key))
    if importlib.util.find_spec("openai") is None:
        examples.append(NO_OPENAI.format(python=python) + PYTHON.format(python=python, base=base, key=key))
    else:
        examples.append(PYTHON.format(python=python, base=base, key=key))
    return f"\nGateway: {base}\nKey:     {key}\n\nTry it:\n" + "\n".join(examples)


def python_command() -> str:
    """`python` when that is this interpreter (an activated virtualenv), else this interpreter's path."""
    found = shutil.which("python")
    if found is not None and Path(found).parent == Path(sys.executable).parent:
        return "python"
    return sys.executable
