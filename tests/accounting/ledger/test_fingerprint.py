"""The ledger's request fingerprint: equal for requests the cache would answer alike, different
otherwise, and a hash, never the body."""

from __future__ import annotations

import uuid

import openai

from gateway.core.fingerprint import fingerprint
from tests.accounting.ledger.helpers import fetch, wait_rows
from tests.procs import MASTER_KEY, Gateway


def test_repeats_share_a_fingerprint_that_holds_nothing_of_the_body(ledger_gateway: Gateway, ledger_dsn: str
                                                                    ) -> None:
    client = openai.OpenAI(base_url=ledger_gateway.url, api_key=MASTER_KEY, max_retries=0)
    secret = "the-secret-" + uuid.uuid4().hex
    messages = [{"role": "user", "content": f"summarise {secret}"}]
    sent = []
    for options in ({}, {"stream": True}, {"user": "someone"}, {"extra_body": {"safety_identifier": "someone"}},
                    {"temperature": 0.5}):
        request_id = "req_fp_" + uuid.uuid4().hex
        answer = client.chat.completions.create(model="priced", messages=messages,  # type: ignore[call-overload]
                                                extra_headers={"x-request-id": request_id}, **options)
        if options.get("stream"):
            list(answer)
        sent.append(request_id)
    rows = wait_rows(ledger_dsn, sent)
    prints = [rows[r]["fingerprint"] for r in sent]
    # Streaming and the end user do not change the answer; the temperature does.
    assert prints[0] == prints[1] == prints[2] == prints[3] != prints[4]
    assert prints[0] == fingerprint("chat/completions", "priced", {"model": "priced", "messages": messages})
    assert len(prints[0]) == 64 and int(prints[0], 16) >= 0
    stored = fetch(ledger_dsn, "SELECT * FROM ledger_requests WHERE request_id = ANY($1::text[])", sent)
    assert stored and secret not in repr(stored)
