"""R4, R5, R6, R7 and W, and the guarantee of domain.md §3: no rule fails, re-dispatches or
replaces an MR whose PR waits on a human, on checks or on GitHub."""

from datetime import timedelta

import pytest

from beads.models import Bead, BeadEvent, BeadStatus, Blocker, MergeRequest, ReviewStatus
from gastown.models import Agent, AgentStatus, TelemetryEvent
from gastown.services.reports import refinery_report_review
from tests.factories import AgentFactory, MergeRequestFactory, RigFactory

pytestmark = pytest.mark.django_db
PR = "https://github.com/acme/app/pull/1"


def watched(mr, clock):
    """A successful check of its PR just now (what the feedback check records)."""
    MergeRequest.objects.filter(pk=mr.pk).update(last_successful_check_at=clock.now)


def waiting_mr(rig, clock, **kwargs):
    defaults = dict(
        bead__town=rig.town,
        bead__rig=rig,
        bead__status=BeadStatus.IN_PROGRESS,
        pr_url="https://github.com/acme/app/pull/7",
        pr_state="OPEN",
        blocker=Blocker.HUMAN_REVIEW,
        review_decision="REVIEW_REQUIRED",
        waiting_since=clock.now,
        last_checked_at=clock.now,
        last_successful_check_at=clock.now,
    )
    defaults.update(kwargs)
    return MergeRequestFactory(**defaults)


def test_code_review_off_moves_every_open_mr_to_in_progress(tick):
    rig = RigFactory(code_review=False)
    mrs = [
        MergeRequestFactory(
            bead__town=rig.town, bead__rig=rig, pr_url=f"https://github.com/a/b/pull/{n}"
        )
        for n in range(3)
    ]
    tick(rig.town)
    assert {Bead.objects.get(pk=mr.bead_id).status for mr in mrs} == {BeadStatus.IN_PROGRESS}
    assert not Agent.objects.filter(role="refinery").exists()


def test_code_review_on_hands_the_oldest_open_mr_to_the_rigs_refinery(tick):
    rig = RigFactory()
    first = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    second = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    tick(rig.town)
    refinery = Agent.objects.get(role="refinery", rig=rig)
    assert refinery.hooked_bead_id == first.bead_id
    assert Bead.objects.get(pk=second.bead_id).status == BeadStatus.OPEN


def test_refinery_is_redispatched_with_backoff_until_it_reviews(tick, clock):
    rig = RigFactory()
    mr = MergeRequestFactory(
        bead__town=rig.town, bead__rig=rig, pr_url="https://github.com/a/b/pull/1"
    )
    tick(rig.town)
    assert Bead.objects.get(pk=mr.bead_id).dispatch_attempts == 1
    clock.advance(seconds=10)
    tick(rig.town)
    assert Bead.objects.get(pk=mr.bead_id).dispatch_attempts == 1
    clock.advance(seconds=25)
    result = tick(rig.town)
    # R1 too: its PR (read from pr_url) is due for a check.
    assert [a.rule for a in result.applied if a.rule != "R1"] == ["R6"]
    assert Bead.objects.get(pk=mr.bead_id).dispatch_attempts == 2


def test_r7_releases_a_refinery_hooked_to_a_waiting_mr_so_the_queue_moves_on(tick, clock):
    rig = RigFactory()
    refinery = AgentFactory(town=rig.town, rig=rig, role="refinery", name="ref")
    waiting = waiting_mr(rig, clock)
    Agent.objects.filter(pk=refinery.pk).update(hooked_bead=waiting.bead)
    next_mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    tick(rig.town)
    refinery.refresh_from_db()
    assert refinery.hooked_bead_id is None
    tick(rig.town)
    refinery.refresh_from_db()
    assert refinery.hooked_bead_id == next_mr.bead_id
    waiting.bead.refresh_from_db()
    assert waiting.bead.status == BeadStatus.IN_PROGRESS
    assert waiting.bead.dispatch_attempts == 0


