"""The daily telemetry rollup (README, "Performance"): whatever has been rolled up, the
per-day counts and wait durations equal a direct count of the events, on local day
boundaries in any time zone, and they match the telemetry list filtered to that day."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from gastown.dashboard.selectors import CHART_NAMES, telemetry_charts, telemetry_list
from gastown.models import TelemetryDay, TelemetryEvent, TelemetryRollup, TelemetryWaitDay
from gastown.reconciler.tick import TELEMETRY_HISTORY, prune
from gastown.services.telemetry import (
    ALL_WAITS,
    NOBODY_NAMED,
    NOT_RECORDED,
    WAIT_RESOLVED,
    telemetry_days,
    telemetry_rollup,
)
from tests.factories import TownFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 20, 15, 0, tzinfo=UTC)
NAMES = [*CHART_NAMES, "agent.dispatched"]
REVIEWERS = ["alice", "bob", "carol"]


def seed(town, rng: random.Random, n: int = 400, days: int = 20) -> list[TelemetryEvent]:
    """Random events over `days` days before NOW, a third of them within a minute of some
    midnight (UTC's or the local one) to catch the wrong day boundary."""
    events = []
    for _ in range(n):
        name = rng.choice(NAMES)
        reviewers = rng.sample(REVIEWERS, rng.randint(0, 2))
        events.append(
            TelemetryEvent(
                town=town,
                name=name,
                duration_ms=rng.randint(0, 5 * 86_400_000) if name == WAIT_RESOLVED else None,
                data={"reviewers": reviewers} if reviewers else {},
            )
        )
    TelemetryEvent.objects.bulk_create(events)
    local_midnight = timezone.localtime(NOW).replace(hour=0, minute=0, second=0, microsecond=0)
    utc_midnight = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    for event in events:
        day = timedelta(days=rng.randint(0, days))
        if rng.random() < 0.33:
            edge = rng.choice([local_midnight, utc_midnight])
            event.created_at = edge - day + timedelta(seconds=rng.choice([-1, 0, 1, 59]))
        else:
            event.created_at = NOW - day - timedelta(seconds=rng.randint(0, 86_399))
        event.created_at = min(event.created_at, NOW)
    TelemetryEvent.objects.bulk_update(events, ["created_at"])
    return events


def direct(events, first):
    counts: dict[str, Counter] = defaultdict(Counter)
    waits: dict[str, dict] = defaultdict(lambda: defaultdict(list))
    for e in events:
        day = timezone.localdate(e.created_at)
        if day < first:
            continue
        counts[e.name][day] += 1
        if e.name == WAIT_RESOLVED:
            named = e.data.get("reviewers")
            if named is None:
                named = [NOT_RECORDED]
            for reviewer in [ALL_WAITS, *(dict.fromkeys(named) or [NOBODY_NAMED])]:
                waits[reviewer][day].append(e.duration_ms)
    return counts, waits


def assert_equal_to_direct(town, events, first, now):
    got = telemetry_days(town_id=town.pk, first=first, names=NAMES, now=now)
    counts, waits = direct(events, first)
    assert {n: dict(c) for n, c in got.counts.items() if c} == {
        n: dict(c) for n, c in counts.items()
    }
    assert {r: {d: sorted(ms) for d, ms in days.items()} for r, days in got.waits.items()} == {
        r: {d: sorted(ms) for d, ms in days.items()} for r, days in waits.items()
    }


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"])
@pytest.mark.parametrize("seed_value", [1, 2])
def test_rollup_equals_a_direct_count(zone, seed_value):
    with override_settings(TIME_ZONE=zone):
        town = TownFactory()
        events = seed(town, random.Random(seed_value))
        TownFactory()  # another town's rollup stays out of this one's
        first = timezone.localdate(NOW) - timedelta(days=25)
        assert_equal_to_direct(town, events, first, NOW)  # nothing rolled up: all live
        # Rolled up to some day in the middle, then to yesterday: the same numbers.
        assert telemetry_rollup(now=NOW - timedelta(days=7)) > 0
        assert_equal_to_direct(town, events, first, NOW)
        telemetry_rollup(now=NOW)
        assert TelemetryRollup.objects.get(town=town).through == timezone.localdate(
            NOW
        ) - timedelta(days=1)
        assert TelemetryDay.objects.filter(town=town).exists()
        assert_equal_to_direct(town, events, first, NOW)
        # A window starting inside the rolled-up days.
        assert_equal_to_direct(town, events, first + timedelta(days=10), NOW)


def test_rolling_up_again_changes_nothing():
    town = TownFactory()
    seed(town, random.Random(3))
    telemetry_rollup(now=NOW)
    before = sorted(TelemetryDay.objects.values_list("day", "name", "count"))
    waits = sorted(TelemetryWaitDay.objects.values_list("day", "reviewer", "durations"))
    assert telemetry_rollup(now=NOW) == 0
    TelemetryRollup.objects.update(through=None)  # forgotten: every day recomputed
    assert telemetry_rollup(now=NOW) > 0
    assert sorted(TelemetryDay.objects.values_list("day", "name", "count")) == before
    assert sorted(TelemetryWaitDay.objects.values_list("day", "reviewer", "durations")) == waits


def test_yesterday_is_rolled_up_only_after_the_grace_period():
    town = TownFactory()
    midnight = datetime(2026, 3, 20, tzinfo=UTC)
    telemetry_rollup(now=midnight + timedelta(minutes=5))
    assert TelemetryRollup.objects.get(town=town).through == datetime(2026, 3, 18).date()
    telemetry_rollup(now=midnight + timedelta(minutes=11))
    assert TelemetryRollup.objects.get(town=town).through == datetime(2026, 3, 19).date()


def test_a_new_time_zone_rolls_the_days_up_again():
    town = TownFactory()
    events = seed(town, random.Random(4))
    telemetry_rollup(now=NOW)
    with override_settings(TIME_ZONE="Asia/Tokyo"):
        first = timezone.localdate(NOW) - timedelta(days=25)
        assert_equal_to_direct(town, events, first, NOW)  # the UTC days are not read
        telemetry_rollup(now=NOW)
        assert TelemetryRollup.objects.get(town=town).time_zone == "Asia/Tokyo"
        assert_equal_to_direct(town, events, first, NOW)


@override_settings(TIME_ZONE="America/New_York")
def test_chart_counts_match_the_list_of_each_day():
    town = TownFactory()
    seed(town, random.Random(5), n=200, days=13)
    telemetry_rollup(now=NOW)
    charts = telemetry_charts(town=town, now=NOW)
    for name in CHART_NAMES:
        for day, n in zip(charts.days, charts.per_day[name], strict=True):
            assert telemetry_list(town=town, name=name, since=day, until=day).count() == n


def test_prune_drops_rollup_days_with_their_events():
    town = TownFactory()
    old = timezone.localdate(NOW - TELEMETRY_HISTORY) - timedelta(days=1)
    TelemetryDay.objects.create(town=town, day=old, name="pr.merged", count=3)
    TelemetryWaitDay.objects.create(town=town, day=old, reviewer="", durations=[1])
    kept = TelemetryDay.objects.create(town=town, day=old + timedelta(days=2), name="x", count=1)
    prune(NOW)
    assert list(TelemetryDay.objects.all()) == [kept]
    assert not TelemetryWaitDay.objects.exists()
