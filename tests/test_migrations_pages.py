"""The page-speed migrations (README, "Performance"): ticks recorded before the plan was kept
read as planning nothing; the bead search's trigram indexes exist on PostgreSQL and go with
a rollback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from tests.test_migrations import _latest, _migrate

BEFORE_PLAN = [
    ("gastown", "0011_feedback_check_conditional_requests"),
    ("beads", "0014_merge_request_pr_etag"),
]
TRIGRAM = ["bead_title_trgm", "mr_pr_url_trgm", "mr_branch_trgm"]


@pytest.fixture
def migrated_back(transactional_db):
    yield lambda targets: _migrate(targets)
    _migrate(_latest())  # whatever happened, the next test gets today's schema


def test_an_old_tick_reads_as_planning_nothing(migrated_back):
    apps = migrated_back(BEFORE_PLAN)
    town = apps.get_model("gastown", "Town").objects.create(slug="acme", name="Acme")
    apps.get_model("gastown", "ReconcilerTick").objects.create(
        town=town, started_at=datetime(2026, 3, 2, tzinfo=UTC), actions={"CloseBead": 2}
    )
    apps = _migrate(_latest())
    tick = apps.get_model("gastown", "ReconcilerTick").objects.get()
    assert (tick.planned, tick.plan, tick.actions) == (0, [], {"CloseBead": 2})
    assert apps.get_model("gastown", "TelemetryRollup").objects.count() == 0


def _indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%%_trgm'")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.postgres
def test_trigram_indexes_come_and_go_with_their_migration(migrated_back):
    assert connection.vendor == "postgresql"
    assert _indexes() >= set(TRIGRAM)
    migrated_back([("beads", "0014_merge_request_pr_etag")])
    assert not _indexes() & set(TRIGRAM)
