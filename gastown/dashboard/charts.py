"""Small bar charts as inline SVG, rendered on the server: no JavaScript, nothing to load,
readable without colour (every bar has a <title> and the numbers are in a table below)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    css_class: str = "s1"


WIDTH = 640
HEIGHT = 200
PAD_LEFT = 36
PAD_BOTTOM = 34
PAD_TOP = 10


def _f(value: float) -> str:
    return f"{value:.1f}"


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    step = 1
    while step * 10 < value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if step * factor >= value:
            return step * factor
    return value


def bar_chart(*, title: str, labels: Sequence[str], series: Sequence[Series]) -> SafeString:
    """A grouped bar chart: one group per label, one bar per series."""
    count = len(labels)
    top = _nice_max(max((max(s.values, default=0) for s in series), default=0))
    plot_w = WIDTH - PAD_LEFT - 4
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    group_w = plot_w / max(count, 1)
    bar_w = max(2.0, (group_w * 0.8) / max(len(series), 1))
    parts: list[str] = [
        format_html(
            '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" '
            'preserveAspectRatio="xMidYMid meet">',
            WIDTH,
            HEIGHT,
            title,
        ),
        format_html("<title>{}</title>", title),
    ]
    for fraction in (0, 0.5, 1):
        y = PAD_TOP + plot_h * (1 - fraction)
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                PAD_LEFT,
                WIDTH - 4,
                _f(y),
                _f(y),
                PAD_LEFT - 4,
                _f(y + 4),
                int(top * fraction),
            )
        )
    label_every = max(1, count // 10)
    for i, label in enumerate(labels):
        x0 = PAD_LEFT + i * group_w + group_w * 0.1
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else 0
            h = plot_h * value / top if top else 0
            parts.append(
                format_html(
                    '<rect class="bar {}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{}: {} {}</title></rect>",
                    s.css_class,
                    _f(x0 + j * bar_w),
                    _f(PAD_TOP + plot_h - h),
                    _f(bar_w - 1),
                    _f(h),
                    label,
                    value,
                    s.name,
                )
            )
        if i % label_every == 0:
            parts.append(
                format_html(
                    '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _f(PAD_LEFT + i * group_w + group_w / 2),
                    HEIGHT - PAD_BOTTOM + 16,
                    label,
                )
            )
    legend_x = PAD_LEFT
    for s in series:
        parts.append(
            format_html(
                '<rect class="bar {}" x="{}" y="{}" width="10" height="10"></rect>'
                '<text class="legend" x="{}" y="{}">{}</text>',
                s.css_class,
                legend_x,
                HEIGHT - 12,
                legend_x + 14,
                HEIGHT - 3,
                s.name,
            )
        )
        legend_x += 14 + 8 * len(s.name) + 16
    parts.append("</svg>")
    return mark_safe("".join(parts))


__all__ = ["Series", "bar_chart"]
