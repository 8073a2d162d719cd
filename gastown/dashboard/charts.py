"""Small bar charts as inline SVG, rendered on the server: no JavaScript, nothing to load,
readable without colour (every bar has a <title> and its value on top, and the numbers are in
a table below).

Ticks are whole numbers with a gridline exactly at each label. Text is sized in the SVG's own
units by the stylesheet (larger on narrow screens, where the chart is scaled down) so it
stays at least 11 px on a 390 px phone; x labels are thinned and shortened to fit.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from gastown.models import Town
from gastown.services.telemetry import ALL_WAITS, NOT_RECORDED, TelemetryDays, telemetry_days


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    css_class: str = "s1"


WIDTH = 480
HEIGHT = 230
PAD_LEFT = 46
PAD_RIGHT = 6
PAD_TOP = 22  # room for the value label of the tallest bar
PAD_BOTTOM = 50
# Text is at most this many SVG units (dashboard.css: 16 on phones, 12 elsewhere); a
# character is about 0.6 of that wide.
MAX_FONT = 16
CHAR_W = MAX_FONT * 0.6
MAX_X_LABELS = 7


def _f(value: float) -> str:
    return f"{value:.1f}"


def axis_ticks(value_max: float, *, most: int = 5) -> list[int]:
    """Whole-number ticks from 0 to a round top >= value_max, at most `most` steps of 1, 2 or
    5 times a power of ten."""
    if value_max <= 0:
        return [0, 1]
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            steps = math.ceil(value_max / step)
            if steps <= most:
                return [step * i for i in range(steps + 1)]
        magnitude *= 10


def _fit(label: str, room: float) -> str:
    chars = max(1, int(room // CHAR_W))
    return label if len(label) <= chars else label[: max(1, chars - 1)] + "…"


def bar_chart(*, title: str, labels: Sequence[str], series: Sequence[Series]) -> SafeString:
    """A grouped bar chart: one group per label, one bar per series."""
    count = len(labels)
    ticks = axis_ticks(max((max(s.values, default=0) for s in series), default=0))
    top = ticks[-1]
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
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
    for tick in ticks:
        y = PAD_TOP + plot_h * (1 - tick / top)
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>'
                '<text class="axis tick" x="{}" y="{}" text-anchor="end" '
                'dominant-baseline="middle">{}</text>',
                PAD_LEFT,
                WIDTH - PAD_RIGHT,
                _f(y),
                _f(y),
                PAD_LEFT - 6,
                _f(y),
                tick,
            )
        )
    label_every = max(1, math.ceil(count / MAX_X_LABELS))
    for i, label in enumerate(labels):
        x0 = PAD_LEFT + i * group_w + group_w * 0.1
        for j, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else 0
            h = plot_h * value / top
            x = x0 + j * bar_w
            parts.append(
                format_html(
                    '<rect class="bar {}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{}: {} {}</title></rect>",
                    s.css_class,
                    _f(x),
                    _f(PAD_TOP + plot_h - h),
                    _f(bar_w - 1),
                    _f(h),
                    label,
                    value,
                    s.name,
                )
            )
            if value:
                parts.append(
                    format_html(
                        '<text class="value" x="{}" y="{}" text-anchor="middle">{}</text>',
                        _f(x + (bar_w - 1) / 2),
                        _f(PAD_TOP + plot_h - h - 4),
                        value,
                    )
                )
        if (count - 1 - i) % label_every == 0:  # thinned from the end: today is labelled
            parts.append(
                format_html(
                    '<text class="axis label" x="{}" y="{}" text-anchor="middle">{}</text>',
                    _f(PAD_LEFT + i * group_w + group_w / 2),
                    HEIGHT - PAD_BOTTOM + MAX_FONT + 4,
                    _fit(label, group_w * label_every - 4),
                )
            )
    legend_x = float(PAD_LEFT)
    for s in series:
        parts.append(
            format_html(
                '<rect class="bar {}" x="{}" y="{}" width="10" height="10"></rect>'
                '<text class="legend" x="{}" y="{}">{}</text>',
                s.css_class,
                _f(legend_x),
                HEIGHT - 14,
                _f(legend_x + 14),
                HEIGHT - 4,
                s.name,
            )
        )
        legend_x += 14 + CHAR_W * len(s.name) + 16
    parts.append("</svg>")
    return mark_safe("".join(parts))


def chart_card(
    title: str, labels: Sequence[str], series: list[Series], *, axis: str = "Day"
) -> dict[str, Any]:
    """What telemetry.html shows for one chart: the SVG and the same numbers as a table."""
    return {
        "title": title,
        "axis": axis,
        "svg": bar_chart(title=title, labels=labels, series=series),
        "series": series,
        "rows": [(label, [s.values[i] for s in series]) for i, label in enumerate(labels)],
        "total": sum(sum(s.values) for s in series),
    }


# --- how long PRs waited on a human ------------------------------------------------------

TOP_REVIEWERS = 6


def p90(values: Sequence[float]) -> float:
    """The nearest-rank 90th percentile: the smallest value that 90% of values do not
    exceed (so one slow wait among five shows)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _unit(ms_values: Sequence[float]) -> tuple[str, Callable[[float], int]]:
    """Minutes unless the slowest waits run past 10 hours; then hours."""
    if max(ms_values, default=0) < 10 * 3_600_000:
        return "minutes", lambda ms: round(ms / 60_000)
    return "hours", lambda ms: round(ms / 3_600_000)


