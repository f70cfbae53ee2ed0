"""The ledger's pure parts: tags, the row, partition arithmetic, delta counting, cursors, spill files."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.accounting.ledger.labels import MAX_TAGS, client_user, parse_tags
from gateway.accounting.ledger.partitions import create_statement, expired, partition_day, partition_name, wanted
from gateway.accounting.ledger.queries import Cursor, QueryError
from gateway.accounting.ledger.row import LedgerRow
from gateway.accounting.ledger.spill import Spill
from gateway.config.file import Deployment
from gateway.core.errors import InvalidRequest
from gateway.core.types import Endpoint, Usage
from gateway.pipeline.record import RequestRecord
from gateway.providers.estimate import completion_tokens, count_deltas
from gateway.providers.openai.stream import OpenAIStreamTranslator


def test_tags_parse_and_reject() -> None:
    assert parse_tags(None) == {} == parse_tags("")
    assert parse_tags(" team=search , env=prod,q=a=b ") == {"team": "search", "env": "prod", "q": "a=b"}
    for bad in ("novalue", "=x", "sp ace=1", "a=1,a=2", "k=\x01", "k=" + "v" * 300, "x" * 3000,
                ",".join(f"k{i}=v" for i in range(MAX_TAGS + 1))):  # fmt: skip
        with pytest.raises(InvalidRequest) as info:
            parse_tags(bad)
        assert info.value.param == "x-gateway-tags"


def test_client_user_is_clipped_and_optional() -> None:
    assert client_user({"user": "u-1"}) == "u-1"
    assert client_user({"user": 5}) is None and client_user({}) is None
    assert len(client_user({"user": "x" * 1000}) or "") == 256


def finished_record(**changes: Any) -> RequestRecord:
    record = RequestRecord(
        "req_1", Endpoint.CHAT, Endpoint.CHAT.value, started=100.0, finished=100.500, upstream_started=100.001,
        first_byte_at=100.050, key_id="k1", key_prefix="sk-gw-abc", team_id="t1", model="public", stream=True,
        deployment=Deployment(provider="openai", base_url="http://x/v1", model="upstream-id", id="public/0"),
        attempts=1, status=200, usage=Usage(prompt_tokens=10, completion_tokens=20, cached_tokens=4),
        cost_usd=Decimal("0.00012"), tags={"a": "1"},
    )
    return record._replace(**changes)


def test_row_from_record() -> None:
    row = LedgerRow.from_record(finished_record())
    assert (row.request_id, row.endpoint, row.key_id, row.key_prefix, row.team_id) == (
        "req_1", "chat/completions", "k1", "sk-gw-abc", "t1")
    assert (row.requested_model, row.served_model, row.provider, row.deployment) == (
        "public", "upstream-id", "openai", "public/0")
    assert (row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (10, 20, 4)
    assert row.cost_usd == Decimal("0.00012")
    assert (row.latency_ms, row.ttft_ms, row.upstream_ms) == pytest.approx((500.0, 50.0, 499.0))
    assert row.overhead_ms == pytest.approx(1.0)
    assert not row.is_error and not row.unpriced
    # The wall-clock time is when the request started, not when it was recorded.
    assert abs(row.ts_us / 1e6 - (time.time() - (time.perf_counter() - 100.0))) < 1


def test_row_of_a_refused_or_unpriced_request() -> None:
    refused = LedgerRow.from_record(finished_record(
        key_id=None, key_prefix=None, team_id=None, deployment=None, usage=None, cost_usd=None, status=401,
        error_type="invalid_request_error",
        upstream_started=None, first_byte_at=None, stream=False))  # fmt: skip
    assert (refused.key_id, refused.provider, refused.upstream_ms, refused.ttft_ms) == (None, None, None, None)
    # Nothing was used: zero, not "unknown".
    assert refused.cost_usd == 0 and refused.is_error and refused.overhead_ms == refused.latency_ms
    unpriced = LedgerRow.from_record(finished_record(cost_usd=None))
    assert unpriced.cost_usd is None and unpriced.unpriced
    cancelled = LedgerRow.from_record(finished_record(status=499, cancelled=True, usage=None))
    assert not cancelled.is_error


def test_row_survives_the_spill_format() -> None:
    row = LedgerRow.from_record(finished_record())
    line = row.to_json()
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert LedgerRow.from_json(line) == row
    # Files from an older or newer version: unknown fields are ignored, missing ones take defaults.
    raw = orjson.loads(line)
    raw["future_column"] = 1
    del raw["cache_hit"]
    assert LedgerRow.from_json(orjson.dumps(raw)).cache_hit is False
    assert LedgerRow.from_json(LedgerRow.from_record(finished_record(cost_usd=None)).to_json()).cost_usd is None


def test_partition_arithmetic() -> None:
    day = date(2026, 3, 1)
    assert partition_name(day) == "ledger_requests_p20260301"
    assert partition_day("ledger_requests_p20260301") == day
    assert partition_day("ledger_requests_p20261399") is None and partition_day("other_table") is None
    assert "FROM ('2026-03-01 00:00:00+00') TO ('2026-03-02 00:00:00+00')" in create_statement(day)
    assert wanted(day, 2) == [date(2026, 2, 28), day, date(2026, 3, 2), date(2026, 3, 3)]
    existing = [date(2026, 2, d) for d in range(1, 29)]
    assert expired(existing, day, 3) == [date(2026, 2, d) for d in range(1, 26)]
    assert expired(existing, day, 0) == []


def event(content: str | None = None, **delta: object) -> bytes:
    if content is not None:
        delta["content"] = content
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def test_count_deltas_counts_text_not_empty_frames() -> None:
    frames = event("", role="assistant") + event("Hel") + event("lo") + event(None) + b"data: [DONE]\n\n"
    assert count_deltas(frames) == 2
    tool = event(None, tool_calls=[{"index": 0, "function": {"arguments": '{"a":'}}])
    assert count_deltas(tool) == 1
    text = b'data: {"choices":[{"text":"abc","index":0}]}\n\ndata: {"choices":[{"text":"","index":0}]}\n\n'
    assert count_deltas(text) == 1


def test_translator_estimates_only_without_a_usage_chunk() -> None:
    def estimate(deltas: int) -> Usage:
        return Usage(prompt_tokens=7, completion_tokens=deltas, estimated=True)

    partial = OpenAIStreamTranslator(strip_usage=True, estimate=estimate)
    stream = event("", role="assistant") + event("a") + event("b") + event("c")
    # Cut at an arbitrary byte: framing must not change the count.
    partial.feed(stream[:37])
    partial.feed(stream[37:])
    assert partial.usage == Usage(prompt_tokens=7, completion_tokens=3, estimated=True)

    reported = OpenAIStreamTranslator(strip_usage=True, estimate=estimate)
    usage = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9}}\n\n'
    assert reported.feed(stream + usage) == stream  # the usage chunk is stripped for this client
    assert reported.usage == Usage(prompt_tokens=3, completion_tokens=9)
    assert OpenAIStreamTranslator(strip_usage=True).usage is None


def test_unary_completion_estimate() -> None:
    body = {"choices": [{"message": {"content": "12345678", "tool_calls": [{"function": {"arguments": "{}"}}]}},
                        {"text": "abcd"}]}  # fmt: skip
    assert completion_tokens(body) == 4  # (8 + 2 + 4) / 4, rounded up
    assert completion_tokens({"data": []}) == 0


def test_cursor_round_trip_and_garbage() -> None:
    cursor = Cursor(1_700_000_000_123_456, "req_ü")
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in ("", "!!!", "bm90IGpzb24", Cursor(1, "x").encode()[:-2]):
        with pytest.raises(QueryError):
            Cursor.decode(bad)


def rows(n: int, start: int = 0) -> list[LedgerRow]:
    return [LedgerRow(ts_us=1_700_000_000_000_000 + i, request_id=f"r{i}", endpoint="chat/completions")
            for i in range(start, start + n)]  # fmt: skip


def test_spill_append_seal_claim_in_order(tmp_path: Path) -> None:
    spill = Spill(tmp_path)
    assert not spill.pending() and spill.claim() is None
    spill.append(rows(3))
    spill.sync()
    assert spill.pending()
    spill.seal()
    spill.append(rows(2, start=3))
    spill.seal()
    read: list[str] = []
    while (path := spill.claim()) is not None:
        for batch in spill.read(path, batch_size=2):
            read += [r.request_id for r in batch]
        spill.done(path)
    assert read == ["r0", "r1", "r2", "r3", "r4"]
    assert not spill.pending() and list(tmp_path.iterdir()) == []


def test_spill_release_and_orphans(tmp_path: Path) -> None:
    spill = Spill(tmp_path)
    spill.append(rows(2))
    spill.seal()
    path = spill.claim()
    assert path is not None and spill.claim() is None  # claimed files are not handed out twice
    spill.release(path)
    again = spill.claim()
    assert again is not None
    spill.release(again)
    # A dead process's files: its open segment and a replay it never finished.
    dead = 2**22 + 12345  # above pid_max on default kernels: no such process
    (tmp_path / f"{1:020d}-{dead}.active").write_bytes(b"".join(r.to_json() for r in rows(1, start=10)))
    (tmp_path / f"{2:020d}-{dead}.ndjson.replaying-{dead}").write_bytes(rows(1, start=11)[0].to_json() + b"{torn")
    order: list[str] = []
    while (path := spill.claim()) is not None:
        order += [r.request_id for batch in spill.read(path, 10) for r in batch]
        spill.done(path)
    assert order == ["r10", "r11", "r0", "r1"]
    assert spill.bad_lines == 1  # the torn last line of a crash is skipped, not fatal


def test_spill_set_aside_keeps_rejected_rows(tmp_path: Path) -> None:
    spill = Spill(tmp_path)
    kept = spill.set_aside(rows(2))
    assert kept.suffix == ".rejected" and kept.read_bytes().count(b"\n") == 2
    assert spill.claim() is None  # never replayed by itself
    assert [LedgerRow.from_json(line).request_id for line in kept.read_bytes().splitlines()] == ["r0", "r1"]


def test_price_table_covers_the_providers() -> None:
    from gateway.accounting.pricing import charge, load_price_table
    from gateway.providers import PROVIDERS

    table = load_price_table()
    providers = {key.split("/", 1)[0] for key in table}
    assert providers == {"openai", "azure", "anthropic", "gemini"} and providers <= set(PROVIDERS)
    # Self-hosted servers have no list price: they are priced per deployment or not at all.
    assert not any(key.startswith("vllm/") for key in table)
    assert any(price.per_request > 0 for price in table.values())
    sonnet = table["anthropic/claude-sonnet-4-20250514"]
    assert sonnet.cached_input_per_mtok is not None and sonnet.cached_input_per_mtok < sonnet.input_per_mtok
    # 1000 prompt tokens of which 800 came from the cache, 100 completion tokens.
    assert charge(sonnet, 1000, 100, 800) == (200 * Decimal(3) + 800 * Decimal("0.30") + 100 * Decimal(15)) / 10**6
