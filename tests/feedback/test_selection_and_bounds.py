"""Which MRs are checked (R1), claims between workers, bounded queries and requests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from beads.audit import Actor
from beads.merge_requests import merge_request_transition
from beads.models import BeadStatus, Blocker, MergeRequest
from gastown.feedback.checks import _claim
from gastown.feedback.selectors import due_for_check, merge_requests_due
from gastown.models import Convoy
from tests.factories import ConvoyFactory, MergeRequestFactory, RigFactory
from tests.feedback.conftest import REPO, events, make_mr, reload, rework_beads, run


def test_due_when_never_checked_after_the_poll_interval_or_when_asked(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO)
    never, recent, old, asked = (make_mr(fake_github, rig) for _ in range(4))
    no_pr = MergeRequestFactory(bead__town=town, bead__rig=rig)
    closed = make_mr(fake_github, rig)
    merge_request_transition(merge_request=closed, transition="merge", actor=Actor("test"))
    now = clock.now
    MergeRequest.objects.filter(pk=recent.pk).update(last_checked_at=now - timedelta(seconds=30))
    MergeRequest.objects.filter(pk=old.pk).update(last_checked_at=now - timedelta(seconds=60))
    MergeRequest.objects.filter(pk=asked.pk).update(
        last_checked_at=now - timedelta(seconds=5), check_requested_at=now
    )

    due = merge_requests_due(town=town, now=now)

    assert [mr.pk for mr in due] == [asked.pk, never.pk, old.pk]
    assert no_pr.pk not in {mr.pk for mr in due}


def test_a_rig_poll_interval_overrides_the_town_s(fake_github, town, clock):
    fake_github.create_repo(REPO)
    slow_rig = RigFactory(town=town, repo=REPO, poll_interval_seconds=300)
    mr = make_mr(fake_github, slow_rig)
    MergeRequest.objects.filter(pk=mr.pk).update(last_checked_at=clock.now - timedelta(minutes=2))
    assert merge_requests_due(town=town, now=clock.now) == []
    MergeRequest.objects.filter(pk=mr.pk).update(last_checked_at=clock.now - timedelta(minutes=5))
    assert [m.pk for m in merge_requests_due(town=town, now=clock.now)] == [mr.pk]


def test_a_failed_landing_mr_held_by_a_suppression_is_watched_but_never_moved(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO, required_approvals=1)
    convoy = ConvoyFactory(town=town, rig=rig)
    pull = fake_github.create_pr(REPO, head=convoy.feature_branch)
    landing = make_mr(fake_github, rig, number=pull.number)
    MergeRequest.objects.filter(pk=landing.pk).update(landing_convoy=convoy, source=None)
    merge_request_transition(
        merge_request=landing, transition="fail", actor=Actor("test"), failure_code="x"
    )
    assert merge_requests_due(town=town, now=clock.now) == []
    convoy.respawn_suppressed_since = clock.now
    convoy.suppressed_landing_mr = landing
    convoy.save()

    run(clock)
    landing = reload(landing)
    assert landing.blocker == Blocker.HUMAN_REVIEW
    assert landing.snapshot_at == clock.now

    fake_github.approve(REPO, pull.number)
    clock.advance(minutes=1)
    run(clock)
    landing = reload(landing)
    assert landing.blocker == Blocker.READY  # the reconciler adopts the PR from here
    assert landing.bead.status == BeadStatus.FAILED
    assert fake_github.merge_calls(REPO, pull.number) == []

    fake_github.merge_externally(REPO, pull.number)
    clock.advance(minutes=1)
    run(clock)
    landing = reload(landing)
    assert landing.blocker == Blocker.MERGED
    assert landing.bead.status == BeadStatus.FAILED
    assert events("pr.awaiting_approval_detected") == []


def test_a_suppression_left_on_a_closed_convoy_is_not_watched(fake_github, town, rig, clock):
    fake_github.create_repo(REPO, required_approvals=1)
    convoy = ConvoyFactory(town=town, rig=rig, status="closed")
    landing = make_mr(fake_github, rig)
    MergeRequest.objects.filter(pk=landing.pk).update(landing_convoy=convoy, source=None)
    merge_request_transition(
        merge_request=landing, transition="fail", actor=Actor("test"), failure_code="x"
    )
    # Data from before closing a convoy ended its suppression.
    Convoy.objects.filter(pk=convoy.pk).update(
        respawn_suppressed_since=clock.now, suppressed_landing_mr=landing
    )
    assert merge_requests_due(town=town, now=clock.now) == []


def test_a_second_worker_claims_nothing_the_first_one_checked(fake_github, town, rig, clock):
    town.auto_merge = False
    town.save()
    fake_github.create_repo(REPO)
    mrs = [make_mr(fake_github, rig) for _ in range(3)]
    read_by_second, shortest, _ = due_for_check(town=town, now=clock.now)
    assert len(read_by_second) == 3

    run(clock)  # the first worker
    later = clock.now + timedelta(seconds=2)
    assert _claim(read_by_second, now=later, shortest=shortest) == []
    assert all(reload(mr).last_checked_at == clock.now for mr in mrs)


def _queries_of_two_passes(fake_github, town, rig, clock, count):
    fake_github.reset()
    fake_github.create_repo(REPO, required_approvals=1)
    MergeRequest.objects.all().delete()
    for _ in range(count):
        make_mr(fake_github, rig)
    with CaptureQueriesContext(connection) as first:
        run(clock)
    clock.advance(minutes=1)
    with CaptureQueriesContext(connection) as steady:
        summary = run(clock)
    assert summary.checked == count
    clock.advance(minutes=1)
    return len(first), len(steady), len(fake_github.graphql_requests())


def test_query_count_does_not_grow_with_the_number_of_mrs(fake_github, town, rig, clock):
    town.auto_merge = False
    town.save()
    few = _queries_of_two_passes(fake_github, town, rig, clock, 5)
    many = _queries_of_two_passes(fake_github, town, rig, clock, 50)
    first_few, steady_few, requests_few = few
    first_many, steady_many, requests_many = many
    assert steady_many == steady_few
    # The first pass stores 50 new snapshots with one bulk update; SQLite's 999-parameter
    # limit splits it in two at ~45 rows (PostgreSQL does not).
    assert first_many - first_few <= 1
    assert (requests_few, requests_many) == (2, 4)  # one, then two GraphQL batches per pass
    # 12, plus the token budget's four reads (budget.py) and the look for anything due.
    assert steady_few <= 17, steady_few
    assert len(events("pr.awaiting_approval_detected")) == 55


def test_github_unknown_neither_begins_nor_ends_a_wait(fake_github, town, rig, clock):
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock)
    waiting_since = reload(mr).waiting_since
    # A value GitHub added later reads as unknown.
    fake_github.add_fault("rewrite_enum", path="/graphql", field="state", value="QUEUED")
    clock.advance(minutes=1)
    run(clock)
    assert reload(mr).blocker == Blocker.UNKNOWN
    assert not reload(mr).awaiting_approval
    clock.advance(minutes=1)
    run(clock)
    mr = reload(mr)
    assert (mr.blocker, mr.waiting_since) == (Blocker.HUMAN_REVIEW, waiting_since)
    assert len(events("pr.awaiting_approval_detected")) == 1
    assert events("pr.awaiting_approval_resolved") == []


def test_behind_uses_update_branch_when_the_rig_allows_it(fake_github, town, rig, clock):
    town.auto_merge = False
    town.save()
    rig.allow_update_branch = True
    rig.save()
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.set_pr(REPO, mr.pr_number, behind=True)
    first_head = fake_github.pull(REPO, mr.pr_number).head_sha

    def updates():
        return [r for r in fake_github.requests if r.path.endswith("/update-branch")]

    for _ in range(3):
        run(clock)
        clock.advance(minutes=1)
    assert len(updates()) == 1
    mr = reload(mr)
    assert mr.last_rework_cause == f"behind:{first_head}"
    assert mr.blocker == Blocker.READY  # GitHub merged the base in: a new head
    assert mr.head_sha != first_head

    fake_github.set_pr(REPO, mr.pr_number, behind=True)  # the base moved again
    for _ in range(3):
        run(clock)
        clock.advance(minutes=1)
    assert len(updates()) == 2
    assert rework_beads(mr) == []


def test_behind_and_approved_asks_for_rework_rather_than_dismiss_the_approval(
    fake_github, town, rig, clock
):
    rig.allow_update_branch = True
    rig.save()
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    fake_github.approve(REPO, mr.pr_number)
    fake_github.set_pr(REPO, mr.pr_number, behind=True)
    for _ in range(3):
        run(clock)
        clock.advance(minutes=1)
    assert not [r for r in fake_github.requests if r.path.endswith("/update-branch")]
    assert len(rework_beads(mr)) == 1


def test_behind_asks_for_rework_when_update_branch_is_not_allowed(fake_github, town, rig, clock):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.set_pr(REPO, mr.pr_number, behind=True)
    for _ in range(3):
        run(clock)
        clock.advance(minutes=1)
    assert not [r for r in fake_github.requests if r.path.endswith("/update-branch")]
    assert reload(mr).last_rework_cause.startswith("behind:")


def test_blocking_threads_ask_for_rework_once_per_count(fake_github, town, rig, clock):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.add_thread(REPO, mr.pr_number, body="Why?")
    run(clock)
    clock.advance(minutes=1)
    run(clock)
    assert reload(mr).last_rework_cause.endswith(":1")
    fake_github.add_thread(REPO, mr.pr_number, body="And this?")
    clock.advance(minutes=1)
    run(clock)
    assert reload(mr).last_rework_cause.endswith(":2")
    assert fake_github.merge_calls(REPO, mr.pr_number) == []


def test_check_prs_command_prints_the_summary_line(fake_github, town, rig, clock, capsys):
    fake_github.create_repo(REPO)
    make_mr(fake_github, rig)
    call_command("check_prs", "--town", town.slug)
    out = capsys.readouterr().out
    assert out.startswith("check_prs: 1 towns (0 paused), 1 due, 1 checked")
    assert "1/1 merged" in out


def test_the_task_runs_the_same_check_for_one_town(fake_github, town, rig, clock):
    from gastown.tasks import check_prs_task

    other = RigFactory(repo=REPO)  # another town's MR is not checked
    fake_github.create_repo(REPO)
    mine, theirs = make_mr(fake_github, rig), make_mr(fake_github, other)
    line = check_prs_task(town.pk)
    assert line.startswith("check_prs: 1 towns")
    assert reload(mine).last_checked_at is not None
    assert reload(theirs).last_checked_at is None


@pytest.mark.broker("orm")  # reads the ORM broker's table
def test_a_check_that_moves_something_asks_the_reconciler_at_once(
    fake_github, repo, rig, clock, settings
):
    from django_q.models import OrmQ

    settings.GASTOWN_ENQUEUE_TASKS = True
    make_mr(fake_github, rig)
    run(clock)  # the first observation of the PR changes its MR
    assert [(q.task["func"], q.task["args"]) for q in OrmQ.objects.all()] == [
        ("gastown.tasks.reconcile_town_task", (rig.town_id,))
    ]
    OrmQ.objects.all().delete()
    clock.advance(minutes=2)
    run(clock)  # nothing changed on GitHub: nothing to tell the reconciler
    assert not OrmQ.objects.exists()
