"""Existing data moves: a database built in every old merge-request state, migrated forward,
holds the same facts in the new model (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

OLD = [("beads", "0003_merge_refusal_and_rework_causes"), ("gastown", "0004_town_thresholds")]
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.fixture
def old_apps(transactional_db):
    apps = _migrate(OLD)
    yield apps
    _migrate(_latest())  # whatever happened, the next test gets today's schema


def _old_mr(apps, town, rig, n, *, status, **fields):
    Bead = apps.get_model("beads", "Bead")
    MergeRequest = apps.get_model("beads", "MergeRequest")
    bead = Bead.objects.create(
        town=town, rig=rig, type="merge_request", status=status, title=f"MR {n}"
    )
    return MergeRequest.objects.create(
        bead=bead,
        branch=f"b{n}",
        target_branch="main",
        is_active=status in ("open", "in_progress", "in_review"),
        **fields,
    ).pk


def test_every_old_merge_request_state_moves_to_the_new_model(old_apps):
    apps = old_apps
    town = apps.get_model("gastown", "Town").objects.create(slug="acme", name="Acme")
    rig = apps.get_model("gastown", "Rig").objects.create(town=town, name="web", repo="acme/web")
    url = "https://github.com/acme/web/pull/{}"
    pks = {
        "open": _old_mr(
            apps,
            town,
            rig,
            1,
            status="open",
            pr_url=url.format(1),
            last_error="pre-merge check failed: 502",
        ),
        "in_progress": _old_mr(
            apps,
            town,
            rig,
            2,
            status="in_progress",
            pr_url=url.format(2),
            pr_repo="acme/web",
            pr_number=2,
            blocker="human_review",
            awaiting_approval=True,
            waiting_since=NOW,
            review_decision="CHANGES_REQUESTED",
            changes_requested=True,
            last_error="merge refused (review_required): Review required.",
            merge_refused_head_sha="abc123",
            merge_refused_kind="human_review",
            merge_refused_state="REVIEW_REQUIRED|alice",
            merge_refused_at=NOW,
            merge_refusals=3,
        ),
        "in_review": _old_mr(
            apps, town, rig, 3, status="in_review", last_error="merge refused (x): no"
        ),
        "closed": _old_mr(apps, town, rig, 4, status="closed", merged_at=NOW),
        "failed": _old_mr(
            apps, town, rig, 5, status="failed", last_error="not_found: PR 5 is gone"
        ),
        # Known by repository and number only (written by hand, before pr_url was the one).
        "repo_only": _old_mr(
            apps, town, rig, 6, status="in_progress", pr_repo="acme/web", pr_number=6
        ),
        # A last rework cause from before the list of causes existed.
        "last_cause": _old_mr(
            apps,
            town,
            rig,
            7,
            status="open",
            last_rework_cause="conflict:abc",
            rework_causes=["checks_failing:abc"],
        ),
    }

    _migrate(_latest())

    from beads.models import MergeRequest

    mrs = {name: MergeRequest.objects.select_related("bead").get(pk=pk) for name, pk in pks.items()}
    states = {name: mr.state for name, mr in mrs.items()}
    assert states == {
        "open": "open",
        "in_progress": "in_progress",
        "in_review": "in_progress",
        "closed": "merged",
        "failed": "failed",
        "repo_only": "in_progress",
        "last_cause": "open",
    }
    waiting = mrs["in_progress"]
    assert (waiting.awaiting_approval, waiting.changes_requested) == (True, True)
    assert (waiting.pr_repo, waiting.pr_number, waiting.waiting_since) == ("acme/web", 2, NOW)
    assert mrs["repo_only"].pr_url == "https://github.com/acme/web/pull/6"
    assert (mrs["repo_only"].pr_repo, mrs["repo_only"].pr_number) == ("acme/web", 6)
    assert mrs["last_cause"].rework_causes == ["checks_failing:abc", "conflict:abc"]
    assert mrs["last_cause"].last_rework_cause == "conflict:abc"
    refusal = waiting.merge_refusal
    assert (refusal.head_sha, refusal.refusal_kind, refusal.repeats) == (
        "abc123",
        "human_review",
        3,
    )
    assert (refusal.outcome, refusal.created_at) == ("review_required", NOW)
    assert refusal.message == "merge refused (review_required): Review required."
    assert (waiting.merge_refusal_waits_on, waiting.merge_hold_from) == (
        "REVIEW_REQUIRED|alice",
        NOW,
    )
    assert [mr.merge_attempts.count() for mr in mrs.values()] == [0, 1, 0, 0, 0, 0, 0]
    kinds = {name: mr.last_error_kind for name, mr in mrs.items() if mr.last_error}
    assert kinds == {
        "open": "pre_merge_check",
        "in_progress": "merge_refused",
        "in_review": "merge_refused",
        "failed": "not_found",
    }
    # The one-active-landing index now reads the state: the terminal rows hold no slot.
    assert [mr.is_active for mr in mrs.values()] == [True, True, True, False, False, True, True]
