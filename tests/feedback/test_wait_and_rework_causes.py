"""One wait on a human is one wait (domain.md §6), and each rework cause is handled once (§3),
whatever happens in between."""

from __future__ import annotations

from beads.models import BeadStatus, Blocker
from gastown.models import AgentRole
from gastown.services.reports import refinery_report_review
from scm.client import GitHubClient
from tests.factories import AgentFactory
from tests.feedback.conftest import REPO, events, make_mr, reload, rework_beads, run

SPEC_RESOLVED_REASONS = {
    "approved",
    "changes_requested",
    "merged",
    "closed",
    "draft",
    "conflict",
    "cleared_by_user",
    "mr_failed",
}


def test_a_push_that_reruns_checks_does_not_split_a_wait_on_a_reviewer(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO, required_approvals=1, required_checks={"ci"})
    mr = make_mr(fake_github, rig)
    fake_github.set_check(REPO, mr.pr_number, "ci", "success")
    waiting_from = clock.now
    for _ in range(10):
        run(clock)
        clock.advance(minutes=1)
    assert reload(mr).awaiting_approval

    # The agent pushes a small fix: checks run again, the reviewer is still awaited.
    fake_github.push(REPO, mr.pr_number)
    fake_github.set_check(REPO, mr.pr_number, "ci", None, status="in_progress")
    for _ in range(5):
        run(clock)
        clock.advance(minutes=1)
    mr = reload(mr)
    assert mr.blocker == Blocker.CHECKS_PENDING
    assert mr.waiting_since == waiting_from
    fake_github.set_check(REPO, mr.pr_number, "ci", "success")
    for _ in range(5):
        run(clock)
        clock.advance(minutes=1)

    mr = reload(mr)
    assert (mr.blocker, mr.awaiting_approval) == (Blocker.HUMAN_REVIEW, True)
    assert mr.waiting_since == waiting_from
    assert len(events("pr.awaiting_approval_detected")) == 1
    assert events("pr.awaiting_approval_resolved") == []

    fake_github.approve(REPO, mr.pr_number)
    approved_at = clock.now
    run(clock)
    [resolved] = events("pr.awaiting_approval_resolved")
    assert resolved.reason == "approved"
    assert resolved.duration_ms == int((approved_at - waiting_from).total_seconds() * 1000)


def test_a_wait_without_a_review_decision_is_not_ended_by_checks_rerunning(
    fake_github, town, rig, clock
):
    """A rule GitHub's review decision does not show (here: found by the merge call) parks
    the MR; a push re-runs the checks, which hides whether the human is still awaited: the
    wait stays open until GitHub says, and ends in domain.md's words."""
    fake_repo = fake_github.create_repo(REPO)

    class RuleAddedBeforeMerge(GitHubClient):
        rule = True

        def merge(self, ref, **kwargs):
            fake_repo.required_approvals = 1 if RuleAddedBeforeMerge.rule else 0
            try:
                return super().merge(ref, **kwargs)
            finally:
                fake_repo.required_approvals = 0

    mr = make_mr(fake_github, rig)
    run(clock, client_factory=RuleAddedBeforeMerge)
    waiting_from = clock.now
    assert reload(mr).awaiting_approval

    fake_github.push(REPO, mr.pr_number)
    fake_github.set_check(REPO, mr.pr_number, "ci", None, status="in_progress")
    for _ in range(3):
        clock.advance(minutes=1)
        run(clock, client_factory=RuleAddedBeforeMerge)
    mr = reload(mr)
    assert mr.blocker == Blocker.CHECKS_PENDING
    assert mr.waiting_since == waiting_from
    assert events("pr.awaiting_approval_resolved") == []

    RuleAddedBeforeMerge.rule = False  # approved on GitHub
    fake_github.set_check(REPO, mr.pr_number, "ci", "success")
    clock.advance(minutes=1)
    run(clock, client_factory=RuleAddedBeforeMerge)
    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert len(events("pr.awaiting_approval_detected")) == 1
    [resolved] = events("pr.awaiting_approval_resolved")
    assert resolved.reason in SPEC_RESOLVED_REASONS
    assert resolved.reason == "approved"
    assert resolved.duration_ms == int((clock.now - waiting_from).total_seconds() * 1000)


def test_a_wait_records_whom_it_waits_on_when_it_begins_and_ends(fake_github, town, rig, clock):
    """An approval takes the reviewer off GitHub's list: the wait's end still names whom it
    waited on (the last snapshot before it ended), so the per-reviewer chart can count it."""
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    fake_github.request_review(REPO, mr.pr_number, login="alice", team="core")
    run(clock)
    [began] = events("pr.awaiting_approval_detected")
    assert began.data["reviewers"] == ["alice", "core"]

    clock.advance(minutes=5)
    fake_github.approve(REPO, mr.pr_number, by="alice")
    run(clock)
    [ended] = events("pr.awaiting_approval_resolved")
    assert ended.reason == "approved"
    assert ended.data["reviewers"] == ["alice", "core"]
    assert reload(mr).requested_reviewers == ["core"]


def test_a_wait_on_nobody_named_records_an_empty_list(fake_github, town, rig, clock):
    fake_github.create_repo(REPO, required_approvals=1)
    make_mr(fake_github, rig)
    run(clock)
    [began] = events("pr.awaiting_approval_detected")
    assert began.data["reviewers"] == []


def test_a_failing_check_is_one_rework_even_with_a_refinery_review_in_between(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.set_check(REPO, mr.pr_number, "ci", "failure")
    run(clock)
    assert len(rework_beads(mr)) == 1

    refinery = AgentFactory(town=town, rig=rig, role=AgentRole.REFINERY, name="refinery")
    refinery_report_review(
        agent=refinery, merge_request=reload(mr), passed=False, summary="add tests", now=clock.now
    )
    assert len(rework_beads(mr)) == 2

    for _ in range(5):
        clock.advance(minutes=1)
        run(clock)
    assert len(rework_beads(mr)) == 2  # checks_failing at this head was handled already

    fake_github.push(REPO, mr.pr_number, keep_checks=True)  # a new failing head
    clock.advance(minutes=1)
    run(clock)
    assert len(rework_beads(mr)) == 3
