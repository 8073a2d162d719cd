"""Telemetry (domain.md §6): recorded at the edges of a state, never once per tick."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from gastown.models import (
    TelemetryDay,
    TelemetryEvent,
    TelemetryRollup,
    TelemetryWaitDay,
    Town,
)


def duration_ms(start: datetime | None, end: datetime) -> int | None:
    if start is None:
        return None
    return max(0, int((end - start).total_seconds() * 1000))


def telemetry_record(
    *,
    name: str,
    town_id: int,
    rig_id: int | None = None,
    bead_id: int | None = None,
    convoy_id: int | None = None,
    label: str = "",
    reason: str = "",
    duration_ms: int | None = None,
    value: float | None = None,
    data: dict[str, Any] | None = None,
) -> TelemetryEvent:
    return TelemetryEvent.objects.create(
        name=name,
        town_id=town_id,
        rig_id=rig_id,
        bead_id=bead_id,
        convoy_id=convoy_id,
        label=label or "",
        reason=reason or "",
        duration_ms=duration_ms,
        value=value,
        data=data or {},
    )


# --- the daily rollup (README, "Performance") -----------------------------------------------
#
# Closed days are rolled up by `telemetry_rollup` (run with the reconciler's housekeeping);
# readers take the rolled-up days from the rollup and the days after it from the events, so
# the numbers are the same whether or not the rollup has run. Days are local to TIME_ZONE,
# as the charts label them.

WAIT_RESOLVED = "pr.awaiting_approval_resolved"
#: The reviewer key of the rows that hold every wait once.
ALL_WAITS = ""
#: The reviewer of a wait whose event did not record whom it waited on (it ended before
#: events named their reviewers), and of a wait on no one named (a rule, a code owner team).
NOT_RECORDED = "(not recorded)"
NOBODY_NAMED = "nobody named"
#: A day is closed this long after its midnight: an event stamped just before midnight whose
#: transaction commits just after it is in the day it is stamped with.
ROLLUP_GRACE = timedelta(minutes=10)
#: How far back a town's first rollup reaches (the telemetry that prune keeps).
ROLLUP_DAYS = 90


def day_start(day: date) -> datetime:
    """Midnight starting `day` in the current time zone, as an aware datetime."""
    return timezone.make_aware(datetime.combine(day, time.min))


def wait_reviewers(data: Any) -> list[str]:
    """Whom a resolved wait waited on, from its event's data: NOT_RECORDED when the event
    did not record it, NOBODY_NAMED when it waited on no one named."""
    reviewers = data.get("reviewers") if isinstance(data, dict) else None
    if not isinstance(reviewers, list):
        return [NOT_RECORDED]
    return list(dict.fromkeys(str(r) for r in reviewers)) or [NOBODY_NAMED]


@dataclass
class TelemetryDays:
    """Per-day numbers of one town from `first` to today."""

    counts: dict[str, dict[date, int]] = field(default_factory=dict)  # name -> day -> n
    waits: dict[str, dict[date, list[int]]] = field(default_factory=dict)  # reviewer -> day


def _count_events(events: QuerySet[TelemetryEvent]) -> list[tuple[str, date, int]]:
    rows = (
        events.order_by()
        .annotate(day=TruncDate("created_at"))
        .values_list("name", "day")
        .annotate(n=Count("id"))
    )
    return [(name, day, n) for name, day, n in rows]


def _wait_durations(events: QuerySet[TelemetryEvent]) -> dict[str, dict[date, list[int]]]:
    rows = (
        events.filter(name=WAIT_RESOLVED, duration_ms__isnull=False)
        .order_by()
        .values_list("created_at", "duration_ms", "data")
    )
    out: dict[str, dict[date, list[int]]] = {}
    for created_at, ms, data in rows:
        if ms is None:  # excluded by the query; says so to the type checker
            continue
        day = timezone.localdate(created_at)
        for reviewer in [ALL_WAITS, *wait_reviewers(data)]:
            out.setdefault(reviewer, {}).setdefault(day, []).append(ms)
    return out


def _rolled_through(town_id: int) -> date | None:
    rollup = TelemetryRollup.objects.filter(town_id=town_id).first()
    if rollup is None or rollup.time_zone != timezone.get_current_timezone_name():
        return None
    return rollup.through


def telemetry_days(
    *, town_id: int, first: date, names: list[str], now: datetime | None = None
) -> TelemetryDays:
    """The counts of `names` per day and the resolved waits' durations per reviewer and day,
    from `first` to today: rolled-up days from the rollup, later days from the events. Five
    queries, whatever the number of events."""
    now = now or timezone.now()
    through = _rolled_through(town_id)
    live_from = max(first, through + timedelta(days=1)) if through else first
    out = TelemetryDays(counts={name: {} for name in names})
    for name, day, n in TelemetryDay.objects.filter(
        town_id=town_id, day__gte=first, day__lt=live_from, name__in=names
    ).values_list("name", "day", "count"):
        out.counts[name][day] = n
    for reviewer, day, durations in TelemetryWaitDay.objects.filter(
        town_id=town_id, day__gte=first, day__lt=live_from
    ).values_list("reviewer", "day", "durations"):
        out.waits.setdefault(reviewer, {})[day] = list(durations)
    live = TelemetryEvent.objects.filter(town_id=town_id, created_at__gte=day_start(live_from))
    for name, day, n in _count_events(live.filter(name__in=names)):
        out.counts[name][day] = n
    for reviewer, days in _wait_durations(live).items():
        out.waits.setdefault(reviewer, {}).update(days)
    return out


def telemetry_rollup(*, now: datetime | None = None, town_ids: list[int] | None = None) -> int:
    """Roll up every closed day not rolled up yet, per town; returns how many town-days.
    Idempotent: a day is recomputed whole (its rows replaced), under the town's rollup row
    lock, so two workers never write the same day twice."""
    now = now or timezone.now()
    zone = timezone.get_current_timezone_name()
    last = timezone.localdate(now - ROLLUP_GRACE) - timedelta(days=1)
    towns = Town.objects.order_by("pk").values_list("pk", flat=True)
    if town_ids is not None:
        towns = towns.filter(pk__in=town_ids)
    rolled = 0
    for town_id in towns:
        TelemetryRollup.objects.get_or_create(town_id=town_id)
        with transaction.atomic():
            rollup = TelemetryRollup.objects.select_for_update().get(town_id=town_id)
            through = rollup.through if rollup.time_zone == zone else None
            first = through + timedelta(days=1) if through else last - timedelta(ROLLUP_DAYS - 1)
            if first > last:
                continue
            _roll_up(town_id, first, last)
            rollup.through, rollup.time_zone = last, zone
            rollup.save(update_fields=["through", "time_zone"])
            rolled += (last - first).days + 1
    return rolled


def _roll_up(town_id: int, first: date, last: date) -> None:
    events = TelemetryEvent.objects.filter(
        town_id=town_id,
        created_at__gte=day_start(first),
        created_at__lt=day_start(last + timedelta(days=1)),
    )
    TelemetryDay.objects.filter(town_id=town_id, day__gte=first, day__lte=last).delete()
    TelemetryDay.objects.bulk_create(
        TelemetryDay(town_id=town_id, day=day, name=name, count=n)
        for name, day, n in _count_events(events)
    )
    TelemetryWaitDay.objects.filter(town_id=town_id, day__gte=first, day__lte=last).delete()
    TelemetryWaitDay.objects.bulk_create(
        TelemetryWaitDay(town_id=town_id, day=day, reviewer=reviewer, durations=sorted(ms))
        for reviewer, days in _wait_durations(events).items()
        for day, ms in days.items()
    )