@pytest.mark.parametrize("blocker", [Blocker.HUMAN_REVIEW, Blocker.CHECKS_PENDING, Blocker.UNKNOWN])
def test_waiting_mr_is_never_failed_redispatched_or_replaced_over_days(tick, clock, blocker):
    rig = RigFactory()
    mr = waiting_mr(rig, clock, blocker=blocker)
    refinery = AgentFactory(town=rig.town, rig=rig, role="refinery", name="ref")
    Agent.objects.filter(pk=refinery.pk).update(hooked_bead=mr.bead)
    events_before = BeadEvent.objects.filter(bead_ref=mr.bead_id).count()
    for _ in range(3 * 24):
        clock.advance(hours=1)
        # The PR is watched successfully: the feedback check keeps confirming the wait.
        type(mr).objects.filter(pk=mr.pk).update(
            last_checked_at=clock.now, last_successful_check_at=clock.now
        )
        tick(rig.town)
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS
    assert mr.bead.dispatch_attempts == 0
    assert Bead.objects.filter(type="merge_request").count() == 1
    new_events = BeadEvent.objects.filter(bead_ref=mr.bead_id).exclude(kind="unhooked")
    assert new_events.count() == events_before


def test_human_wait_is_never_an_orphaned_review_even_when_checks_break(tick, clock):
    rig = RigFactory()
    mr = waiting_mr(rig, clock)
    clock.advance(hours=10)  # no successful check for ten hours
    tick(rig.town)
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS


def test_unwatched_pr_fails_as_orphaned_review_after_thirty_minutes(tick, clock):
    rig = RigFactory(code_review=False)
    mr = waiting_mr(rig, clock, blocker=Blocker.READY, last_successful_check_at=None)
    clock.advance(minutes=29)
    tick(rig.town)
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS
    clock.advance(minutes=2)
    tick(rig.town)
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.FAILED
    assert mr.bead.failure_code == "orphaned_review"


def test_town_level_github_trouble_fails_no_mr(tick, clock):
    rig = RigFactory(code_review=False)
    rig.town.github_blocked_until = clock.now + timedelta(hours=5)
    rig.town.save()
    mr = waiting_mr(rig, clock, blocker=Blocker.READY)
    clock.advance(hours=4)
    tick(rig.town)
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS


def test_long_wait_raises_one_escalation_naming_the_reviewers(tick, clock):
    rig = RigFactory()
    mr = waiting_mr(rig, clock, requested_reviewers=["alice", "acme/security"])
    clock.advance(hours=23)
    tick(rig.town)
    assert not Bead.objects.filter(type="escalation").exists()
    for _ in range(5):
        clock.advance(hours=1)
        tick(rig.town)
    escalation = Bead.objects.get(type="escalation")
    assert mr.pr_url in escalation.title
    assert "alice, acme/security" in escalation.body


def test_due_mrs_request_one_feedback_check(tick, clock):
    rig = RigFactory()
    waiting_mr(rig, clock)
    assert [a.kind for a in tick(rig.town).applied] == []
    clock.advance(seconds=61)
    assert [a.kind for a in tick(rig.town).applied] == ["RequestFeedbackCheck"]


def test_idle_agents_are_removed_after_a_day(tick, clock):
    agent = AgentFactory(status=AgentStatus.IDLE)
    busy = AgentFactory(town=agent.town, rig=agent.rig, status=AgentStatus.WORKING)
    clock.advance(hours=25)
    tick(agent.town)
    assert list(Agent.objects.all()) == [busy]


def test_mr_without_a_pr_gets_one_opened_through_github(tick, fake_github):
    rig = RigFactory(repo="acme/app")
    fake_github.create_repo("acme/app")
    fake_github.create_branch("acme/app", "polecat/fix-login")
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, branch="polecat/fix-login")
    tick(rig.town)
    mr.refresh_from_db()
    assert mr.pr_url.startswith("https://github.com/acme/app/pull/")
    assert mr.pr_number is not None
    assert Agent.objects.get(role="refinery").hooked_bead_id == mr.bead_id


def test_mr_whose_pr_cannot_be_opened_goes_back_to_the_queue(tick, fake_github):
    rig = RigFactory(repo="acme/missing")
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig)
    tick(rig.town)
    mr.refresh_from_db()
    assert mr.pr_url == ""
    assert mr.last_error
    assert mr.bead.status == BeadStatus.OPEN
    assert Agent.objects.get(role="refinery").hooked_bead_id is None


