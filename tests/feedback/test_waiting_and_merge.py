"""The origin problem (domain.md §1): a green PR waiting on a reviewer is parked, never merged,
never failed, and merged exactly once after the approval lands and the delay passes."""

from __future__ import annotations

import pytest

from beads.models import BeadStatus, Blocker, MergeRequest
from gastown.feedback.observe import REFUSAL_HOLD
from tests.feedback.conftest import (
    REPO,
    events,
    make_mr,
    reload,
    rework_beads,
    rule_only_at_merge,
    run,
)

HOLD_MINUTES = int(REFUSAL_HOLD.total_seconds() // 60)


def test_pr_waiting_on_approval_is_parked_for_hours_then_merged_once(fake_github, town, rig, clock):
    town.auto_merge_delay_minutes = 10
    town.save()
    fake_github.create_repo(REPO, required_approvals=1, required_checks={"ci"})
    mr = make_mr(fake_github, rig)
    fake_github.set_check(REPO, mr.pr_number, "ci", "success")
    waiting_from = clock.now

    for _ in range(6 * 12):  # six hours, a pass every 5 minutes
        run(clock)
        clock.advance(minutes=5)

    mr = reload(mr)
    assert mr.bead.status == BeadStatus.OPEN
    assert mr.blocker == Blocker.HUMAN_REVIEW
    assert mr.awaiting_approval
    assert mr.review_decision == "REVIEW_REQUIRED"
    assert mr.waiting_since == waiting_from
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    detected = events("pr.awaiting_approval_detected")
    assert len(detected) == 1
    assert detected[0].label == "REVIEW_REQUIRED"
    assert detected[0].reason == "BLOCKED"
    assert detected[0].data == {"pr_url": mr.pr_url, "reviewers": []}
    assert events("pr.awaiting_approval_resolved") == []

    fake_github.approve(REPO, mr.pr_number, by="alice")
    approved_at = clock.now
    run(clock)  # ready: the 10-minute timer starts
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    clock.advance(minutes=5)
    run(clock)
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    clock.advance(minutes=5)
    run(clock)
    for _ in range(5):
        clock.advance(minutes=1)
        run(clock)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    assert fake_github.pull(REPO, mr.pr_number).merged
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.CLOSED
    assert mr.source.status == BeadStatus.CLOSED
    assert mr.merged_at is not None
    assert mr.merge_commit_sha == fake_github.pull(REPO, mr.pr_number).merge_commit_sha
    assert len(events("pr.awaiting_approval_detected")) == 1
    [resolved] = events("pr.awaiting_approval_resolved")
    assert resolved.reason == "approved"
    assert resolved.label == "APPROVED"
    assert resolved.duration_ms == int((approved_at - waiting_from).total_seconds() * 1000)
    [merged] = events("pr.merged")
    assert merged.label == "squash"
    assert merged.data["pr_url"] == mr.pr_url
    assert merged.data["head_sha"] == fake_github.pull(REPO, mr.pr_number).head_sha


def test_review_required_waits_and_changes_requested_asks_for_rework_once_per_cause(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO, required_approvals=1)
    waiting = make_mr(fake_github, rig)
    changes = make_mr(fake_github, rig)
    fake_github.request_changes(REPO, changes.pr_number, by="bob", body="")

    for _ in range(20):
        run(clock)
        clock.advance(minutes=1)

    waiting, changes = reload(waiting), reload(changes)
    assert (waiting.blocker, waiting.awaiting_approval, waiting.changes_requested) == (
        Blocker.HUMAN_REVIEW,
        True,
        False,
    )
    assert rework_beads(waiting) == []
    assert (changes.blocker, changes.awaiting_approval, changes.changes_requested) == (
        Blocker.CHANGES_REQUESTED,
        False,
        True,
    )
    [rework] = rework_beads(changes)
    assert "rework" in rework.labels
    assert rework.parent_id == changes.source_id
    assert changes.bead.status == BeadStatus.OPEN
    assert fake_github.merge_calls(REPO, waiting.pr_number) == []
    assert fake_github.merge_calls(REPO, changes.pr_number) == []

    # The agent pushes; the reviewer still wants changes on the new head: a new cause.
    fake_github.push(REPO, changes.pr_number)
    for _ in range(5):
        run(clock)
        clock.advance(minutes=1)
    assert len(rework_beads(changes)) == 2
    assert fake_github.merge_calls(REPO, changes.pr_number) == []


def test_blocked_by_a_failing_required_check_is_checks_failing_not_awaiting_approval(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO, required_checks={"ci"})
    mr = make_mr(fake_github, rig)
    fake_github.set_check(REPO, mr.pr_number, "ci", "failure")
    for _ in range(5):
        run(clock)
        clock.advance(minutes=1)
    mr = reload(mr)
    assert mr.merge_state_status == "BLOCKED"
    assert mr.blocker == Blocker.CHECKS_FAILING
    assert not mr.awaiting_approval
    assert mr.failing_checks == ["ci"]
    assert len(rework_beads(mr)) == 1
    assert events("pr.awaiting_approval_detected") == []
    assert fake_github.merge_calls(REPO, mr.pr_number) == []


def test_fresh_pre_merge_check_answering_502_means_no_merge(fake_github, town, rig, clock):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    # The pass's own check goes through (a no-op fault takes the first request); the fresh
    # check right before the merge gets a 502.
    fake_github.add_fault("slow", path="/graphql", delay=0, times=1)
    fake_github.add_fault("status", path="/graphql", status=502, times=2)

    summary = run(clock)

    assert summary.merge_attempts == 0
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.OPEN
    assert mr.auto_merge_ready_since is None  # the timer restarts
    assert "pre-merge check failed" in mr.last_error

    clock.advance(minutes=1)
    run(clock)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_merge_refused_with_review_required_parks_the_mr_as_waiting_on_a_human(
    fake_github, town, rig, clock
):
    """GitHub's merge endpoint can know a rule GraphQL's merge state does not show (a
    ruleset added between the check and the merge): the 405 parks the MR, no loop."""
    fake_repo = fake_github.create_repo(REPO)

    # A rule GitHub's merge endpoint enforces while GraphQL keeps saying CLEAN.
    RuleAddedBeforeMerge = rule_only_at_merge(fake_repo, required_approvals=1)
    mr = make_mr(fake_github, rig)
    for _ in range(HOLD_MINUTES):  # a pass a minute for a whole refusal hold
        run(clock, client_factory=RuleAddedBeforeMerge)
        clock.advance(minutes=1)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.OPEN
    assert (mr.blocker, mr.awaiting_approval) == (Blocker.HUMAN_REVIEW, True)
    assert mr.waiting_since is not None
    assert len(events("pr.awaiting_approval_detected")) == 1
    [refused] = events("pr.merge_refused")
    assert refused.data["outcome"] == "review_required"
    assert "approving review" in refused.reason

    # A new head is a new question: GitHub is asked again (and now says yes).
    fake_github.push(REPO, mr.pr_number)
    run(clock)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    assert reload(mr).bead.status == BeadStatus.CLOSED
    [resolved] = events("pr.awaiting_approval_resolved")
    assert resolved.reason == "approved"


def test_code_review_on_means_no_merge_until_the_refinery_review_passed(
    fake_github, town, rig, clock
):
    town.code_review = True
    town.save()
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    for _ in range(5):
        run(clock)
        clock.advance(minutes=1)
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    assert reload(mr).blocker == Blocker.READY

    MergeRequest.objects.filter(pk=mr.pk).update(review_status="passed")
    run(clock)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_merge_now_skips_the_delay_but_not_the_fresh_check(fake_github, town, rig, clock):
    from gastown.services.overrides import merge_request_merge_now
    from tests.factories import UserFactory

    town.auto_merge_delay_minutes = 60
    town.save()
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    run(clock)
    assert reload(mr).blocker == Blocker.READY
    lead = UserFactory()

    merge_request_merge_now(merge_request=reload(mr), user=lead, now=clock.now)
    clock.advance(minutes=1)
    fake_github.add_fault("slow", path="/graphql", delay=0, times=1)
    fake_github.add_fault("status", path="/graphql", status=502, times=2)
    run(clock)
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    assert reload(mr).merge_requested_at is None  # the attempt was made (and failed closed)

    clock.advance(minutes=1)
    run(clock)  # back to the delay: nothing yet
    assert fake_github.merge_calls(REPO, mr.pr_number) == []

    merge_request_merge_now(merge_request=reload(mr), user=lead, now=clock.now)
    clock.advance(minutes=1)
    run(clock)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_a_push_withdraws_merge_now(fake_github, town, rig, clock):
    from gastown.services.overrides import merge_request_merge_now
    from tests.factories import UserFactory

    town.auto_merge_delay_minutes = 24 * 60
    town.save()
    fake_github.create_repo(REPO, required_checks={"ci"})
    mr = make_mr(fake_github, rig)
    fake_github.set_check(REPO, mr.pr_number, "ci", "success")
    run(clock)
    assert reload(mr).blocker == Blocker.READY
    merge_request_merge_now(merge_request=reload(mr), user=UserFactory(), now=clock.now)

    # Before the check the team lead asked for, someone pushes: CI runs again.
    fake_github.push(REPO, mr.pr_number)
    fake_github.set_check(REPO, mr.pr_number, "ci", None, status="in_progress")
    run(clock)
    assert reload(mr).merge_requested_at is None

    fake_github.set_check(REPO, mr.pr_number, "ci", "success")
    for _ in range(3):
        clock.advance(minutes=1)
        run(clock)
    assert reload(mr).blocker == Blocker.READY
    assert fake_github.merge_calls(REPO, mr.pr_number) == [], "the delay applies again"


def test_a_pr_aimed_at_another_base_is_never_merged_and_escalated_once(
    fake_github, town, rig, clock
):
    from tests.feedback.conftest import escalations

    fake_github.create_repo(REPO)
    pull = fake_github.create_pr(REPO, base="develop")  # the MR targets main
    mr = make_mr(fake_github, rig, number=pull.number)
    for _ in range(30):
        run(clock)
        clock.advance(minutes=1)

    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    [escalation] = escalations(f"merge_refused:mr:{mr.pk}:{pull.head_sha}")
    assert "base is develop" in escalation.title
    assert reload(mr).bead.status == BeadStatus.OPEN
    assert len(events("pr.merge_refused")) == 1

    fake_github.set_pr(REPO, pull.number, base="main")  # someone fixes the PR's base
    clock.advance(minutes=1)
    run(clock)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_pr_merged_on_github_closes_the_mr_and_its_source_issue(fake_github, town, rig, clock):
    town.auto_merge = False
    town.save()
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    run(clock)
    assert reload(mr).blocker == Blocker.READY
    fake_github.merge_externally(REPO, mr.pr_number)
    clock.advance(minutes=1)
    summary = run(clock)
    assert summary.closed == 1
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.CLOSED
    assert mr.source.status == BeadStatus.CLOSED
    assert mr.blocker == Blocker.MERGED
    assert mr.merged_at == clock.now
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    clock.advance(minutes=5)
    assert run(clock).due == 0  # a closed MR is no longer watched


def test_pr_closed_without_merging_fails_the_mr(fake_github, town, rig, clock):
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock)
    fake_github.close(REPO, mr.pr_number)
    clock.advance(minutes=1)
    run(clock)
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.FAILED
    assert mr.bead.failure_code == "pr_closed"
    assert mr.source.status == BeadStatus.IN_REVIEW
    [resolved] = events("pr.awaiting_approval_resolved")
    assert resolved.reason == "closed"


