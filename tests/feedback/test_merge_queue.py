"""A base branch that requires GitHub's merge queue (domain.md §5): a ready PR is enqueued
with the head it was checked at, never merged directly and never read as waiting on a human;
the queue merges it or drops it, and a drop asks for rework once per cause."""

from __future__ import annotations

import pytest

from beads.models import Bead, BeadStatus, BeadType, Blocker, MergeAttempt
from beads.sentences import merge_request_status
from scm.client import GitHubClient
from tests.feedback.conftest import (
    REPO,
    escalations,
    events,
    make_mr,
    reload,
    rework_beads,
    run,
)


@pytest.fixture
def queue_repo(fake_github):
    return fake_github.create_repo(REPO, require_merge_queue=True)


def test_ready_pr_on_a_queue_branch_is_enqueued_not_merged(fake_github, queue_repo, rig, clock):
    mr = make_mr(fake_github, rig)
    head = fake_github.pull(REPO, mr.pr_number).head_sha

    summary = run(clock)

    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    assert fake_github.merge_queue(REPO) == [mr.pr_number]
    assert [r.operation for r in fake_github.graphql_requests()][-1] == "EnqueuePullRequest"
    mr = reload(mr)
    assert mr.blocker == Blocker.QUEUED
    assert mr.blocker_detail == "in the merge queue of main (awaiting checks)"
    assert mr.queue_position == 1
    assert merge_request_status(merge_request=mr).text == "queued for merge, position 1"
    assert not mr.awaiting_approval and mr.waiting_since is None
    [attempt] = MergeAttempt.objects.filter(merge_request=mr)
    assert (attempt.method, attempt.outcome, attempt.head_sha) == ("queue", "enqueued", head)
    assert summary.merged == 0 and events("pr.merge_refused") == []

    # Queued: later checks show the entry and enqueue nothing more.
    for _ in range(3):
        clock.advance(minutes=1)
        run(clock)
    assert fake_github.merge_queue(REPO) == [mr.pr_number]
    assert MergeAttempt.objects.filter(merge_request=mr).count() == 1
    assert reload(mr).blocker == Blocker.QUEUED


def test_the_second_queued_pr_shows_its_position(fake_github, queue_repo, rig, clock):
    first, second = make_mr(fake_github, rig), make_mr(fake_github, rig)
    run(clock)
    clock.advance(minutes=1)
    run(clock)
    details = sorted(
        (reload(mr).queue_position, reload(mr).blocker_detail) for mr in (first, second)
    )
    assert details == [
        (1, "in the merge queue of main (awaiting checks)"),
        (2, "in the merge queue of main (queued)"),
    ]
    assert sorted(
        merge_request_status(merge_request=reload(mr)).text for mr in (first, second)
    ) == [
        "queued for merge, position 1",
        "queued for merge, position 2",
    ]

    # The head of the queue merges: the second moves up at the next check.
    fake_github.advance_merge_queue(REPO, result="merge")
    clock.advance(minutes=1)
    run(clock)
    moved = max((first, second), key=lambda mr: mr.pr_number)
    assert reload(moved).queue_position == 1
    assert merge_request_status(merge_request=reload(moved)).text == "queued for merge, position 1"


def test_a_pr_the_queue_merges_closes_its_merge_request(fake_github, queue_repo, rig, clock):
    mr = make_mr(fake_github, rig)
    run(clock)
    fake_github.advance_merge_queue(REPO, result="merge")
    clock.advance(minutes=1)
    summary = run(clock)

    mr = reload(mr)
    assert summary.closed == 1
    assert mr.blocker == Blocker.MERGED and mr.bead.status == BeadStatus.CLOSED
    assert mr.source.status == BeadStatus.CLOSED
    assert fake_github.merge_calls(REPO, mr.pr_number) == []


@pytest.mark.parametrize(
    ("result", "blocker", "cause"),
    [
        ("fail_checks", Blocker.CHECKS_FAILING, "checks_failing"),
        ("conflict", Blocker.CONFLICT, "conflict"),
    ],
)
def test_a_pr_the_queue_drops_gets_one_rework_and_is_not_enqueued_again(
    fake_github, queue_repo, rig, clock, result, blocker, cause
):
    mr = make_mr(fake_github, rig)
    head = fake_github.pull(REPO, mr.pr_number).head_sha
    run(clock)
    fake_github.advance_merge_queue(REPO, result=result)

    for _ in range(5):
        clock.advance(minutes=1)
        run(clock)

    mr = reload(mr)
    assert mr.blocker == blocker
    assert fake_github.merge_queue(REPO) == []
    [rework] = rework_beads(mr)
    assert "merge queue dropped" in rework.title
    assert mr.rework_causes == [f"merge_queue_dropped:{cause}:{head}"]
    assert MergeAttempt.objects.filter(merge_request=mr).count() == 1  # no loop
    assert fake_github.merge_calls(REPO, mr.pr_number) == []

    # A fix pushed: the new head is enqueued again.
    fake_github.push(REPO, mr.pr_number)
    clock.advance(minutes=1)
    run(clock)
    assert fake_github.merge_queue(REPO) == [mr.pr_number]
    assert reload(mr).blocker == Blocker.QUEUED


