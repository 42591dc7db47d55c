"""Inline SVG charts for the run report: horizontal bars, drawn here so the page needs no script
and no network."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

WIDTH = 640
LABEL_WIDTH = 210
VALUE_WIDTH = 90
ROW_HEIGHT = 24
BAR_HEIGHT = 16
COLORS = ("#3b6ea8", "#d9822b")
# About what fits left of the bars at 12px; longer labels (campaign names) are shortened.
MAX_LABEL_CHARS = 32


@dataclass(frozen=True)
class BarChart:
    """One bar per label; `shown` is the text written beside each bar. A `series` index per bar
    colours bars of a second kind differently (treated against holdout)."""

    title: str
    labels: list[str]
    values: list[float]
    shown: list[str]
    series: list[int] | None = None


def bar_chart_svg(chart: BarChart) -> str:
    """The chart as an `<svg>` element; bars scale to the largest value, negatives draw as zero."""
    rows = len(chart.labels)
    height = rows * ROW_HEIGHT + 8
    largest = max((v for v in chart.values if v > 0), default=0) or 1
    room = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(chart.title)}">',
        f"<title>{escape(chart.title)}</title>",
    ]
    for i, (label, value, shown) in enumerate(zip(chart.labels, chart.values, chart.shown, strict=True)):
        y = 4 + i * ROW_HEIGHT
        length = max(value, 0) / largest * room
        color = COLORS[(chart.series[i] if chart.series else 0) % len(COLORS)]
        if len(label) > MAX_LABEL_CHARS:
            label = label[: MAX_LABEL_CHARS - 1] + "…"
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR_HEIGHT - 3}" text-anchor="end" class="label">'
            f"{escape(label)}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}" fill="{color}"/>'
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{y + BAR_HEIGHT - 3}" class="value">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