def test_a_final_merge_refusal_is_tried_once_per_head_and_escalated_once(
    fake_github, town, rig, clock
):
    from gastown.services.overrides import merge_request_merge_now
    from tests.factories import UserFactory
    from tests.feedback.conftest import escalations

    town.merge_methods = "squash,merge"
    town.save()
    fake_github.create_repo(REPO, allowed_merge_methods={"rebase"})
    mr = make_mr(fake_github, rig)
    for _ in range(HOLD_MINUTES):  # a pass a minute for a whole refusal hold
        run(clock)
        clock.advance(minutes=1)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2  # squash, then merge
    [refused] = events("pr.merge_refused")
    assert refused.data["outcome"] == "method_not_allowed"
    [escalation] = escalations(f"merge_refused:mr:{mr.pk}:{reload(mr).head_sha}")
    assert "Merge commits are not allowed" in escalation.title
    assert reload(mr).bead.status == BeadStatus.OPEN

    # Final: not asked again on this head, however long it stays.
    for _ in range(6 * 60):
        clock.advance(minutes=1)
        run(clock)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    assert len(escalations(f"merge_refused:mr:{mr.pk}:{reload(mr).head_sha}")) == 1

    # Fixed on GitHub; the team lead presses merge now.
    fake_github.state.repo(REPO).allowed_merge_methods.add("merge")
    merge_request_merge_now(merge_request=reload(mr), user=UserFactory(), now=clock.now)
    run(clock)
    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert fake_github.pull(REPO, mr.pr_number).merge_method == "merge"


