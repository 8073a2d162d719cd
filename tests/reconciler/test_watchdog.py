"""Rule X, the watchdog: a state no rule moves and nobody waits on raises one escalation that
names it and says why. The states are written straight into the database, as the admin, a
fixture, the shell or another tool would."""

from datetime import timedelta

import pytest

from beads.models import Bead, BeadStatus, BeadType, Blocker, MergeRequest
from gastown.models import Convoy, MergeMode
from gastown.reconciler.watchdog import STALL_AFTER
from tests.factories import (
    AgentFactory,
    BeadDependencyFactory,
    BeadFactory,
    ConvoyFactory,
    MergeRequestBeadFactory,
    MergeRequestFactory,
    RigFactory,
)

pytestmark = pytest.mark.django_db


def _age(*rows, by=STALL_AFTER + timedelta(minutes=1), clock):
    """Make the rows look untouched since `by` ago (written outside the services)."""
    for row in rows:
        type(row).objects.filter(pk=row.pk).update(updated_at=clock.now - by)


def _stall_escalations(town):
    return list(
        Bead.objects.filter(
            town=town, type=BeadType.ESCALATION, metadata__escalation_key__startswith="stalled:"
        )
    )


def test_an_in_review_issue_without_a_merge_request_is_escalated_once(tick, clock):
    bead = BeadFactory(status=BeadStatus.IN_REVIEW, title="Add billing export")
    _age(bead, clock=clock)
    tick(bead.town)
    tick(bead.town)
    (escalation,) = _stall_escalations(bead.town)
    assert escalation.title == f"Stalled: bd-{bead.pk} Add billing export"
    assert "in review but has no merge request" in escalation.body
    assert escalation.metadata["escalation_key"] == f"stalled:bead:{bead.pk}"


def test_an_open_issue_without_a_rig_is_escalated(tick, clock):
    bead = BeadFactory(rig=None)
    _age(bead, clock=clock)
    tick(bead.town)
    (escalation,) = _stall_escalations(bead.town)
    assert "it has no rig" in escalation.body


def test_a_dependency_cycle_written_outside_the_services_is_escalated(tick, clock):
    rig = RigFactory()
    first = BeadFactory(town=rig.town, rig=rig)
    second = BeadFactory(town=rig.town, rig=rig)
    BeadDependencyFactory(bead=first, depends_on=second, kind="blocks")
    BeadDependencyFactory(bead=second, depends_on=first, kind="blocks")
    _age(first, second, clock=clock)
    tick(rig.town)
    assert {e.metadata["escalation_key"] for e in _stall_escalations(rig.town)} == {
        f"stalled:bead:{first.pk}",
        f"stalled:bead:{second.pk}",
    }
    assert all("dependency cycle" in e.body for e in _stall_escalations(rig.town))


def test_a_merge_request_bead_without_its_merge_request_is_escalated(tick, clock):
    bead = MergeRequestBeadFactory(status=BeadStatus.IN_PROGRESS)
    _age(bead, clock=clock)
    tick(bead.town)
    (escalation,) = _stall_escalations(bead.town)
    assert "no live merge request" in escalation.body


def test_an_open_convoy_without_beads_is_escalated(tick, clock):
    convoy = ConvoyFactory(merge_mode=MergeMode.REVIEW_AND_MERGE, title="Nothing here")
    _age(convoy, clock=clock)
    tick(convoy.town)
    (escalation,) = _stall_escalations(convoy.town)
    assert escalation.title == "Stalled: convoy Nothing here"
    assert escalation.metadata["convoy_id"] == convoy.pk


def test_a_fresh_odd_state_is_given_time(tick, clock):
    bead = BeadFactory(status=BeadStatus.IN_REVIEW)
    _age(bead, by=STALL_AFTER - timedelta(minutes=1), clock=clock)
    tick(bead.town)
    assert _stall_escalations(bead.town) == []


def test_known_waits_are_not_stalls(tick, clock):
    rig = RigFactory()
    town = rig.town
    # An issue in review whose MR waits on a reviewer.
    issue = BeadFactory(town=town, rig=rig, status=BeadStatus.IN_REVIEW)
    mr = MergeRequestFactory(
        bead__town=town,
        bead__rig=rig,
        bead__status=BeadStatus.IN_PROGRESS,
        source=issue,
        pr_url="https://github.com/octo/app/pull/1",
        blocker="human_review",
        review_status="passed",
        last_checked_at=clock.now,
    )
    # An issue blocked by another open issue; an issue an agent works on.
    blocker = BeadFactory(town=town, rig=rig)
    blocked = BeadFactory(town=town, rig=rig)
    BeadDependencyFactory(bead=blocked, depends_on=blocker, kind="blocks")
    working = BeadFactory(town=town, rig=rig, status=BeadStatus.IN_PROGRESS)
    AgentFactory(town=town, rig=rig, hooked_bead=working, status="working")
    # An open convoy with work in it.
    convoy = ConvoyFactory(town=town, rig=rig, merge_mode=MergeMode.REVIEW_AND_MERGE)
    Bead.objects.filter(pk=issue.pk).update(convoy=convoy)
    _age(issue, mr.bead, blocked, working, clock=clock)
    Convoy.objects.filter(pk=convoy.pk).update(updated_at=clock.now - timedelta(hours=2))
    tick(town)
    assert _stall_escalations(town) == []


# Merge requests --------------------------------------------------------------------------

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
    assert f"MR bd-{mr.bead_id}" in escalation.title
    assert "its bead is closed but the merge request is open" in escalation.body


def test_an_mr_bead_with_no_merge_request_is_escalated_once(tick, clock):
    rig = RigFactory()
    bead = Bead.objects.create(
        town=rig.town, rig=rig, type=BeadType.MERGE_REQUEST, title="typed in the shell"
    )

    settle(tick, clock, rig.town)

    [escalation] = stalled(rig.town)
    assert f"MR bd-{bead.pk}" in escalation.title
    assert "no live merge request" in escalation.body


def test_an_mr_of_no_rig_is_escalated(tick, clock):
    rig = RigFactory()
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=None, pr_url=PR)

    settle(tick, clock, rig.town)

    [escalation] = stalled(rig.town)
    assert f"MR bd-{mr.bead_id}" in escalation.title
    assert "belongs to no rig" in escalation.body


def test_an_mr_in_progress_without_a_pr_or_an_agent_is_escalated(tick, clock):
    rig = RigFactory()
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, bead__status="in_progress")

    settle(tick, clock, rig.town)

    [escalation] = stalled(rig.town)
    assert f"MR bd-{mr.bead_id}" in escalation.title
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
