"""One way to show times and durations on every page (`{% load gastown %}`).

`|when` is a moment (`<time>` with its exact ISO time as the tooltip, "5 min ago" as text),
`|age` how long since a moment ("26 h 5 min"), `|duration` a length of time (a timedelta, or
seconds; `|duration:"ms"` for milliseconds, shown as such under a second). Seconds are
shown while they matter (under two minutes), then minutes, hours and days.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django import template
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from beads.models import MergeRequest, bead_ref
from beads.sentences import failure_words, merge_request_status
from gastown.dashboard.telemetry_words import telemetry_sentence
from scm.errors import ScmError
from scm.urls import parse_pr_url

register = template.Library()


def duration_text(seconds: float) -> str:
    """ "45 s", "17 min", "5 h 12 min", "3 days 4 h": rounded down, never negative."""
    total = max(0, int(seconds))
    if total < 120:
        return f"{total} s"
    minutes = total // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def _seconds(value: object, unit: str) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value / 1000 if unit == "ms" else float(value)


@register.filter
def duration(value: object, unit: str = "s") -> str:
    seconds = _seconds(value, unit)
    if seconds is None:
        return "—"
    if unit == "ms" and 0 <= seconds < 1:  # a tick or a request: "0 s" would say nothing
        return f"{round(seconds * 1000)} ms"
    return duration_text(seconds)


def _time(moment: datetime, text: str) -> SafeString:
    exact = moment.astimezone(UTC).replace(microsecond=0)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        exact.isoformat().replace("+00:00", "Z"),
        date_format(timezone.localtime(moment), "DATETIME_FORMAT"),  # as in the admin
        text,
    )


@register.filter
def when(moment: datetime | None, now: datetime | None = None) -> SafeString | str:
    """A moment relative to `now` ("5 min ago", "in 30 s"), exact on hover."""
    if not isinstance(moment, datetime):
        return "—"
    seconds = ((now or timezone.now()) - moment).total_seconds()
    if abs(seconds) < 1:
        return _time(moment, "just now")
    text = f"{duration_text(seconds)} ago" if seconds > 0 else f"in {duration_text(-seconds)}"
    return _time(moment, text)


@register.filter
def age(moment: datetime | None, now: datetime | None = None) -> SafeString | str:
    """How long since a moment ("26 h 5 min"), exact moment on hover."""
    if not isinstance(moment, datetime):
        return "—"
    return _time(moment, duration_text(((now or timezone.now()) - moment).total_seconds()))


@register.simple_tag(takes_context=True)
def admin_link_visible(context: template.Context) -> bool:
    """Whether the admin would show this user anything: staff alone only gets "You don't
    have permission to view or edit anything", so the link is hidden then."""
    request = context.get("request")
    if not isinstance(request, HttpRequest) or not admin.site.has_permission(request):
        return False
    return bool(admin.site.get_app_list(request))


@register.filter
def zip_with(values: object, other: object) -> list[tuple[object, object]]:
    """Pairs two parallel lists in a template: `{% for n, col in row|zip_with:columns %}`."""
    if not isinstance(values, list | tuple) or not isinstance(other, list | tuple):
        return []
    return list(zip(values, other, strict=False))


@register.filter
def pr_name(url: object) -> str:
    """A PR named as everywhere else, "owner/repo#N", from its URL ("PR" if unreadable)."""
    try:
        ref = parse_pr_url(url)
    except ScmError:
        return "PR"
    return f"{ref.repo}#{ref.number}"


@register.filter(name="bead_ref")
def bead_ref_filter(pk: object) -> str:
    """A bead named as everywhere else, "bd-42", from its id."""
    return bead_ref(pk) if pk not in (None, "") else "—"


@register.filter
def action_kind(kind: object) -> SafeString | str:
    """A reconciler action's kind in words ("request feedback check"), its class name as the
    tooltip: the ticks' counts and plans are keyed by class name (reconciler.actions)."""
    if not isinstance(kind, str) or not kind:
        return ""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", kind).lower()
    return format_html('<span title="{}">{}</span>', kind, words)


@register.filter
def telemetry_event(event: object) -> str:
    """A TelemetryEvent as the timelines word it (dashboard.telemetry_words)."""
    return telemetry_sentence(
        name=getattr(event, "name", ""),
        label=getattr(event, "label", ""),
        reason=getattr(event, "reason", ""),
        data=getattr(event, "data", None),
    )


@register.filter(name="failure")
def failure_filter(code: object) -> SafeString | str:
    """A failure code in plain words, the code itself as the tooltip (beads.sentences)."""
    if not isinstance(code, str) or not code:
        return "failed"
    return format_html('<span title="{}">{}</span>', code, failure_words(code))


@register.inclusion_tag("dashboard/_mr_status.html")
def mr_status(mr: MergeRequest) -> dict[str, object]:
    """An MR's status sentence (beads.sentences) with GitHub's raw values in a disclosure."""
    return {"mr": mr, "status": merge_request_status(merge_request=mr)}
