"""Serving a loaded configuration: say what is in use, make sure the port is free, run uvicorn.

`gateway serve` and `gateway demo` both end here. Everything that can fail before uvicorn starts
fails here with one line on stderr and a status, before any banner is printed.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config.environment import CONFIG_FILE_ENV
from gateway.config.file import Config, ConfigError
from gateway.config.settings import Settings
from gateway.db.connect import DatabaseUrlError
from gateway.in_use import in_use
from gateway.observability import multiproc

if TYPE_CHECKING:
    import uvicorn

    from gateway.edge.front import Front

# uvicorn's own status for a server that did not start.
STARTUP_FAILURE = 3


def serve_config(
    config: Config,
    settings: Settings,
    host: str | None,
    port: int | None,
    workers: int | None,
    *,
    config_path: str | None = None,
    banner: str = "",
    demo: bool = False,
) -> int:
    """Check the port and build the app, then say what is in use, print `banner`, and serve.

    `config_path` is needed for several workers, which read the file anew; `demo` lets
    `gateway demo` keep its well-known short master key (loopback only).
    """
    host = host or settings.host
    port = port if port is not None else settings.port
    workers = workers or settings.workers
    try:
        lines = in_use(config, settings)
    except DatabaseUrlError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    # Before any banner: a taken port is one line, not a banner followed by uvicorn's error.
    taken = port_problem(host, port)
    if taken is not None:
        print(f"gateway: {taken}", file=sys.stderr)
        return 1
    # Before any metric exists and before the workers start, which inherit the directory
    # (gateway/observability/multiproc.py).
    cleanup_metrics = multiproc.prepare(workers, settings.metrics_enabled)
    try:
        # Here, not at the top: multiproc.prepare must run before the app's modules make any metric.
        from gateway.app import create_app

        try:
            app = create_app(config, settings, demo=demo)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        for line in lines:
            print(line, file=sys.stderr)
        return _run(app, config_path, settings, host, port, workers, banner)
    finally:
        cleanup_metrics()


def port_problem(host: str, port: int) -> str | None:
    """Why uvicorn could not listen on host:port, found by binding as it will (None: it can)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            hint = " (another process has it: pick a free one with --port)" if exc.errno == errno.EADDRINUSE else ""
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}"
    return None


def _run(
    app: Front, config_path: str | None, settings: Settings, host: str, port: int, workers: int, banner: str
) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from gateway.edge.protocol import ClientLimits, GatewayProtocol, ServerConfig

    options = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        # httptools, with the header timeout and the send buffer of gateway/edge/protocol.py.
        "http": GatewayProtocol,
        "access_log": False,
        "server_header": False,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": settings.drain_seconds,
    }
    limits = ClientLimits(settings.client_header_timeout_s, settings.client_send_buffer_bytes)
    if workers == 1:
        server = uvicorn.Server(ServerConfig(app, client_limits=limits, **options))
        if banner:
            threading.Thread(target=_announce, args=(server, banner), daemon=True).start()
        try:
            server.run()
        except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; uvicorn.run swallows it too
            pass
        # As uvicorn.run does: a start-up that failed (the key store unreachable) is status 3.
        return 0 if server.started else STARTUP_FAILURE
    assert not banner, "a banner is for the demo, which runs one worker"
    # The app built here only checked the config: each worker builds its own from the file.
    assert config_path is not None, "several workers read the config file anew"
    os.environ[CONFIG_FILE_ENV] = str(Path(config_path).resolve())
    # The workers read their settings anew; they must know how many they are (per-worker caps).
    os.environ["GATEWAY_WORKERS"] = str(workers)
    # What uvicorn.run does for several workers, with our config (it travels to each worker).
    config = ServerConfig("gateway.app:app_from_env", client_limits=limits, factory=True, workers=workers, **options)
    try:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    except KeyboardInterrupt:
        pass
    return 0


def _announce(server: uvicorn.Server, banner: str) -> None:
    """Print the banner once the server listens, so that what it says to try answers at once."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    print(banner, flush=True)
