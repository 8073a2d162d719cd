"""B1 dispatch, B3 lost agent, B4 review safety net, the breaker and back-off."""

import uuid
from datetime import timedelta

import pytest

from beads.audit import Actor
from beads.merge_requests import merge_request_transition
from beads.models import Bead, BeadStatus
from beads.services import bead_add_dependency, bead_set_status
from gastown.models import Agent, AgentStatus, TelemetryEvent, Town
from gastown.reconciler import apply
from gastown.reconciler.rules import MAX_DISPATCH_PER_TICK, dispatch_backoff
from tests.factories import (
    AgentFactory,
    BeadFactory,
    MergeRequestFactory,
    RigFactory,
    TownFactory,
)

pytestmark = pytest.mark.django_db


def kinds(result):
    return sorted(action.kind for action in result.applied)


def test_open_unblocked_issue_gets_a_new_polecat(tick):
    bead = BeadFactory()
    result = tick(bead.town)
    assert kinds(result) == ["DispatchPolecat"]
    bead.refresh_from_db()
    agent = Agent.objects.get(hooked_bead=bead)
    assert bead.status == BeadStatus.IN_PROGRESS
    assert bead.assignee == agent
    assert bead.dispatch_attempts == 1
    assert agent.role == "polecat" and agent.rig == bead.rig


def test_an_idle_polecat_of_the_rig_is_reused(tick):
    idle = AgentFactory()
    bead = BeadFactory(town=idle.town, rig=idle.rig)
    tick(bead.town)
    idle.refresh_from_db()
    assert idle.hooked_bead == bead
    assert Agent.objects.count() == 1


def test_two_beads_in_one_tick_get_two_agents(tick):
    rig = RigFactory()
    first, second = BeadFactory(town=rig.town, rig=rig), BeadFactory(town=rig.town, rig=rig)
    tick(rig.town)
    assert {a.hooked_bead_id for a in Agent.objects.all()} == {first.pk, second.pk}


def test_paused_town_dispatches_nothing(tick):
    bead = BeadFactory(town__paused=True)
    assert kinds(tick(bead.town)) == []
    bead.refresh_from_db()
    assert bead.status == BeadStatus.OPEN


def test_blocked_bead_waits_for_its_blocker_to_be_terminal(tick):
    rig = RigFactory()
    blocker = BeadFactory(town=rig.town, rig=rig, status=BeadStatus.IN_REVIEW)
    bead = BeadFactory(town=rig.town, rig=rig)
    bead_add_dependency(bead=bead, blocker=blocker)
    tick(rig.town)
    bead.refresh_from_db()
    assert bead.status == BeadStatus.OPEN
    bead_set_status(bead=blocker, status=BeadStatus.CLOSED, actor=Actor.reconciler())
    tick(rig.town)
    bead.refresh_from_db()
    assert bead.status == BeadStatus.IN_PROGRESS


def test_backoff_delays_the_next_dispatch(tick, clock):
    bead = BeadFactory(dispatch_attempts=2, last_dispatch_attempt_at=clock.now)
    assert dispatch_backoff(2, bead.town.effective()) == timedelta(seconds=60)
    clock.advance(seconds=59)
    assert kinds(tick(bead.town)) == []
    clock.advance(seconds=1)
    assert kinds(tick(bead.town)) == ["DispatchPolecat"]


def test_default_backoff_grows_to_ten_minutes():
    defaults = Town().effective()
    assert [dispatch_backoff(n, defaults).total_seconds() for n in range(1, 8)] == [
        30,
        60,
        120,
        300,
        600,
        600,
        600,
    ]


def test_town_with_a_custom_backoff_dispatches_on_its_own_schedule(tick, clock):
    town = TownFactory(dispatch_backoff_seconds="5,15")
    bead = BeadFactory(town=town, dispatch_attempts=3, last_dispatch_attempt_at=clock.now)
    clock.advance(seconds=14)
    assert kinds(tick(town)) == []
    clock.advance(seconds=1)
    assert kinds(tick(town)) == ["DispatchPolecat"], "past the list, its last step repeats"
    bead.refresh_from_db()
    assert bead.dispatch_attempts == 4


def test_bead_fails_past_max_dispatch_attempts(tick, clock):
    bead = BeadFactory(dispatch_attempts=5, last_dispatch_attempt_at=clock.now - timedelta(hours=1))
    tick(bead.town)
    bead.refresh_from_db()
    assert bead.status == BeadStatus.FAILED
    assert bead.failure_code == "dispatch_exhausted"