def test_mr_fails_when_its_refinery_never_reviews_past_max_attempts(tick, clock):
    rig = RigFactory(max_dispatch_attempts=2)
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    for _ in range(4):
        watched(mr, clock)  # its PR is watched: R4 has no reason to fail it
        tick(rig.town)
        clock.advance(minutes=15)
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.FAILED
    assert mr.bead.failure_code == "review_dispatch_exhausted"
    assert Agent.objects.get(role="refinery").hooked_bead_id is None


def test_a_second_long_wait_of_the_same_mr_is_escalated_again(tick, clock):
    rig = RigFactory()
    mr = waiting_mr(rig, clock)
    clock.advance(hours=25)
    tick(rig.town)
    Bead.objects.filter(type="escalation").update(status=BeadStatus.CLOSED)
    # The wait ended (approved, then a new push asked for a new approval): a new wait.
    clock.advance(hours=1)
    type(mr).objects.filter(pk=mr.pk).update(waiting_since=clock.now)
    clock.advance(hours=23)
    tick(rig.town)
    assert Bead.objects.filter(type="escalation").count() == 1
    clock.advance(hours=2)
    tick(rig.town)
    tick(rig.town)
    assert Bead.objects.filter(type="escalation").count() == 2


# One guard for every refinery dispatch (R5 and R6): pause, breaker, back-off, max attempts.


def hooked_refinery(rig, clock, **bead):
    """An MR its idle refinery has been dispatched to once, an hour ago, without a review."""
    defaults = dict(
        status=BeadStatus.IN_PROGRESS,
        dispatch_attempts=1,
        last_dispatch_attempt_at=clock.now - timedelta(hours=1),
    )
    defaults.update(bead)
    mr = MergeRequestFactory(
        bead__town=rig.town,
        bead__rig=rig,
        pr_url=PR,
        **{f"bead__{k}": v for k, v in defaults.items()},
    )
    refinery = AgentFactory(town=rig.town, rig=rig, role="refinery", name="ref")
    Agent.objects.filter(pk=refinery.pk).update(hooked_bead=mr.bead)
    return mr


def refinery_dispatches(result):
    return [a.rule for a in result.applied if a.kind == "DispatchRefinery"]


def open_breaker(town):
    TelemetryEvent.objects.bulk_create(
        TelemetryEvent(town=town, name="agent.dispatch_failed") for _ in range(20)
    )


def test_paused_town_does_not_redispatch_an_idle_refinery(tick, clock):
    rig = RigFactory(town__paused=True)
    mr = hooked_refinery(rig, clock)
    assert refinery_dispatches(tick(rig.town)) == []
    assert Bead.objects.get(pk=mr.bead_id).dispatch_attempts == 1
    type(rig.town).objects.filter(pk=rig.town_id).update(paused=False)
    assert refinery_dispatches(tick(rig.town)) == ["R6"]


def test_open_breaker_stops_the_refinery_redispatch(tick, clock):
    rig = RigFactory()
    mr = hooked_refinery(rig, clock)
    open_breaker(rig.town)
    assert refinery_dispatches(tick(rig.town)) == []
    assert Bead.objects.get(pk=mr.bead_id).dispatch_attempts == 1


def test_paused_town_hands_no_mr_to_the_refinery(tick):
    rig = RigFactory(town__paused=True)
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    assert refinery_dispatches(tick(rig.town)) == []
    assert Bead.objects.get(pk=mr.bead_id).status == BeadStatus.OPEN


def test_open_breaker_hands_no_mr_to_the_refinery(tick):
    rig = RigFactory()
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    open_breaker(rig.town)
    assert refinery_dispatches(tick(rig.town)) == []
    assert Bead.objects.get(pk=mr.bead_id).status == BeadStatus.OPEN


def test_refused_refinery_notifications_follow_the_backoff_schedule(tick, clock, runtime):
    runtime.status = 503
    rig = RigFactory()
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    start, attempts_at, attempts = clock.now, [], 0
    while clock.now - start < timedelta(minutes=20):
        tick(rig.town)
        now_attempts = Bead.objects.get(pk=mr.bead_id).dispatch_attempts
        if now_attempts > attempts:
            attempts_at.append(int((clock.now - start).total_seconds()))
            attempts = now_attempts
        clock.advance(seconds=10)
    # 30 s, 60 s, 2 min, 5 min between attempts; the fifth attempt gets its 10 min too.
    assert attempts_at == [0, 30, 90, 210, 510]
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.FAILED
    assert mr.bead.failure_code == "review_dispatch_exhausted"
    assert mr.bead.closed_at - start >= timedelta(seconds=510 + 600)


