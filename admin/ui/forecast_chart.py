"""A budget period as inline SVG: cumulative spend so far (solid), the projection to the period's
end (dashed, with its interval as a band) and the budget as a horizontal line."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape


def forecast_chart(f: dict[str, Any], width: int = 460, height: int = 140) -> Markup:
    start, end = f["period_start"], f["period_end"]
    actual = _cumulative([(d, Decimal(v)) for d, v in f["history"] if start <= d], Decimal(0))
    ahead = [(d, Decimal(v)) for d, v in f["forecast"]]
    if actual and ahead and ahead[0][0] == actual[-1][0]:
        actual = actual[:-1]  # today is forecast in full; the line joins there
    base = actual[-1][1] if actual else Decimal(0)
    projected = _cumulative(ahead, base)
    days = [d for d, _ in actual] + [d for d, _ in projected]
    if not days:
        return Markup('<p class="empty">No data yet.</p>')
    budget, high = Decimal(f["budget_usd"]), Decimal(f["high_usd"])
    top = float(max([budget, high, *(v for _, v in actual + projected)])) or 1.0
    plot, step = height - 20, width / max(1, len(days) - 1)

    def y(value: Decimal | float) -> float:
        return plot - plot * float(value) / top

    def line(points: Sequence[tuple[str, Decimal]], offset: int, css: str) -> str:
        coords = " ".join(f"{(offset + i) * step:.1f},{y(v):.1f}" for i, (_, v) in enumerate(points))
        return f'<polyline points="{coords}" class="{css}" fill="none"/>' if points else ""

    join = [actual[-1]] if actual else []
    low_end, high_end = Decimal(f["low_usd"]), high
    last_x = (len(days) - 1) * step
    band = ""
    if projected:
        x0 = (len(actual) - 1 if actual else 0) * step
        band = (f'<polygon points="{x0:.1f},{y(base):.1f} {last_x:.1f},{y(high_end):.1f} {last_x:.1f},{y(low_end):.1f}"'
                f' class="interval"><title>80% interval: {escape(str(low_end))} to {escape(str(high_end))}</title>'
                "</polygon>")
    parts = [
        f'<svg class="chart stretch forecast" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}"><title>Spend in {escape(f["period"])}: actual, projected and the budget</title>',
        f'<line x1="0" y1="{plot}" x2="{width}" y2="{plot}" class="axis"/>',
        f'<line x1="0" y1="{y(budget):.1f}" x2="{width}" y2="{y(budget):.1f}" class="budget">'
        f'<title>budget {escape(str(budget))}</title></line>',
        band,
        line(actual, 0, "actual"),
        line(join + projected, max(0, len(actual) - 1), "projected"),
        f'<text x="0" y="{height - 4}" class="label">{escape(start)}</text>',
        f'<text x="{width}" y="{height - 4}" text-anchor="end" class="label">{escape(end)}</text>',
        "</svg>",
    ]
    return Markup("".join(parts))


def _cumulative(points: Sequence[tuple[str, Decimal]], start: Decimal) -> list[tuple[str, Decimal]]:
    out, running = [], start
    for day, value in points:
        running += value
        out.append((day, running))
    return out
