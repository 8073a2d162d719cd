"""What a refused or failed merge call leads to (SPEC §5): one attempt per head and state,
never a merge call per poll (SPEC §1), and a 5xx is looked at before anything else."""

from __future__ import annotations

from beads.models import BeadStatus, Blocker
from scm.client import GitHubClient
from scm.types import MergeOutcome
from tests.feedback.conftest import REPO, events, make_mr, reload, run


def test_a_required_check_expected_at_merge_is_tried_once_until_the_rollup_changes(
    fake_github, town, rig, clock
):
    """GraphQL says CLEAN, the merge endpoint says a required check is expected: one merge
    call per head and check rollup, not one per poll."""
    fake_repo = fake_github.create_repo(REPO)

    class CheckRequiredAtMerge(GitHubClient):
        enabled = True

        def merge(self, ref, **kwargs):
            if not CheckRequiredAtMerge.enabled:
                return super().merge(ref, **kwargs)
            fake_repo.required_checks.add("ci")
            try:
                return super().merge(ref, **kwargs)
            finally:
                fake_repo.required_checks.discard("ci")  # GraphQL keeps saying CLEAN

    mr = make_mr(fake_github, rig)
    for _ in range(30):  # half an hour, a pass a minute, delay 0
        run(clock, client_factory=CheckRequiredAtMerge)
        clock.advance(minutes=1)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    [refused] = events("pr.merge_refused")
    assert refused.data["outcome"] == "checks_required"
    assert '"ci" is expected' in refused.reason
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.OPEN
    assert mr.blocker == Blocker.CHECKS_PENDING
    assert not mr.awaiting_approval

    # The check starts: GitHub's rollup changed, the refusal no longer stands.
    fake_github.set_check(REPO, mr.pr_number, "ci", None, status="in_progress")
    run(clock, client_factory=CheckRequiredAtMerge)
    clock.advance(minutes=1)
    assert reload(mr).blocker == Blocker.CHECKS_PENDING
    fake_github.set_check(REPO, mr.pr_number, "ci", "success")
    CheckRequiredAtMerge.enabled = False
    run(clock, client_factory=CheckRequiredAtMerge)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert len(events("pr.merge_refused")) == 1


def test_a_required_check_expected_at_merge_is_asked_again_for_a_new_head(
    fake_github, town, rig, clock
):
    fake_repo = fake_github.create_repo(REPO)

    class CheckRequiredAtMerge(GitHubClient):
        def merge(self, ref, **kwargs):
            fake_repo.required_checks.add("ci")
            try:
                return super().merge(ref, **kwargs)
            finally:
                fake_repo.required_checks.discard("ci")

    mr = make_mr(fake_github, rig)
    for _ in range(5):
        run(clock, client_factory=CheckRequiredAtMerge)
        clock.advance(minutes=1)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1

    fake_github.push(REPO, mr.pr_number)
    for _ in range(5):
        run(clock, client_factory=CheckRequiredAtMerge)
        clock.advance(minutes=1)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    assert len(events("pr.merge_refused")) == 2


def test_head_moved_at_merge_checks_again_and_merges_the_new_head_once(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO)

    class PushJustBeforeMerge(GitHubClient):
        pushes = 0

        def merge(self, ref, **kwargs):
            if PushJustBeforeMerge.pushes == 0:
                PushJustBeforeMerge.pushes += 1
                fake_github.push(REPO, ref.number, keep_checks=True)
            return super().merge(ref, **kwargs)

    mr = make_mr(fake_github, rig)
    first_head = fake_github.pull(REPO, mr.pr_number).head_sha
    summary = run(clock, client_factory=PushJustBeforeMerge)

    assert summary.merge_refused == 1
    [refused] = events("pr.merge_refused")
    assert refused.data == {"pr_url": mr.pr_url, "head_sha": first_head, "outcome": "head_moved"}
    assert reload(mr).check_requested_at == clock.now  # due again at once

    for _ in range(10):
        run(clock, client_factory=PushJustBeforeMerge)
        clock.advance(minutes=1)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.CLOSED
    [merged] = events("pr.merged")
    assert merged.data["head_sha"] == fake_github.pull(REPO, mr.pr_number).head_sha != first_head


def test_a_5xx_on_merge_that_did_merge_is_noticed_without_a_second_merge_call(
    fake_github, town, rig, clock
):
    fake_github.create_repo(REPO)

    class AnswerLost(GitHubClient):
        def merge(self, ref, **kwargs):
            outcome = super().merge(ref, **kwargs)
            # GitHub merged, but its answer was a 502 from a proxy.
            return MergeOutcome("transient", outcome.method, "GitHub answered 502.")

    mr = make_mr(fake_github, rig)
    run(clock, client_factory=AnswerLost)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    assert reload(mr).bead.status == BeadStatus.OPEN
    [refused] = events("pr.merge_refused")
    assert refused.data["outcome"] == "transient"

    for _ in range(5):
        run(clock, client_factory=AnswerLost)
        clock.advance(minutes=1)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.CLOSED
    assert mr.blocker == Blocker.MERGED
    assert mr.source.status == BeadStatus.CLOSED


def test_a_5xx_on_merge_is_not_retried_before_the_pr_is_looked_at(fake_github, town, rig, clock):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.add_fault("status", method="PUT", path="/merge$", status=502, times=1)

    summary = run(clock)

    assert summary.merge_attempts == 1
    assert [r.status for r in fake_github.merge_calls(REPO, mr.pr_number)] == [502]
    assert reload(mr).bead.status == BeadStatus.OPEN
    fake_github.clear_requests()

    run(clock)  # due at once: the PR is looked at first, then (still ready) merged
    kinds = [("merge" if r.method == "PUT" else r.path) for r in fake_github.requests]
    assert kinds == ["/graphql", "/graphql", "merge"]  # the pass's check, the fresh check
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_a_review_required_park_survives_a_502_between_polls(fake_github, town, rig, clock):
    """The park must not live in last_error, which any failed check overwrites."""
    fake_repo = fake_github.create_repo(REPO)

    class RuleAddedBeforeMerge(GitHubClient):
        def merge(self, ref, **kwargs):
            fake_repo.required_approvals = 1
            try:
                return super().merge(ref, **kwargs)
            finally:
                fake_repo.required_approvals = 0  # GraphQL keeps saying CLEAN

    mr = make_mr(fake_github, rig)
    run(clock, client_factory=RuleAddedBeforeMerge)
    parked = reload(mr)
    assert (parked.blocker, parked.awaiting_approval) == (Blocker.HUMAN_REVIEW, True)
    waiting_since = parked.waiting_since
    assert waiting_since == clock.now

    clock.advance(minutes=1)
    fake_github.add_fault("status", path="/graphql", status=502, times=1)
    run(clock, client_factory=RuleAddedBeforeMerge)
    assert reload(mr).consecutive_transient_failures == 1

    for _ in range(10):
        clock.advance(minutes=1)
        run(clock, client_factory=RuleAddedBeforeMerge)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    mr = reload(mr)
    assert (mr.blocker, mr.awaiting_approval) == (Blocker.HUMAN_REVIEW, True)
    assert mr.waiting_since == waiting_since
    assert len(events("pr.awaiting_approval_detected")) == 1
    assert events("pr.awaiting_approval_resolved") == []
    assert len(events("pr.merge_refused")) == 1