def test_open_mr_with_a_pr_waits_for_its_backoff(tick, clock):
    # An agent's failure report put it back to `open` after two dispatches.
    rig = RigFactory()
    mr = MergeRequestFactory(
        bead__town=rig.town,
        bead__rig=rig,
        bead__dispatch_attempts=2,
        bead__last_dispatch_attempt_at=clock.now,
        pr_url=PR,
    )
    clock.advance(seconds=59)
    assert refinery_dispatches(tick(rig.town)) == []
    clock.advance(seconds=1)
    assert refinery_dispatches(tick(rig.town)) == ["R5"]
    assert Bead.objects.get(pk=mr.bead_id).dispatch_attempts == 3


def test_open_mr_with_a_pr_fails_past_max_attempts(tick, clock):
    rig = RigFactory(max_dispatch_attempts=2)
    mr = MergeRequestFactory(
        bead__town=rig.town,
        bead__rig=rig,
        bead__dispatch_attempts=2,
        bead__last_dispatch_attempt_at=clock.now - timedelta(hours=1),
        pr_url=PR,
    )
    assert refinery_dispatches(tick(rig.town)) == []
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.FAILED
    assert mr.bead.failure_code == "review_dispatch_exhausted"


@pytest.mark.parametrize("blocker", [Blocker.CHECKS_PENDING, Blocker.UNKNOWN])
def test_exhausted_review_dispatch_never_fails_an_mr_whose_pr_waits(tick, clock, blocker):
    rig = RigFactory(max_dispatch_attempts=2)
    mr = MergeRequestFactory(
        bead__town=rig.town,
        bead__rig=rig,
        bead__status=BeadStatus.IN_PROGRESS,
        bead__dispatch_attempts=2,
        bead__last_dispatch_attempt_at=clock.now - timedelta(hours=1),
        pr_url=PR,
        pr_state="OPEN",
        blocker=blocker,
    )
    for _ in range(5):
        tick(rig.town)
        clock.advance(minutes=30)
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS


def test_an_mr_that_waited_on_a_human_three_times_is_still_reviewed(tick, clock):
    rig = RigFactory(max_dispatch_attempts=2)
    mr = MergeRequestFactory(bead__town=rig.town, bead__rig=rig, pr_url=PR)
    for _ in range(3):
        tick(rig.town)
        assert Agent.objects.get(role="refinery").hooked_bead_id == mr.bead_id
        # Before the refinery answers, the PR starts waiting on a human: R7 releases it.
        MergeRequest.objects.filter(pk=mr.pk).update(
            blocker=Blocker.HUMAN_REVIEW, waiting_since=clock.now
        )
        watched(mr, clock)
        clock.advance(minutes=10)
        tick(rig.town)
        assert Agent.objects.get(role="refinery").hooked_bead_id is None
        clock.advance(hours=2)
        MergeRequest.objects.filter(pk=mr.pk).update(blocker=Blocker.READY)
        watched(mr, clock)
    tick(rig.town)
    clock.advance(seconds=10)
    tick(rig.town)
    refinery = Agent.objects.get(role="refinery")
    assert refinery.hooked_bead_id == mr.bead_id
    refinery_report_review(agent=refinery, merge_request=mr, passed=True, now=clock.now)
    clock.advance(minutes=15)
    tick(rig.town)
    mr.refresh_from_db()
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.IN_PROGRESS
    assert mr.review_status == ReviewStatus.PASSED


def test_r7_releases_a_refinery_hooked_to_a_terminal_mr(tick, clock):
    rig = RigFactory()
    mr = hooked_refinery(rig, clock, status=BeadStatus.FAILED, failure_code="x")
    result = tick(rig.town)
    assert [(a.rule, a.kind) for a in result.applied] == [("R7", "UnhookAgent")]
    assert Agent.objects.get(role="refinery").hooked_bead_id is None
    mr.bead.refresh_from_db()
    assert mr.bead.status == BeadStatus.FAILED
    assert mr.bead.dispatch_attempts == 1
