"""One gateway on real PostgreSQL and Redis for the admin UI's tests, its users made with the CLI,
and one headless Chromium (Debian's, driven by Playwright) for the whole session."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.dbs import REDIS_URL, create_pg_database, drop_pg_database, redis_prefix
from tests.procs import FakeUpstream, Gateway, deployment

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin_ui"
# USD per million tokens, so a request's cost can be worked out from its usage.
PRICE = {"input_per_mtok": "1.5", "output_per_mtok": "2"}
MODELS = ("gpt-test", "other")


@dataclass(frozen=True)
class User:
    name: str
    password: str
    role: str


@dataclass
class UiGateway:
    gw: Gateway
    admin: User
    viewer: User

    @property
    def base(self) -> str:
        return self.gw.base


def admin_user(gw: Gateway, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """`gateway admin-user ...` against the gateway's own config file, as an operator would run it."""
    extra = ["--password-stdin"] if password is not None else []
    return subprocess.run(
        [sys.executable, "-m", "gateway", "admin-user", *args, "--config", str(gw.config), *extra],
        input=(password + "\n") if password is not None else None, capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="session")
def ui_gateway(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiGateway]:
    tmp = tmp_path_factory.mktemp("admin-ui")
    dsn = create_pg_database()
    gw = None
    try:
        settings = {"database_url": dsn, "redis_url": REDIS_URL, "redis_prefix": redis_prefix(),
                    "ledger_flush_s": 0.05}
        models = [{"name": name, "deployments": [deployment(upstream, price=PRICE)]} for name in MODELS]
        gw = Gateway(tmp, models, settings=settings, log=tmp / "gateway.log")
        gw.log_file = tmp / "gateway.log"  # type: ignore[attr-defined]
        admin = User("ada", "ada-" + secrets.token_urlsafe(12), "admin")
        viewer = User("vic", "vic-" + secrets.token_urlsafe(12), "viewer")
        for user in (admin, viewer):
            made = admin_user(gw, "create", "--username", user.name, "--role", user.role, password=user.password)
            assert made.returncode == 0, made.stderr
        yield UiGateway(gw, admin, viewer)
    finally:
        if gw is not None:
            gw.close()
        drop_pg_database(dsn)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the browser tests, which all live in one module: while Playwright's sync API
    runs, its event loop is the thread's running loop, so async tests must not run beside it."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, ui_gateway: UiGateway) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test."""
    context = browser.new_context(base_url=ui_gateway.base, viewport={"width": 1360, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui_gateway.base)
    tab = context.new_page()
    yield tab
    context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, user: User | None, master_key: str = "") -> None:
    page.goto("/admin")
    assert "/admin/login" in page.url
    page.fill("#f-username", user.name if user else "")
    page.fill("#f-password", user.password if user else master_key)
    page.click("#sign-in")
    page.wait_for_url(re.compile(r".*/admin$"))


class Session:
    """The admin UI over plain HTTP, as a browser would use it: cookies, forms, CSRF tokens."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, follow_redirects=False, timeout=30)

    def sign_in(self, username: str, password: str) -> httpx.Response:
        form = self.http.get("/admin/login")
        return self.http.post("/admin/login", data={"csrf_token": csrf_of(form.text), "username": username,
                                                    "password": password, "next": "/admin"})

    def csrf(self, path: str = "/admin/teams") -> str:
        return csrf_of(self.http.get(path).text)

    def post(self, path: str, data: dict[str, str], *, token: str | None = None, **kwargs: object
             ) -> httpx.Response:
        return self.http.post(path, data={"csrf_token": token if token is not None else self.csrf(), **data},
                              **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        self.http.close()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


@pytest.fixture
def admin_http(ui_gateway: UiGateway) -> Iterator[Session]:
    session = Session(ui_gateway.base)
    assert session.sign_in(ui_gateway.admin.name, ui_gateway.admin.password).status_code == 303
    yield session
    session.close()


@pytest.fixture
def viewer_http(ui_gateway: UiGateway) -> Iterator[Session]:
    session = Session(ui_gateway.base)
    assert session.sign_in(ui_gateway.viewer.name, ui_gateway.viewer.password).status_code == 303
    yield session
    session.close()
