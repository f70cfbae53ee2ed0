"""Failed authentication throttled end to end: real gateways, real sockets, clients on several
loopback addresses (127.0.0.0/8 is all loopback), the API by `Authorization: Bearer` and by
`x-api-key`, and the admin UI's sign-in. Before the throttle, ~330 master-key guesses a second
went through the API and ~310 through the sign-in from one address, never a 429.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dbs import REDIS_URL, redis_prefix
from tests.procs import MASTER_KEY, FakeUpstream, Gateway, deployment

BURST, REFILL_S = 5, 2.0
THROTTLE = {"auth_failure_burst": BURST, "auth_failure_refill_s": REFILL_S}


def client(gw: Gateway, address: str) -> httpx.Client:
    """A client whose requests come from `address`."""
    return httpx.Client(base_url=gw.base, transport=httpx.HTTPTransport(local_address=address), timeout=10)


def models(upstream: FakeUpstream) -> list[dict[str, object]]:
    return [{"name": "gpt-test", "deployments": [deployment(upstream)]}]


@pytest.fixture(scope="module")
def gw(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("throttle")
    gateway = Gateway(tmp, models(upstream), settings=THROTTLE, log=tmp / "gateway.log")
    yield gateway
    gateway.close()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def wait_out(response: httpx.Response) -> None:
    time.sleep(float(response.headers["retry-after"]))


@pytest.mark.parametrize(("header", "address"), [("authorization", "127.0.0.2"), ("x-api-key", "127.0.0.3")])
def test_an_address_that_guesses_wrong_is_held_back(gw: Gateway, header: str, address: str) -> None:
    def send(http: httpx.Client, key: str) -> httpx.Response:
        value = f"Bearer {key}" if header == "authorization" else key
        return http.get("/v1/models", headers={header: value})

    with client(gw, address) as guesser, client(gw, "127.0.0.4") as bystander:
        assert [send(guesser, f"sk-guess-{n}").status_code for n in range(BURST)] == [401] * BURST
        held = send(guesser, "sk-guess-again")
        assert held.status_code == 429 and held.json()["error"]["code"] == "rate_limit_exceeded"
        assert 1 <= int(held.headers["retry-after"]) <= REFILL_S
        assert send(guesser, MASTER_KEY).status_code == 429  # the right key too, while held
        assert send(bystander, MASTER_KEY).status_code == 200  # another address is not held
        wait_out(held)
        assert send(guesser, MASTER_KEY).status_code == 200


def test_a_key_prefix_guessed_from_many_addresses_is_held_back(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.base + "/admin/api", headers=bearer(MASTER_KEY)) as admin:
        made = admin.post("/keys", json={"name": "target"}).json()
    key, prefix = made["key"], made["prefix"]
    answers = []
    for n in range(BURST + 1):  # one guess each: no address reaches its own allowance
        with client(gw, f"127.0.1.{n + 1}") as guesser:
            guess = prefix + secrets.token_urlsafe(32)[: len(key) - len(prefix)]
            answers.append(guesser.post("/v1/chat/completions", headers=bearer(guess), json={}))
    assert [a.status_code for a in answers] == [401] * BURST + [429]
    with client(gw, "127.0.2.1") as owner:
        refused = owner.get("/v1/models", headers=bearer(key))
        assert refused.status_code == 429
        assert owner.get("/v1/models", headers=bearer(MASTER_KEY)).status_code == 200  # other keys are fine
        wait_out(refused)
        assert owner.get("/v1/models", headers=bearer(key)).status_code == 200


def test_successes_do_not_count(gw: Gateway) -> None:
    with client(gw, "127.0.3.1") as http:
        for _ in range(5 * BURST):
            assert http.get("/v1/models", headers=bearer(MASTER_KEY)).status_code == 200
        assert [http.get("/v1/models", headers=bearer("sk-wrong")).status_code for _ in range(BURST)] == [401] * BURST


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_the_admin_sign_in_is_held_back_too(gw: Gateway) -> None:
    with client(gw, "127.0.4.1") as browser:
        token = csrf_of(browser.get("/admin/login").text)

        def sign_in(password: str, username: str = "") -> httpx.Response:
            return browser.post("/admin/login", data={"csrf_token": token, "username": username,
                                                      "password": password})

        assert [sign_in(f"guess-{n}").status_code for n in range(BURST)] == [401] * BURST
        held = sign_in("guess-again")
        assert held.status_code == 429 and "Too many failed attempts" in held.text
        assert 1 <= int(held.headers["retry-after"]) <= REFILL_S
        assert sign_in(MASTER_KEY).status_code == 429
        wait_out(held)
        assert sign_in(MASTER_KEY).status_code == 303


def test_with_redis_every_gateway_shares_the_count(upstream: FakeUpstream, tmp_path: Path) -> None:
    # Two gateways on one Redis, as two replicas (or workers) would be; a refill far longer than
    # the test, so that every refusal is the shared count's doing, not the clock's.
    settings = {"auth_failure_burst": BURST, "auth_failure_refill_s": 600, "redis_url": REDIS_URL,
                "redis_prefix": redis_prefix()}
    pair: list[Gateway] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            pair.append(Gateway(tmp_path / name, models(upstream), settings=settings, log=tmp_path / f"{name}.log"))
        statuses = []
        for n in range(2 * BURST):  # alternately: neither sees more than half the guesses
            with client(pair[n % 2], "127.0.5.1") as http:
                statuses.append(http.get("/v1/models", headers=bearer(f"sk-guess-{n}")).status_code)
        assert statuses == [401] * BURST + [429] * BURST
        for gateway in pair:  # both have heard: the right key waits too
            with client(gateway, "127.0.5.1") as http:
                assert http.get("/v1/models", headers=bearer(MASTER_KEY)).status_code == 429
    finally:
        for gateway in pair:
            gateway.close()
