"""The chart builder's output: whole-number ticks with their gridlines, value labels, and the
wait-duration statistics behind the new charts."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from gastown.dashboard.charts import (
    NOT_RECORDED,
    Series,
    axis_ticks,
    bar_chart,
    p90,
    wait_duration_charts,
)
from gastown.services.telemetry import NOBODY_NAMED, telemetry_rollup
from tests.factories import TelemetryEventFactory, TownFactory

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("value_max", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (4, [0, 1, 2, 3, 4]),
        (5, [0, 1, 2, 3, 4, 5]),
        (6, [0, 2, 4, 6]),
        (7, [0, 2, 4, 6, 8]),
        (23, [0, 5, 10, 15, 20, 25]),
        (101, [0, 50, 100, 150]),
        (1000, [0, 200, 400, 600, 800, 1000]),
    ],
)
def test_ticks_are_whole_numbers_up_to_a_round_top(value_max, ticks):
    assert axis_ticks(value_max) == ticks


def parse(svg: str) -> ET.Element:
    return ET.fromstring(
        svg.replace('class="chart"', 'xmlns="http://www.w3.org/2000/svg" class="chart"')
    )


def texts(root: ET.Element, css: str) -> list[ET.Element]:
    return [t for t in root.iter(f"{SVG}text") if css in t.get("class", "").split()]


def test_each_gridline_sits_at_its_tick_label():
    root = parse(bar_chart(title="t", labels=["a", "b"], series=[Series("n", [3, 5])]))
    ticks = texts(root, "tick")
    lines = list(root.iter(f"{SVG}line"))
    assert [t.text for t in ticks] == ["0", "1", "2", "3", "4", "5"]
    assert [line.get("y1") for line in lines] == [t.get("y") for t in ticks]
    assert len({line.get("y1") for line in lines}) == 6


def test_bars_carry_their_values_and_zero_bars_carry_none():
    root = parse(
        bar_chart(
            title="t",
            labels=["mon", "tue", "wed"],
            series=[Series("merged", [2, 0, 7]), Series("refused", [0, 1, 0])],
        )
    )
    assert sorted(t.text for t in texts(root, "value")) == ["1", "2", "7"]
    bar_titles = [
        r.find(f"{SVG}title").text
        for r in root.iter(f"{SVG}rect")
        if r.find(f"{SVG}title") is not None
    ]
    assert "wed: 7 merged" in bar_titles


def test_the_tallest_bar_reaches_the_top_tick_exactly():
    root = parse(bar_chart(title="t", labels=["a"], series=[Series("n", [5])]))
    top_tick = texts(root, "tick")[-1]
    bar = next(r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None)
    assert top_tick.text == "5" and bar.get("y") == top_tick.get("y")


def test_x_labels_are_thinned_and_shortened_to_fit():
    labels = [f"11-{i + 10}" for i in range(14)]
    root = parse(bar_chart(title="t", labels=labels, series=[Series("n", [1] * 14)]))
    shown = [t.text for t in texts(root, "label")]
    assert shown == ["11-11", "11-13", "11-15", "11-17", "11-19", "11-21", "11-23"]
    long = parse(
        bar_chart(
            title="t",
            labels=[f"reviewer-number-{i}" for i in range(6)],
            series=[Series("n", [1] * 6)],
        )
    )
    assert all(t.text.endswith("…") and len(t.text) < 10 for t in texts(long, "label"))


def test_p90_is_the_nearest_rank():
    assert p90([10]) == 10
    assert p90([1, 2, 3, 4, 100]) == 100
    assert p90(list(range(1, 21))) == 18


NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # a Thursday


def resolved(town, *, at: datetime, minutes: int, reviewers=None):
    event = TelemetryEventFactory(
        town=town,
        name="pr.awaiting_approval_resolved",
        duration_ms=minutes * 60_000,
        data={"pr_url": "x", **({"reviewers": reviewers} if reviewers is not None else {})},
    )
    event.created_at = at
    event.save(update_fields=["created_at"])


def series_of(chart) -> dict[str, list[int]]:
    return {s.name: list(s.values) for s in chart["series"]}


@pytest.mark.django_db
def test_wait_durations_per_week_and_per_reviewer(django_assert_num_queries):
    town = TownFactory()
    this_week = NOW - timedelta(days=1)
    for minutes in (10, 20, 30, 40, 300):
        resolved(town, at=this_week, minutes=minutes, reviewers=["alice"])
    resolved(town, at=NOW - timedelta(weeks=1), minutes=60, reviewers=["alice", "bob"])
    resolved(town, at=NOW - timedelta(weeks=1), minutes=90)
    resolved(town, at=NOW - timedelta(weeks=9), minutes=999, reviewers=["carol"])  # too old
    resolved(TownFactory(), at=this_week, minutes=777, reviewers=["dave"])  # another town
    TelemetryEventFactory(town=town, name="pr.awaiting_approval_detected", duration_ms=5)

    # The rollup's state, then the rolled-up days (none yet) and the later days' events.
    with django_assert_num_queries(3):
        weekly, per_reviewer = wait_duration_charts(town=town, now=NOW)
    telemetry_rollup(now=NOW)
    with django_assert_num_queries(3):
        assert wait_duration_charts(town=town, now=NOW) == [weekly, per_reviewer]

    assert weekly["title"].endswith("(median and p90, minutes)")
    assert [label for label, _values in weekly["rows"]][-2:] == ["11-16", "11-23"]
    assert len(weekly["rows"]) == 8
    assert series_of(weekly) == {"median": [0] * 6 + [75, 30], "p90": [0] * 6 + [90, 300]}
    assert [label for label, _values in per_reviewer["rows"]] == ["alice", NOT_RECORDED, "bob"]
    assert series_of(per_reviewer) == {"median": [35, 90, 60], "p90": [300, 90, 60]}


@pytest.mark.django_db
def test_a_wait_recorded_on_nobody_is_charted_as_nobody_named_not_as_unrecorded():
    town = TownFactory()
    resolved(town, at=NOW, minutes=30, reviewers=[])
    resolved(town, at=NOW, minutes=60)
    _weekly, per_reviewer = wait_duration_charts(town=town, now=NOW)
    assert sorted(label for label, _values in per_reviewer["rows"]) == sorted(
        [NOBODY_NAMED, NOT_RECORDED]
    )


@pytest.mark.django_db
def test_long_waits_are_charted_in_hours():
    town = TownFactory()
    resolved(town, at=NOW, minutes=11 * 60)
    weekly, _ = wait_duration_charts(town=town, now=NOW)
    assert "hours" in weekly["title"]
    assert series_of(weekly)["p90"][-1] == 11
