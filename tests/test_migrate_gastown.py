"""Existing data moves: a database in each old state, migrated forward, ends up right."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("gastown", "0004_town_thresholds")]
AFTER = [("gastown", "0005_drop_town_events_convoy_branch_failed_at")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_apps():
    apps = _migrate(BEFORE)
    yield apps
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_a_failed_branch_creation_keeps_its_time_and_the_queue_goes(old_apps):
    Town = old_apps.get_model("gastown", "Town")
    Convoy = old_apps.get_model("gastown", "Convoy")
    Rig = old_apps.get_model("gastown", "Rig")
    town = Town.objects.create(name="Acme", slug="acme")
    rig = Rig.objects.create(town=town, name="app", repo="acme/app")
    failed_at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    failing = Convoy.objects.create(
        town=town,
        rig=rig,
        title="Billing",
        merge_mode="review-then-land",
        failure_message="creating the feature branch failed: Reference already exists",
    )
    Convoy.objects.filter(pk=failing.pk).update(updated_at=failed_at)
    created = Convoy.objects.create(
        town=town,
        rig=rig,
        title="Search",
        merge_mode="review-then-land",
        feature_branch_created_at=failed_at,
        failure_message="landing_mr_exhausted",
    )
    TownEvent = old_apps.get_model("gastown", "TownEvent")
    TownEvent.objects.create(town=town, kind="webhook_received")

    new_apps = _migrate(AFTER)

    Convoy = new_apps.get_model("gastown", "Convoy")
    assert Convoy.objects.get(pk=failing.pk).feature_branch_failed_at == failed_at
    assert Convoy.objects.get(pk=created.pk).feature_branch_failed_at is None
    assert "gastown_townevent" not in connection.introspection.table_names()