def test_breaker_stops_dispatch_and_escalates_once(tick, clock):
    bead = BeadFactory()
    TelemetryEvent.objects.bulk_create(
        TelemetryEvent(town=bead.town, name="agent.dispatch_failed") for _ in range(20)
    )
    for _ in range(5):
        tick(bead.town)
        clock.advance(seconds=10)
    bead.refresh_from_db()
    assert bead.status == BeadStatus.OPEN
    escalations = Bead.objects.filter(type="escalation", town=bead.town)
    assert escalations.count() == 1
    assert "too many failed dispatches" in escalations.get().title


def test_lost_agent_releases_its_bead_after_five_minutes(tick, clock):
    agent = AgentFactory(status=AgentStatus.WORKING, last_heartbeat_at=clock.now)
    bead = BeadFactory(
        town=agent.town, rig=agent.rig, status=BeadStatus.IN_PROGRESS, dispatch_attempts=1
    )
    Agent.objects.filter(pk=agent.pk).update(hooked_bead=bead)
    clock.advance(minutes=4)
    assert kinds(tick(agent.town)) == []
    clock.advance(minutes=2)
    result = tick(agent.town)
    assert "ReopenBead" in kinds(result)
    agent.refresh_from_db()
    bead.refresh_from_db()
    assert agent.hooked_bead is None
    # The plan was made before the reopen, so the bead waits for the next tick's dispatch.
    assert bead.status == BeadStatus.OPEN


def test_live_agent_keeps_its_bead(tick, clock):
    agent = AgentFactory(status=AgentStatus.WORKING)
    bead = BeadFactory(town=agent.town, rig=agent.rig, status=BeadStatus.IN_PROGRESS)
    Agent.objects.filter(pk=agent.pk).update(hooked_bead=bead)
    for _ in range(10):
        clock.advance(minutes=1)
        Agent.objects.filter(pk=agent.pk).update(last_heartbeat_at=clock.now)
        tick(agent.town)
    bead.refresh_from_db()
    assert bead.status == BeadStatus.IN_PROGRESS


def test_in_review_issue_closes_when_its_mr_merged(tick):
    issue = BeadFactory(status=BeadStatus.IN_REVIEW)
    mr = MergeRequestFactory(source=issue, bead__town=issue.town, bead__rig=issue.rig)
    merge_request_transition(merge_request=mr, transition="merge", actor=Actor.reconciler())
    tick(issue.town)
    issue.refresh_from_db()
    assert issue.status == BeadStatus.CLOSED


def test_in_review_issue_reopens_when_all_its_mrs_failed(tick):
    issue = BeadFactory(status=BeadStatus.IN_REVIEW)
    mr = MergeRequestFactory(source=issue, bead__town=issue.town, bead__rig=issue.rig)
    merge_request_transition(merge_request=mr, transition="fail", actor=Actor.reconciler())
    tick(issue.town)
    issue.refresh_from_db()
    assert issue.status == BeadStatus.OPEN


def test_in_review_issue_with_an_active_mr_is_left_alone(tick):
    issue = BeadFactory(status=BeadStatus.IN_REVIEW)
    MergeRequestFactory(source=issue, bead__town=issue.town, bead__rig=issue.rig)
    tick(issue.town)
    issue.refresh_from_db()
    assert issue.status == BeadStatus.IN_REVIEW


def test_lost_agent_fails_its_bead_past_max_attempts(tick, clock):
    agent = AgentFactory(status=AgentStatus.WORKING, last_heartbeat_at=clock.now)
    bead = BeadFactory(
        town=agent.town, rig=agent.rig, status=BeadStatus.IN_PROGRESS, dispatch_attempts=5
    )
    Agent.objects.filter(pk=agent.pk).update(hooked_bead=bead)
    clock.advance(minutes=6)
    assert kinds(tick(agent.town)) == ["FailBead"]
    bead.refresh_from_db()
    agent.refresh_from_db()
    assert bead.status == BeadStatus.FAILED
    assert bead.failure_code == "dispatch_exhausted"
    assert agent.hooked_bead is None


@pytest.mark.parametrize(("failures", "dispatched"), [(19, True), (20, False)])
def test_breaker_opens_at_twenty_failed_dispatches_in_thirty_minutes(
    tick, clock, failures, dispatched
):
    bead = BeadFactory()
    TelemetryEvent.objects.bulk_create(
        TelemetryEvent(town=bead.town, name="agent.dispatch_failed") for _ in range(failures)
    )
    assert ("DispatchPolecat" in kinds(tick(bead.town))) is dispatched
    assert Bead.objects.filter(type="escalation").exists() is not dispatched


def test_bead_with_an_empty_title_is_dispatched(tick):
    bead = BeadFactory(title="")
    assert kinds(tick(bead.town)) == ["DispatchPolecat"]


