"""The inline SVG charts: sized by the data, labels escaped, and something sensible with no data."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from admin.ui import charts
from admin.ui.formats import count, key_status, percentile, usd


def test_bars_are_sized_by_value_and_labels_escaped() -> None:
    svg = str(charts.bars([("<script>", Decimal("4")), ("b & c", Decimal("1")), ("none", Decimal(0))], usd,
                          title="t"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "b &amp; c" in svg
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert widths[0] == 4 * widths[1] and widths[2] == 0
    assert "$4.00" in svg


def test_columns_cover_every_item_and_name_the_ends() -> None:
    items = [(f"2026-01-{d:02d}", d % 3) for d in range(1, 11)]
    svg = str(charts.columns(items, count, title="requests"))
    assert svg.count("<rect") == 10
    assert "2026-01-01" in svg and "2026-01-10" in svg
    heights = [float(h) for h in re.findall(r'height="([\d.]+)" class="bar"', svg)]
    assert max(heights) == 100.0 and heights[2] == 0


def test_no_data_says_so() -> None:
    assert "No data yet" in charts.bars([], usd, title="t")
    assert "No data yet" in charts.columns([], usd, title="t")


def test_money_and_percentiles_read_well() -> None:
    assert [usd(v) for v in ("0", "12.5", "0.0000335", "1234.567", None)] == [
        "$0.00", "$12.50", "$0.000034", "$1,234.57", "—"]
    # One rule for every amount: cents, and under a cent micro-dollars (the limiter's unit), never
    # more places; so the ledger's exact $0.00022815 and a counter's $0.000228 read alike.
    assert usd("0.00022815") == usd(Decimal("0.000228")) == "$0.000228"
    assert [usd(v) for v in ("0.0000004", "-0.5", "0.0099999")] == ["< $0.000001", "-$0.50", "$0.01"]
    assert percentile([], 0.5) is None
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3 and percentile(list(range(1, 101)), 0.95) == 95


def test_a_keys_status_reads_its_expiry() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert key_status({"revoked": True, "expires_at": "2026-01-01T00:00:00Z"}, now) == "revoked"
    assert key_status({"revoked": False, "expires_at": "2026-05-01T11:59:59+00:00"}, now) == "expired"
    assert key_status({"revoked": False, "expires_at": "2026-05-01T12:00:01"}, now) == "expires"
    assert key_status({"revoked": False, "expires_at": None}, now) == "active"
