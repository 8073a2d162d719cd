"""The telemetry page's list of event names (a loose index scan, README "Performance")."""

import pytest

from gastown.dashboard.selectors import telemetry_names
from tests.factories import TelemetryEventFactory, TownFactory

pytestmark = pytest.mark.django_db


def test_names_are_the_towns_own_each_once_in_order():
    town, other = TownFactory(), TownFactory()
    for name in ["pr.merged", "agent.dispatched", "pr.merged", "convoy.landed"]:
        TelemetryEventFactory(town=town, name=name)
    TelemetryEventFactory(town=other, name="only.elsewhere")
    assert telemetry_names(town=town) == ["agent.dispatched", "convoy.landed", "pr.merged"]


def test_a_town_without_events_has_no_names():
    assert telemetry_names(town=TownFactory()) == []


def test_at_most_a_hundred_names():
    town = TownFactory()
    for i in range(101):
        TelemetryEventFactory(town=town, name=f"n.{i:03}")
    names = telemetry_names(town=town)
    assert names == [f"n.{i:03}" for i in range(100)]


def test_without_a_town_the_names_of_every_town():
    TelemetryEventFactory(town=TownFactory(), name="b.one")
    TelemetryEventFactory(town=TownFactory(), name="a.two")
    assert telemetry_names(town=None) == ["a.two", "b.one"]