@pytest.mark.parametrize(("failures", "dispatched"), [(2, True), (3, False)])
def test_custom_breaker_threshold_opens_at_its_value(tick, failures, dispatched):
    bead = BeadFactory(town__breaker_threshold=3)
    TelemetryEvent.objects.bulk_create(
        TelemetryEvent(town=bead.town, name="agent.dispatch_failed") for _ in range(failures)
    )
    assert ("DispatchPolecat" in kinds(tick(bead.town))) is dispatched
    escalation = Bead.objects.filter(type="escalation").first()
    assert (escalation is None) is dispatched
    if escalation:
        assert "fewer than 3 failures" in escalation.body


def test_failures_older_than_the_breaker_window_do_not_count(tick, clock):
    bead = BeadFactory(town__breaker_threshold=3, town__breaker_window_minutes=5)
    TelemetryEvent.objects.bulk_create(
        TelemetryEvent(town=bead.town, name="agent.dispatch_failed") for _ in range(3)
    )
    clock.advance(minutes=4)
    assert "DispatchPolecat" not in kinds(tick(bead.town))
    clock.advance(minutes=2)
    assert "DispatchPolecat" in kinds(tick(bead.town))


def test_a_tick_dispatches_at_most_the_cap_and_the_rest_next_tick(tick):
    rig = RigFactory()
    beads = BeadFactory.create_batch(MAX_DISPATCH_PER_TICK + 1, town=rig.town, rig=rig)
    first = tick(rig.town)
    assert kinds(first).count("DispatchPolecat") == MAX_DISPATCH_PER_TICK
    assert first.active  # the reconciler comes back soon for the rest
    assert Bead.objects.filter(status=BeadStatus.OPEN).count() == 1
    second = tick(rig.town)
    assert kinds(second) == ["DispatchPolecat"]
    assert Agent.objects.filter(hooked_bead__in=beads).count() == len(beads)


def test_the_cap_keeps_the_highest_priority_first(tick):
    rig = RigFactory()
    BeadFactory.create_batch(MAX_DISPATCH_PER_TICK, town=rig.town, rig=rig, priority="low")
    urgent = BeadFactory(town=rig.town, rig=rig, priority="critical")
    tick(rig.town)
    urgent.refresh_from_db()
    assert urgent.status == BeadStatus.IN_PROGRESS
    assert Bead.objects.filter(status=BeadStatus.OPEN, priority="low").count() == 1


def test_a_new_agent_never_takes_a_name_already_used_in_the_town(tick, monkeypatch):
    rig = RigFactory()
    # In another rig of the town, so B1 does not reuse it for the bead.
    taken = AgentFactory(town=rig.town, rig=RigFactory(town=rig.town), name="polecat-" + "a" * 12)
    bead = BeadFactory(town=rig.town, rig=rig)
    # uuid4 is the standard library's: the first suffix drawn collides with the agent above.
    drawn = iter([uuid.UUID("a" * 32), uuid.UUID("b" * 32)])
    monkeypatch.setattr(apply.uuid, "uuid4", lambda: next(drawn))
    assert kinds(tick(rig.town)) == ["DispatchPolecat"]
    agent = Agent.objects.get(hooked_bead=bead)
    assert agent.name == "polecat-" + "b" * 12
    taken.refresh_from_db()
    assert taken.hooked_bead is None


def test_the_snapshot_finds_the_agent_hooked_to_each_bead():
    """agent_hooked_to is indexed on first use (one scan of the agents, not one per bead):
    the agent hooked to a bead (one at most), None for a bead nobody holds."""
    from django.utils import timezone

    from gastown.reconciler.load import load_snapshot

    rig = RigFactory()
    held, free = BeadFactory(rig=rig, town=rig.town), BeadFactory(rig=rig, town=rig.town)
    holder = AgentFactory(town=rig.town, rig=rig, hooked_bead=held)
    AgentFactory(town=rig.town, rig=rig, hooked_bead=None)
    snapshot = load_snapshot(rig.town, timezone.now())
    assert snapshot.agent_hooked_to(held.pk) == holder
    assert snapshot.agent_hooked_to(free.pk) is None
    assert snapshot.agent_hooked_to(held.pk) == holder  # answered from the index


def test_the_snapshot_finds_the_live_merge_request_of_each_mr_bead():
    """live_merge_request is indexed on first use, like agent_hooked_to: the watchdog asks
    it for every MR bead, and a scan of the MRs each time made its rule quadratic."""
    from django.utils import timezone

    from gastown.reconciler.load import load_snapshot

    rig = RigFactory()
    live = MergeRequestFactory(bead__town=rig.town, bead__rig=rig)
    merged = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, state="merged")
    snapshot = load_snapshot(rig.town, timezone.now())
    assert snapshot.live_merge_request(live.bead_id) == live
    assert snapshot.live_merge_request(merged.bead_id) is None
    assert snapshot.live_merge_request(rig.pk + 10_000) is None
