"""Small charts as inline SVG, drawn on the server: no script, no network, and they print.

Every label is escaped; sizes come from the data only through arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from markupsafe import Markup, escape

Number = int | float | Decimal
BAR_HEIGHT = 22
LABEL_WIDTH = 150
VALUE_WIDTH = 90


def _scale(values: Sequence[Number]) -> float:
    top = max((float(v) for v in values), default=0.0)
    return top if top > 0 else 1.0


def bars(items: Sequence[tuple[str, Number]], fmt: Callable[[Number], str], *, title: str,
         width: int = 460) -> Markup:
    """Horizontal bars, one per (label, value), largest first as given."""
    if not items:
        return Markup('<p class="empty">No data yet.</p>')
    top = _scale([v for _, v in items])
    room = width - LABEL_WIDTH - VALUE_WIDTH
    height = BAR_HEIGHT * len(items) + 4
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
             f"<title>{escape(title)}</title>"]
    for i, (label, value) in enumerate(items):
        y = i * BAR_HEIGHT + 2
        length = max(1.0, room * float(value) / top) if float(value) > 0 else 0.0
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            f'<g><title>{escape(label)}: {escape(fmt(value))}</title>'
            f'<text x="0" y="{y + 15}" class="label">{escape(short)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{length:.1f}" height="{BAR_HEIGHT - 8}" class="bar"/>'
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + 15}" class="value">{escape(fmt(value))}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def columns(items: Sequence[tuple[str, Number]], fmt: Callable[[Number], str], *, title: str,
            width: int = 460, height: int = 120) -> Markup:
    """Vertical columns over time (e.g. one per day), first and last labels under the axis."""
    if not items:
        return Markup('<p class="empty">No data yet.</p>')
    top = _scale([v for _, v in items])
    plot = height - 20
    step = width / len(items)
    parts = [f'<svg class="chart stretch" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
             f"<title>{escape(title)}</title>",
             f'<line x1="0" y1="{plot}" x2="{width}" y2="{plot}" class="axis"/>']
    for i, (label, value) in enumerate(items):
        h = plot * float(value) / top if float(value) > 0 else 0.0
        parts.append(
            f'<rect x="{i * step + 1:.1f}" y="{plot - h:.1f}" width="{max(1.0, step - 2):.1f}" height="{h:.1f}" '
            f'class="bar"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
        )
    first, last = items[0][0], items[-1][0]
    parts.append(f'<text x="0" y="{height - 4}" class="label">{escape(first)}</text>')
    parts.append(f'<text x="{width}" y="{height - 4}" text-anchor="end" class="label">{escape(last)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