def test_merge_refused_for_the_merge_queue_enqueues_instead_of_waiting_on_a_human(
    fake_github, rig, clock
):
    """A ruleset's queue GraphQL did not show: GitHub answers the merge call with "Changes
    must be made through the merge queue", and that is never a review to wait for."""
    fake_repo = fake_github.create_repo(REPO)

    class QueueAtMerge(GitHubClient):
        def merge(self, ref, **kwargs):
            fake_repo.require_merge_queue = True
            return super().merge(ref, **kwargs)

    mr = make_mr(fake_github, rig)
    run(clock, client_factory=QueueAtMerge)

    mr = reload(mr)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    assert fake_github.merge_queue(REPO) == [mr.pr_number]
    assert mr.blocker == Blocker.QUEUED
    assert not mr.awaiting_approval and mr.waiting_since is None
    assert events("pr.awaiting_approval_detected") == []


def test_a_push_before_the_enqueue_is_looked_at_again_not_enqueued(
    fake_github, queue_repo, rig, clock
):
    class PushJustBeforeEnqueue(GitHubClient):
        pushed = False

        def enqueue(self, ref, **kwargs):
            if not PushJustBeforeEnqueue.pushed:
                PushJustBeforeEnqueue.pushed = True
                fake_github.push(REPO, ref.number, keep_checks=True)
            return super().enqueue(ref, **kwargs)

    mr = make_mr(fake_github, rig)
    run(clock, client_factory=PushJustBeforeEnqueue)

    assert fake_github.merge_queue(REPO) == []  # the head it checked is not the head now
    mr = reload(mr)
    assert mr.check_requested_at == clock.now and mr.blocker != Blocker.QUEUED

    clock.advance(seconds=5)
    run(clock, client_factory=PushJustBeforeEnqueue)
    assert fake_github.merge_queue(REPO) == [mr.pr_number]
    new_head = fake_github.pull(REPO, mr.pr_number).head_sha
    assert MergeAttempt.objects.get(merge_request=mr, outcome="enqueued").head_sha == new_head


def test_a_pr_removed_from_the_queue_by_a_person_is_escalated_once_not_reworked(
    fake_github, queue_repo, rig, clock, github_client
):
    mr = make_mr(fake_github, rig)
    run(clock)
    assert github_client.dequeue(mr.pr_ref).done  # someone takes it out on GitHub

    for _ in range(4):
        clock.advance(minutes=1)
        run(clock)

    mr = reload(mr)
    assert mr.blocker == Blocker.MERGE_QUEUE
    assert fake_github.merge_queue(REPO) == []  # not enqueued again over the person
    assert rework_beads(mr) == []
    head = fake_github.pull(REPO, mr.pr_number).head_sha
    [escalation] = escalations(f"rework:mr:{mr.pk}:merge_queue_dropped:other:{head}")
    assert "Removed from the merge queue by" in escalation.title


def test_a_hold_label_added_to_a_queued_pr_takes_it_out_until_removed(
    fake_github, queue_repo, rig, clock
):
    mr = make_mr(fake_github, rig)
    run(clock)
    assert fake_github.merge_queue(REPO) == [mr.pr_number]
    fake_github.add_label(REPO, mr.pr_number, "gastown:hold", by="erin")

    for _ in range(3):
        clock.advance(minutes=1)
        run(clock)
    mr = reload(mr)
    assert fake_github.merge_queue(REPO) == []
    assert mr.blocker == Blocker.HELD_BY_LABEL
    assert mr.blocker_detail == "held by the label gastown:hold, added by erin"
    assert rework_beads(mr) == []
    assert not Bead.objects.filter(type=BeadType.ESCALATION).exists()  # a hold is no fault

    fake_github.remove_label(REPO, mr.pr_number, "gastown:hold")
    clock.advance(minutes=1)
    run(clock)
    assert fake_github.merge_queue(REPO) == [mr.pr_number]