@pytest.mark.parametrize(
    ("change", "blocker"),
    [
        ("review_rule", Blocker.HUMAN_REVIEW),
        ("failing_check", Blocker.CHECKS_FAILING),
    ],
)
def test_fresh_pre_merge_check_showing_a_blocker_means_no_merge(
    fake_github, town, rig, clock, change, blocker
):
    from scm.client import GitHubClient

    fake_repo = fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)

    class ChangesBeforeTheFreshCheck(GitHubClient):
        calls = 0

        def fetch_snapshots(self, refs, **kwargs):
            ChangesBeforeTheFreshCheck.calls += 1
            if ChangesBeforeTheFreshCheck.calls == 2:  # the pre-merge check
                if change == "review_rule":
                    fake_repo.required_approvals = 1
                else:
                    fake_github.set_check(REPO, mr.pr_number, "ci", "failure")
            return super().fetch_snapshots(refs, **kwargs)

    summary = run(clock, client_factory=ChangesBeforeTheFreshCheck)

    assert ChangesBeforeTheFreshCheck.calls == 2
    assert summary.merge_attempts == 0
    assert fake_github.merge_calls(REPO, mr.pr_number) == []
    mr = reload(mr)
    assert mr.blocker == blocker
    assert mr.auto_merge_ready_since is None
    assert mr.bead.status == BeadStatus.OPEN
    waits = events("pr.awaiting_approval_detected")
    assert len(waits) == (1 if blocker == Blocker.HUMAN_REVIEW else 0)
