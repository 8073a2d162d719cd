"""The override services (gastown/overrides.py): effects, audit and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from beads.models import BeadEvent, BeadStatus, BeadType, Blocker, MergeAttempt
from gastown.models import AgentStatus, ConvoyStatus, TelemetryEvent
from gastown.services.overrides import (
    OVERRIDES,
    OverrideRefused,
    bead_redispatch,
    convoy_close,
    convoy_end_suppression,
    convoy_retry_landing,
    merge_request_clear_awaiting,
    merge_request_fail,
    merge_request_merge_now,
    merge_request_recheck,
    override_run,
    town_pause,
    town_resume,
)
from tests.factories import (
    AgentFactory,
    BeadFactory,
    ConvoyFactory,
    MergeRequestFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PR = "https://github.com/acme/web/pull/7"


@pytest.fixture
def user(db):
    return UserFactory(username="lead")


def waiting_mr(town, **kwargs):
    defaults = dict(
        bead__town=town,
        bead__status=BeadStatus.IN_PROGRESS,
        pr_url=PR,
        blocker=Blocker.HUMAN_REVIEW,
        review_decision="REVIEW_REQUIRED",
        waiting_since=NOW - timedelta(hours=3),
    )
    return MergeRequestFactory(**{**defaults, **kwargs})


def override_events(bead):
    return list(BeadEvent.objects.filter(bead=bead, kind="override"))


def test_recheck_makes_the_mr_due_and_audits_who_and_why(town, user):
    mr = waiting_mr(town)
    message = merge_request_recheck(merge_request=mr, user=user, reason="CI flaked", now=NOW)
    mr.refresh_from_db()
    assert mr.check_requested_at == NOW
    assert "acme/web#7" in message
    (event,) = override_events(mr.bead)
    assert event.actor == "user:lead" and event.user == user
    assert "CI flaked" in event.note
    assert TelemetryEvent.objects.get(name="override.merge_request_recheck").label == "lead"


def test_recheck_is_refused_without_a_pr(town, user):
    mr = MergeRequestFactory(bead__town=town, pr_url="")
    with pytest.raises(OverrideRefused, match="no pull request"):
        merge_request_recheck(merge_request=mr, user=user)
    assert not override_events(mr.bead)


def test_merge_now_sets_the_request_but_never_for_a_pr_waiting_on_a_human(town, user):
    mr = waiting_mr(town)
    with pytest.raises(OverrideRefused, match="waiting on a human: cannot merge"):
        merge_request_merge_now(merge_request=mr, user=user, now=NOW)
    mr.refresh_from_db()
    assert mr.merge_requested_at is None

    ready = waiting_mr(
        town,
        blocker=Blocker.READY,
        waiting_since=None,
        review_status="passed",
    )
    merge_request_merge_now(merge_request=ready, user=user, now=NOW)
    ready.refresh_from_db()
    assert ready.merge_requested_at == NOW
    assert len(override_events(ready.bead)) == 1


def test_merge_now_makes_the_mr_due_so_the_fresh_check_runs_at_once(town, user):
    ready = waiting_mr(
        town,
        blocker=Blocker.READY,
        waiting_since=None,
        review_status="passed",
    )
    merge_request_merge_now(merge_request=ready, user=user, now=NOW)
    ready.refresh_from_db()
    assert ready.check_requested_at == NOW


@pytest.mark.parametrize(
    ("blocker", "says"),
    [
        (Blocker.CHECKS_FAILING, "Checks failing"),
        (Blocker.CHECKS_PENDING, "Checks pending"),
        (Blocker.CONFLICT, "Conflict"),
        (Blocker.NONE, "Not checked yet"),
    ],
)
def test_merge_now_is_refused_unless_the_pr_is_ready(town, user, blocker, says):
    mr = waiting_mr(town, blocker=blocker, waiting_since=None)
    with pytest.raises(OverrideRefused, match=says):
        merge_request_merge_now(merge_request=mr, user=user, now=NOW)
    mr.refresh_from_db()
    assert (mr.merge_requested_at, mr.check_requested_at) == (None, None)
    assert not override_events(mr.bead)


def test_merge_now_is_refused_if_the_pr_stopped_being_ready_meanwhile(town, user):
    mr = waiting_mr(
        town,
        blocker=Blocker.READY,
        waiting_since=None,
        review_status="passed",
    )
    type(mr).objects.filter(pk=mr.pk).update(blocker=Blocker.CHECKS_FAILING)
    with pytest.raises(OverrideRefused, match="meanwhile"):
        merge_request_merge_now(merge_request=mr, user=user, now=NOW)
    mr.refresh_from_db()
    assert mr.merge_requested_at is None


def test_merge_now_is_refused_before_the_refinery_passed_the_mr(town, user):
    mr = waiting_mr(town, blocker=Blocker.READY, waiting_since=None)
    assert town.code_review and mr.review_status == "pending"
    with pytest.raises(OverrideRefused, match="refinery"):
        merge_request_merge_now(merge_request=mr, user=user, now=NOW)
    mr.refresh_from_db()
    assert mr.merge_requested_at is None


def test_merge_now_is_refused_for_a_terminal_mr(town, user):
    mr = waiting_mr(town, bead__status=BeadStatus.CLOSED, blocker=Blocker.MERGED)
    with pytest.raises(OverrideRefused, match="closed"):
        merge_request_merge_now(merge_request=mr, user=user)


def test_clear_awaiting_clears_the_flag_and_records_the_resolved_wait(town, user):
    mr = waiting_mr(town)
    merge_request_clear_awaiting(merge_request=mr, user=user, reason="approved on Slack", now=NOW)
    mr.refresh_from_db()
    assert (mr.awaiting_approval, mr.blocker, mr.waiting_since) == (False, "", None)
    resolved = TelemetryEvent.objects.get(name="pr.awaiting_approval_resolved")
    assert resolved.reason == "cleared_by_user"
    assert resolved.duration_ms == 3 * 3600 * 1000
    assert resolved.label == "REVIEW_REQUIRED"
    assert resolved.data == {"pr_url": PR, "reviewers": []}
    assert resolved.bead_id == mr.bead_id
    assert len(override_events(mr.bead)) == 1


def test_a_wait_ended_by_a_team_lead_records_whom_it_waited_on(town, user):
    mr = waiting_mr(town, requested_reviewers=["alice", "core-team"])
    merge_request_clear_awaiting(merge_request=mr, user=user, reason="approved on Slack", now=NOW)
    resolved = TelemetryEvent.objects.get(name="pr.awaiting_approval_resolved")
    assert resolved.data["reviewers"] == ["alice", "core-team"]

    failed = waiting_mr(town, requested_reviewers=["bob"], pr_url=PR.replace("7", "8"))
    merge_request_fail(merge_request=failed, user=user, reason="superseded", now=NOW)
    ended = TelemetryEvent.objects.get(name="pr.awaiting_approval_resolved", reason="mr_failed")
    assert ended.data["reviewers"] == ["bob"]


def test_clear_awaiting_also_forgets_the_merge_refusal_that_parked_the_pr(town, user):
    """Else the next check holds the PR at human_review again on the same refusal."""
    mr = waiting_mr(town)
    refusal = MergeAttempt.objects.create(
        merge_request=mr,
        created_at=NOW,
        head_sha="abc123",
        outcome="review_required",
        refusal_kind=Blocker.HUMAN_REVIEW,
        refusal_waits_on="-|",
    )
    type(mr).objects.filter(pk=mr.pk).update(
        merge_refusal=refusal, merge_refusal_waits_on="-|", merge_hold_from=NOW
    )
    mr.refresh_from_db()
    merge_request_clear_awaiting(merge_request=mr, user=user, now=NOW)
    mr.refresh_from_db()
    assert (mr.merge_refusal, mr.merge_refusal_waits_on, mr.merge_hold_from) == (None, "", None)


def test_clear_awaiting_is_refused_when_not_waiting(town, user):
    mr = waiting_mr(town, blocker=Blocker.READY)
    with pytest.raises(OverrideRefused, match="not awaiting"):
        merge_request_clear_awaiting(merge_request=mr, user=user)
    assert not TelemetryEvent.objects.exists()


def test_clear_awaiting_is_refused_once_the_mr_failed_so_one_wait_ends_once(town, user):
    mr = waiting_mr(town)
    merge_request_fail(merge_request=mr, user=user, reason="superseded", now=NOW)
    mr.refresh_from_db()
    assert mr.awaiting_approval, "failing keeps the PR snapshot"
    with pytest.raises(OverrideRefused, match="failed"):
        merge_request_clear_awaiting(merge_request=mr, user=user, now=NOW)
    assert TelemetryEvent.objects.filter(name="pr.awaiting_approval_resolved").count() == 1


def test_clear_awaiting_is_refused_for_the_failed_landing_mr_a_suppression_holds(town, user):
    _convoy, held = suppressed_convoy(town)
    with pytest.raises(OverrideRefused, match="End suppression"):
        merge_request_clear_awaiting(merge_request=held, user=user, now=NOW)
    held.refresh_from_db()
    assert held.awaiting_approval
    assert not TelemetryEvent.objects.exists()


def test_fail_mr_fails_the_bead_and_ends_its_wait(town, user):
    mr = waiting_mr(town)
    merge_request_fail(merge_request=mr, user=user, reason="wrong approach", now=NOW)
    mr.bead.refresh_from_db()
    mr.refresh_from_db()
    assert mr.bead.status == BeadStatus.FAILED
    assert mr.bead.failure_code == "failed_by_user"
    assert mr.is_active is False
    resolved = TelemetryEvent.objects.get(name="pr.awaiting_approval_resolved")
    assert resolved.reason == "mr_failed"
    kinds = set(BeadEvent.objects.filter(bead=mr.bead).values_list("kind", flat=True))
    assert {"status", "override"} <= kinds


def test_fail_mr_never_touches_a_terminal_bead(town, user):
    mr = waiting_mr(town, bead__status=BeadStatus.CLOSED, blocker="")
    with pytest.raises(OverrideRefused, match="terminal"):
        merge_request_fail(merge_request=mr, user=user)
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.CLOSED


def test_redispatch_puts_an_in_progress_issue_back_to_open_and_unhooks_its_agent(town, user):
    bead = BeadFactory(
        town=town,
        status=BeadStatus.IN_PROGRESS,
        dispatch_attempts=3,
        last_dispatch_attempt_at=NOW,
    )
    agent = AgentFactory(town=town, status=AgentStatus.WORKING, hooked_bead=bead)
    bead.assignee = agent
    bead.save()
    bead_redispatch(bead=bead, user=user, reason="agent wedged", now=NOW)
    bead.refresh_from_db()
    agent.refresh_from_db()
    assert bead.status == BeadStatus.OPEN
    assert (bead.dispatch_attempts, bead.last_dispatch_attempt_at, bead.assignee) == (0, None, None)
    assert agent.hooked_bead is None and agent.status == AgentStatus.IDLE
    kinds = list(BeadEvent.objects.filter(bead=bead).values_list("kind", flat=True))
    assert {"unhooked", "status", "override"} <= set(kinds)


def test_redispatch_of_an_open_bead_resets_attempts_only(town, user):
    bead = BeadFactory(town=town, status=BeadStatus.OPEN, dispatch_attempts=4)
    bead_redispatch(bead=bead, user=user, now=NOW)
    bead.refresh_from_db()
    assert bead.status == BeadStatus.OPEN and bead.dispatch_attempts == 0


@pytest.mark.parametrize("status", [BeadStatus.CLOSED, BeadStatus.FAILED])
def test_redispatch_never_reopens_a_terminal_bead(town, user, status):
    bead = BeadFactory(town=town, status=status, dispatch_attempts=5)
    with pytest.raises(OverrideRefused, match="never reopened"):
        bead_redispatch(bead=bead, user=user)
    bead.refresh_from_db()
    assert bead.status == status and bead.dispatch_attempts == 5


def test_redispatch_is_refused_for_an_escalation(town, user):
    bead = BeadFactory(town=town, type=BeadType.ESCALATION)
    with pytest.raises(OverrideRefused, match="escalation"):
        bead_redispatch(bead=bead, user=user)


def test_redispatch_is_neither_offered_nor_run_on_an_issue_in_review(town, user):
    # Its work is the merge request now: resetting the issue's attempts would do nothing.
    bead = BeadFactory(town=town, status=BeadStatus.IN_REVIEW, dispatch_attempts=2)
    override = OVERRIDES["bead_redispatch"]
    assert not override.available(bead)
    assert "in review" in override.refusal_for(bead)
    with pytest.raises(OverrideRefused, match="merge request carries the work"):
        bead_redispatch(bead=bead, user=user)
    bead.refresh_from_db()
    assert bead.status == BeadStatus.IN_REVIEW and bead.dispatch_attempts == 2


def test_end_suppression_clears_it_and_records_how_long_it_lasted(town, user):
    convoy = ConvoyFactory(town=town, status=ConvoyStatus.LANDING)
    landing = waiting_mr(
        town,
        landing_convoy=convoy,
        bead__status=BeadStatus.FAILED,
    )
    convoy.respawn_suppressed_since = NOW - timedelta(minutes=30)
    convoy.suppressed_landing_mr = landing
    convoy.suppressed_pr_url = PR
    convoy.suppressed_attempt = 3
    convoy.save()
    convoy_end_suppression(convoy=convoy, user=user, reason="reviewer is away", now=NOW)
    convoy.refresh_from_db()
    assert convoy.respawn_suppressed_since is None
    assert convoy.suppressed_landing_mr is None
    assert (convoy.suppressed_pr_url, convoy.suppressed_attempt) == ("", None)
    ended = TelemetryEvent.objects.get(name="reconciler.respawn_suppression_ended")
    assert ended.label == "by_user"
    assert ended.duration_ms == 30 * 60 * 1000
    assert ended.data == {"landing_mr": landing.pk, "pr_url": PR}
    audit = TelemetryEvent.objects.get(name="override.convoy_end_suppression")
    assert (audit.label, audit.reason, audit.convoy_id) == ("lead", "reviewer is away", convoy.pk)
    assert len(override_events(landing.bead)) == 1


def test_end_suppression_is_refused_when_nothing_is_suppressed(town, user):
    convoy = ConvoyFactory(town=town)
    with pytest.raises(OverrideRefused, match="not suppressed"):
        convoy_end_suppression(convoy=convoy, user=user)


def test_retry_landing_moves_a_failed_convoy_back_to_ready_to_land(town, user):
    convoy = ConvoyFactory(
        town=town,
        status=ConvoyStatus.FAILED,
        landing_attempts=5,
        failure_reason="landing_mr_exhausted",
    )
    convoy_retry_landing(convoy=convoy, user=user, now=NOW)
    convoy.refresh_from_db()
    assert convoy.status == ConvoyStatus.READY_TO_LAND
    assert (convoy.landing_attempts, convoy.failure_reason) == (0, "")
    audit = TelemetryEvent.objects.get(name="override.convoy_retry_landing")
    assert audit.data["previous_failure_reason"] == "landing_mr_exhausted"


@pytest.mark.parametrize("status", [ConvoyStatus.OPEN, ConvoyStatus.LANDED, ConvoyStatus.CLOSED])
def test_retry_landing_is_refused_unless_failed(town, user, status):
    convoy = ConvoyFactory(town=town, status=status, landing_attempts=2)
    with pytest.raises(OverrideRefused, match="Only a failed convoy"):
        convoy_retry_landing(convoy=convoy, user=user)
    convoy.refresh_from_db()
    assert convoy.status == status and convoy.landing_attempts == 2


def test_close_convoy_closes_it_once(town, user):
    convoy = ConvoyFactory(town=town, status=ConvoyStatus.OPEN)
    convoy_close(convoy=convoy, user=user, reason="dropped", now=NOW)
    convoy.refresh_from_db()
    assert convoy.status == ConvoyStatus.CLOSED and convoy.closed_at == NOW
    with pytest.raises(OverrideRefused, match="already closed"):
        convoy_close(convoy=convoy, user=user, reason="dropped")


def suppressed_convoy(town, *, status=ConvoyStatus.LANDING):
    convoy = ConvoyFactory(town=town, status=status)
    landing = waiting_mr(town, landing_convoy=convoy, bead__status=BeadStatus.FAILED)
    convoy.respawn_suppressed_since = NOW - timedelta(minutes=30)
    convoy.suppressed_landing_mr = landing
    convoy.suppressed_pr_url = PR
    convoy.suppressed_attempt = 3
    convoy.save()
    return convoy, landing


def test_close_convoy_ends_its_suppression_with_it(town, user):
    convoy, landing = suppressed_convoy(town)
    convoy_close(convoy=convoy, user=user, reason="dropped", now=NOW)
    convoy.refresh_from_db()
    assert convoy.status == ConvoyStatus.CLOSED
    assert (convoy.respawn_suppressed_since, convoy.suppressed_landing_mr) == (None, None)
    assert (convoy.suppressed_pr_url, convoy.suppressed_attempt) == ("", None)
    ended = TelemetryEvent.objects.get(name="reconciler.respawn_suppression_ended")
    assert (ended.label, ended.convoy_id, ended.bead_id) == ("by_user", convoy.pk, landing.bead_id)
    assert ended.duration_ms == 30 * 60 * 1000
    assert ended.data == {"landing_mr": landing.pk, "pr_url": PR}
    audit = TelemetryEvent.objects.get(name="override.convoy_close")
    assert audit.data["ended_suppression"] is True


def test_close_convoy_fails_its_landing_mr_in_flight_so_it_is_never_merged(town, user):
    convoy = ConvoyFactory(town=town, status=ConvoyStatus.LANDING)
    landing = waiting_mr(town, landing_convoy=convoy)
    convoy_close(convoy=convoy, user=user, reason="dropped", now=NOW)
    landing.bead.refresh_from_db()
    assert (landing.bead.status, landing.bead.failure_code) == (
        BeadStatus.FAILED,
        "convoy_closed",
    )
    resolved = TelemetryEvent.objects.get(name="pr.awaiting_approval_resolved")
    assert resolved.reason == "mr_failed"
    [failed] = BeadEvent.objects.filter(bead=landing.bead, kind="status")
    assert failed.actor == "user:lead", "the team lead failed it, not the reconciler"


def test_pause_and_resume_a_town(town, user):
    town_pause(town=town, user=user, reason="incident", now=NOW)
    town.refresh_from_db()
    assert town.paused
    with pytest.raises(OverrideRefused, match="already paused"):
        town_pause(town=town, user=user, reason="incident")
    town_resume(town=town, user=user, now=NOW)
    town.refresh_from_db()
    assert not town.paused
    with pytest.raises(OverrideRefused, match="not paused"):
        town_resume(town=town, user=user)
    names = list(TelemetryEvent.objects.order_by("id").values_list("name", "reason"))
    assert names == [("override.town_pause", "incident"), ("override.town_resume", "")]


def test_a_stale_copy_cannot_clear_a_wait_that_already_ended(town, user):
    """The reconciler resolved the wait between page load and the click."""
    mr = waiting_mr(town)
    type(mr).objects.filter(pk=mr.pk).update(blocker=Blocker.READY, waiting_since=None)
    with pytest.raises(OverrideRefused, match="meanwhile"):
        merge_request_clear_awaiting(merge_request=mr, user=user)
    assert not TelemetryEvent.objects.filter(name="pr.awaiting_approval_resolved").exists()


def test_gc_keeps_the_override_audit_but_prunes_other_old_telemetry(town, user):
    from gastown.reconciler.tick import prune

    town_pause(town=town, user=user, reason="incident", now=NOW)
    TelemetryEvent.objects.create(name="pr.merged", town=town)
    TelemetryEvent.objects.create(name="convoy.transition", town=town, label="ready_to_land")
    TelemetryEvent.objects.update(created_at=NOW - timedelta(days=400))
    prune(NOW)
    assert sorted(TelemetryEvent.objects.values_list("name", flat=True)) == [
        "convoy.transition",
        "override.town_pause",
    ]


@pytest.mark.parametrize("reason", ["", "   "])
def test_destructive_overrides_are_refused_without_a_reason(town, user, reason):
    mr = waiting_mr(town)
    convoy = ConvoyFactory(town=town, status=ConvoyStatus.OPEN)
    with pytest.raises(OverrideRefused, match="reason is required to fail a merge request"):
        merge_request_fail(merge_request=mr, user=user, reason=reason, now=NOW)
    with pytest.raises(OverrideRefused, match="reason is required to close a convoy"):
        convoy_close(convoy=convoy, user=user, reason=reason, now=NOW)
    with pytest.raises(OverrideRefused, match="reason is required to pause a town"):
        town_pause(town=town, user=user, reason=reason, now=NOW)
    mr.bead.refresh_from_db()
    convoy.refresh_from_db()
    town.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS
    assert convoy.status == ConvoyStatus.OPEN
    assert not town.paused
    assert not TelemetryEvent.objects.exists()


@pytest.mark.broker("orm")  # reads the ORM broker's table
@pytest.mark.parametrize("name", ["merge_request_recheck", "merge_request_merge_now"])
def test_an_override_that_promises_a_check_queues_it_when_it_commits(
    town, user, settings, django_capture_on_commit_callbacks, name
):
    from django_q.models import OrmQ

    from gastown.services.overrides import OVERRIDES

    settings.GASTOWN_ENQUEUE_TASKS = True
    town.code_review = False
    town.save()
    mr = waiting_mr(town, blocker=Blocker.READY, waiting_since=None)
    with django_capture_on_commit_callbacks(execute=True):
        override_run(override=OVERRIDES[name], target=mr, user=user)
        assert not OrmQ.objects.exists(), "nothing is queued before the commit"
    [queued] = OrmQ.objects.all()
    assert (queued.task["func"], queued.task["args"]) == (
        "gastown.tasks.check_prs_task",
        (town.pk,),
    )


@pytest.mark.broker("orm")
def test_clearing_a_wait_queues_no_check_that_would_find_it_waiting_again(
    town, user, settings, django_capture_on_commit_callbacks
):
    from django_q.models import OrmQ

    settings.GASTOWN_ENQUEUE_TASKS = True
    mr = waiting_mr(town)
    with django_capture_on_commit_callbacks(execute=True):
        merge_request_clear_awaiting(merge_request=mr, user=user, now=NOW)
    assert not OrmQ.objects.exists()
