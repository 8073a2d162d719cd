"""Rule X: a live merge request that no rule will move and that waits on nothing known raises
one escalation naming it and why. The states are built directly in the database, as a shell,
a fixture or another tool would leave them."""

from __future__ import annotations

import pytest

from beads.models import Bead, BeadStatus, BeadType, Blocker, MergeRequest
from tests.factories import MergeRequestFactory, RigFactory

pytestmark = pytest.mark.django_db

PR = "https://github.com/acme/app/pull/1"


def stalled(town):
    return list(
        Bead.objects.filter(
            town=town, type=BeadType.ESCALATION, metadata__escalation_key__startswith="stalled:"
        )
    )


def settle(tick, clock, town, rounds=3):
    """Past the grace, then a few ticks: one escalation, never one per tick."""
    clock.advance(minutes=11)
    for _ in range(rounds):
        tick(town)
        clock.advance(minutes=1)


def test_an_mr_whose_bead_status_disagrees_with_its_state_is_escalated_once(tick, clock):
    rig = RigFactory()
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    Bead.objects.filter(pk=mr.bead_id).update(status=BeadStatus.CLOSED)  # by hand

    settle(tick, clock, rig.town)

    [escalation] = stalled(rig.town)
    assert f"merge request #{mr.pk}" in escalation.title
    assert "its bead is closed but the merge request is open" in escalation.body


def test_an_mr_bead_with_no_merge_request_is_escalated_once(tick, clock):
    rig = RigFactory()
    bead = Bead.objects.create(
        town=rig.town, rig=rig, type=BeadType.MERGE_REQUEST, title="typed in the shell"
    )

    settle(tick, clock, rig.town)

    [escalation] = stalled(rig.town)
    assert f"MR bead #{bead.pk}" in escalation.title
    assert "no live merge request" in escalation.body


def test_an_mr_of_no_rig_is_escalated(tick, clock):
    rig = RigFactory()
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=None, pr_url=PR)

    settle(tick, clock, rig.town)

    [escalation] = stalled(rig.town)
    assert f"merge request #{mr.pk}" in escalation.title
    assert "belongs to no rig" in escalation.body


def test_an_mr_in_progress_without_a_pr_or_an_agent_is_escalated(tick, clock):
    rig = RigFactory()
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, bead__status="in_progress")

    settle(tick, clock, rig.town)

    [escalation] = stalled(rig.town)
    assert f"merge request #{mr.pk}" in escalation.title
    assert "without a pull request" in escalation.body


@pytest.mark.parametrize(
    "fields",
    [
        # Waiting on a human, watched.
        {"bead__status": "in_progress", "pr_url": PR, "blocker": Blocker.HUMAN_REVIEW},
        # Waiting on checks.
        {"bead__status": "in_progress", "pr_url": PR, "blocker": Blocker.CHECKS_PENDING},
        # In the queue: R5 takes it.
        {"pr_url": PR},
        # No PR yet, open: R5 opens one.
        {},
    ],
)
def test_an_mr_a_rule_moves_or_in_a_known_wait_raises_nothing(tick, clock, fields):
    rig = RigFactory()
    MergeRequestFactory(bead__town=rig.town, bead__rig=rig, **fields)

    settle(tick, clock, rig.town)

    assert stalled(rig.town) == []


def test_nothing_is_raised_within_the_grace(tick, clock):
    rig = RigFactory()
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    Bead.objects.filter(pk=mr.bead_id).update(status=BeadStatus.CLOSED)
    MergeRequest.objects.filter(pk=mr.pk).update(updated_at=clock.now)

    tick(rig.town)

    assert stalled(rig.town) == []