def wait_weeks_first(now: datetime, weeks: int = 8) -> date:
    """The Monday (local) starting the first of the last `weeks` weeks."""
    today = timezone.localdate(now)
    return today - timedelta(days=today.weekday(), weeks=weeks - 1)


def wait_duration_charts(
    *, town: Town, now: datetime, weeks: int = 8, days: TelemetryDays | None = None
) -> list[dict[str, Any]]:
    """Median and p90 of resolved waits per week, and per reviewer the PR waited on, from the
    `pr.awaiting_approval_resolved` telemetry (its duration; its data's `reviewers`, when the
    event recorded them) as the daily rollup keeps it (`days`, read when not given: a fixed
    number of queries, whatever the number of events)."""
    first_week = wait_weeks_first(now, weeks)
    if days is None:
        days = telemetry_days(town_id=town.pk, first=first_week, names=[], now=now)
    by_week: dict[date, list[int]] = defaultdict(list)
    by_reviewer: dict[str, list[int]] = defaultdict(list)
    for reviewer, per_day in days.waits.items():
        for day, durations in per_day.items():
            if day < first_week:
                continue
            if reviewer == ALL_WAITS:
                by_week[day - timedelta(days=day.weekday())].extend(durations)
            else:
                by_reviewer[reviewer].extend(durations)
    week_list = [first_week + timedelta(weeks=i) for i in range(weeks)]
    week_stats = [
        (statistics.median(by_week[w]), p90(by_week[w])) if by_week[w] else (0, 0)
        for w in week_list
    ]
    busiest = sorted(by_reviewer, key=lambda r: (-len(by_reviewer[r]), r))[:TOP_REVIEWERS]
    reviewer_stats = [(statistics.median(by_reviewer[r]), p90(by_reviewer[r])) for r in busiest]
    unit, to_unit = _unit([p for _m, p in week_stats + reviewer_stats])
    return [
        chart_card(
            f"How long PRs waited, per week (median and p90, {unit})",
            [w.strftime("%m-%d") for w in week_list],
            [
                Series("median", [to_unit(m) for m, _p in week_stats], "s3"),
                Series("p90", [to_unit(p) for _m, p in week_stats], "s4"),
            ],
            axis="Week of",
        ),
        chart_card(
            f"How long PRs waited, per reviewer (last {weeks} weeks, {unit})",
            busiest,
            [
                Series("median", [to_unit(m) for m, _p in reviewer_stats], "s3"),
                Series("p90", [to_unit(p) for _m, p in reviewer_stats], "s4"),
            ],
            axis="Reviewer",
        ),
    ]


__all__ = [
    "NOT_RECORDED",
    "Series",
    "axis_ticks",
    "bar_chart",
    "chart_card",
    "p90",
    "wait_duration_charts",
    "wait_weeks_first",
]
