"""What a refused or failed merge call leads to (domain.md §5): one attempt per head and state,
never a merge call per poll (domain.md §1), and a 5xx is looked at before anything else."""

from __future__ import annotations

from beads.models import BeadStatus, Blocker, MergeRequest
from gastown.feedback.observe import REFUSAL_HOLD
from gastown.models import Town
from scm.client import GitHubClient
from scm.types import MergeOutcome
from tests.feedback.conftest import REPO, events, make_mr, reload, rule_only_at_merge, run

HOLD_MINUTES = int(REFUSAL_HOLD.total_seconds() // 60)


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
    for _ in range(HOLD_MINUTES):  # a pass a minute for a whole hold, delay 0
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

    run(clock)  # due at once: the PR is looked at (it may have merged), not merged again
    assert [r.path for r in fake_github.requests] == ["/graphql"]
    assert reload(mr).bead.status == BeadStatus.OPEN
    fake_github.clear_requests()

    clock.advance(minutes=1)  # the back-off is over: still ready, so merged
    run(clock)
    kinds = [("merge" if r.method == "PUT" else r.path) for r in fake_github.requests]
    assert kinds == ["/graphql", "/graphql", "merge"]  # the pass's check, the fresh check
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_a_review_required_park_survives_a_502_between_polls(fake_github, town, rig, clock):
    """The park must not live in last_error, which any failed check overwrites."""
    fake_repo = fake_github.create_repo(REPO)

    # A rule GitHub's merge endpoint enforces while GraphQL keeps saying CLEAN.
    RuleAddedBeforeMerge = rule_only_at_merge(fake_repo, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock, client_factory=RuleAddedBeforeMerge)
    parked = reload(mr)
    assert (parked.blocker, parked.awaiting_approval) == (Blocker.HUMAN_REVIEW, True)
    waiting_since = parked.waiting_since
    assert waiting_since == clock.now

    clock.advance(minutes=1)
    fake_github.add_fault("status", path="/graphql", status=502, times=2)
    run(clock, client_factory=RuleAddedBeforeMerge)
    assert Town.objects.get(pk=town.pk).github_blocked_until is not None  # backing off

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


def _passes(clock, minutes, **kwargs):
    for _ in range(minutes):
        clock.advance(minutes=1)
        run(clock, **kwargs)


def test_an_approval_by_a_requested_reviewer_lifts_a_review_refusal_with_a_null_decision(
    fake_github, town, rig, clock
):
    """Scenario A: GraphQL says CLEAN with no review decision, the merge endpoint wants an
    approval. The approval leaves the decision null, but the reviewer leaves the requests."""
    fake_repo = fake_github.create_repo(REPO)
    client = rule_only_at_merge(fake_repo, required_approvals=1)
    mr = make_mr(fake_github, rig)
    fake_github.request_review(REPO, mr.pr_number, login="bob")
    run(clock, client_factory=client)
    assert (reload(mr).blocker, reload(mr).awaiting_approval) == (Blocker.HUMAN_REVIEW, True)
    _passes(clock, 3, client_factory=client)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1

    fake_github.approve(REPO, mr.pr_number, by="bob")
    _passes(clock, 1, client_factory=client)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.CLOSED
    [resolved] = events("pr.awaiting_approval_resolved")
    assert resolved.reason == "approved"
    assert len(events("pr.awaiting_approval_detected")) == 1


def test_a_reviewer_asked_after_the_refusal_lifts_it_by_approving(fake_github, town, rig, clock):
    fake_repo = fake_github.create_repo(REPO)
    client = rule_only_at_merge(fake_repo, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock, client_factory=client)  # refused: nobody was asked yet
    fake_github.request_review(REPO, mr.pr_number, login="bob")
    _passes(clock, 2, client_factory=client)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1

    fake_github.approve(REPO, mr.pr_number, by="bob")
    _passes(clock, 1, client_factory=client)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    assert reload(mr).bead.status == BeadStatus.CLOSED
    [resolved] = events("pr.awaiting_approval_resolved")
    assert resolved.reason == "approved"


def test_a_second_approval_lifts_a_review_refusal_while_the_decision_stays_approved(
    fake_github, town, rig, clock
):
    """Scenario B: the decision is already APPROVED, the rule at merge needs two."""
    fake_repo = fake_github.create_repo(REPO, required_approvals=1)
    client = rule_only_at_merge(fake_repo, required_approvals=2)
    mr = make_mr(fake_github, rig)
    fake_github.approve(REPO, mr.pr_number, by="alice")
    fake_github.request_review(REPO, mr.pr_number, login="bob")
    run(clock, client_factory=client)
    parked = reload(mr)
    assert (parked.review_decision, parked.blocker) == ("APPROVED", Blocker.HUMAN_REVIEW)
    _passes(clock, 3, client_factory=client)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1

    fake_github.approve(REPO, mr.pr_number, by="bob")
    _passes(clock, 1, client_factory=client)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_a_review_refusal_is_asked_again_after_the_hold_even_if_nothing_visible_changed(
    fake_github, town, rig, clock
):
    """An approval by someone nobody requested changes nothing GraphQL shows here: the hold
    lapses after REFUSAL_HOLD (one merge call per hold, not a loop), and the wait on a human
    is one wait throughout (no resolved/detected pair per retry)."""
    hold = HOLD_MINUTES
    fake_repo = fake_github.create_repo(REPO)
    client = rule_only_at_merge(fake_repo, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock, client_factory=client)
    waiting_since = reload(mr).waiting_since
    _passes(clock, hold - 1, client_factory=client)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1

    _passes(clock, 1, client_factory=client)  # the hold lapsed: asked again, still refused
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    parked = reload(mr)
    assert (parked.blocker, parked.awaiting_approval) == (Blocker.HUMAN_REVIEW, True)
    assert parked.waiting_since == waiting_since
    assert events("pr.awaiting_approval_resolved") == []

    # The same refusal again: the hold doubles, and it is no new refusal for the charts.
    attempts = list(reload(mr).merge_attempts.order_by("created_at"))
    assert [(a.refusal_kind, a.repeats) for a in attempts] == [
        (Blocker.HUMAN_REVIEW, 1),
        (Blocker.HUMAN_REVIEW, 2),
    ]
    assert reload(mr).merge_refusal == attempts[-1]
    assert len(events("pr.merge_refused")) == 1

    fake_github.approve(REPO, mr.pr_number, by="alice")
    _passes(clock, 2 * hold - 1, client_factory=client)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    _passes(clock, 1, client_factory=client)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 3
    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert len(events("pr.awaiting_approval_detected")) == 1
    [resolved] = events("pr.awaiting_approval_resolved")
    assert resolved.reason == "approved"


def test_a_waiting_pr_costs_a_handful_of_merge_calls_a_day_not_one_per_hold(
    fake_github, town, rig, clock
):
    fake_repo = fake_github.create_repo(REPO)
    client = rule_only_at_merge(fake_repo, required_approvals=1)
    mr = make_mr(fake_github, rig)
    for _ in range(24 * 6):  # a day, a pass every ten minutes
        run(clock, client_factory=client)
        clock.advance(minutes=10)
    calls = len(fake_github.merge_calls(REPO, mr.pr_number))
    assert 3 <= calls <= 10, calls  # 15 min, 30, 1 h, 2 h, 4 h, then every 6 h
    assert len(events("pr.merge_refused")) == 1
    assert len(events("pr.awaiting_approval_detected")) == 1
    assert events("pr.awaiting_approval_resolved") == []


def test_a_submitted_review_lifts_the_hold_at_once(fake_github, town, rig, clock):
    from gastown.webhooks import _make_due

    fake_repo = fake_github.create_repo(REPO)
    client = rule_only_at_merge(fake_repo, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock, client_factory=client)
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1

    fake_github.approve(REPO, mr.pr_number, by="zoe")  # nobody asked zoe: GraphQL shows nothing
    _make_due([reload(mr)], event="pull_request_review")
    clock.advance(minutes=1)
    run(clock, client_factory=client)

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_a_required_check_expected_that_goes_straight_to_success_is_merged_within_the_hold(
    fake_github, town, rig, clock
):
    """`lint` passes, the merge endpoint wants `ci`, then `ci` reports success directly:
    nothing failing or pending ever shows, yet the MR merges within REFUSAL_HOLD, with
    exactly one more merge call."""
    hold = HOLD_MINUTES
    fake_repo = fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.set_check(REPO, mr.pr_number, "lint", "success")
    client = rule_only_at_merge(fake_repo, required_checks={"ci"})
    run(clock, client_factory=client)
    [refused] = events("pr.merge_refused")
    assert '"ci" is expected' in refused.reason
    assert reload(mr).blocker == Blocker.CHECKS_PENDING

    fake_github.set_check(REPO, mr.pr_number, "ci", "success")
    for _ in range(hold):
        clock.advance(minutes=1)
        run(clock, client_factory=client)
        if reload(mr).bead.status == BeadStatus.CLOSED:
            break

    assert reload(mr).bead.status == BeadStatus.CLOSED
    assert clock.now - clock.start <= REFUSAL_HOLD
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    assert len(events("pr.merge_refused")) == 1


def test_clear_awaiting_lets_the_next_check_ask_github_again(fake_github, town, rig, clock):
    from gastown.services.overrides import merge_request_clear_awaiting
    from tests.factories import UserFactory

    fake_repo = fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    run(clock, client_factory=rule_only_at_merge(fake_repo, required_approvals=1))
    assert reload(mr).awaiting_approval

    merge_request_clear_awaiting(merge_request=reload(mr), user=UserFactory(), now=clock.now)
    _passes(clock, 1)  # the rule is gone (approved on GitHub's side): merged

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
    assert reload(mr).bead.status == BeadStatus.CLOSED


def test_a_park_written_by_another_worker_meanwhile_is_not_overwritten(
    fake_github, town, rig, clock, monkeypatch
):
    """Worker B read the MR before worker A's refused merge parked it (B claimed it through
    a webhook's check_requested_at). B's stale copy must not write READY back over the park:
    no second merge call, no second wait detected."""
    from django.db.models import F

    from beads.models import MergeRequest
    from gastown.feedback import checks

    fake_repo = fake_github.create_repo(REPO)
    client = rule_only_at_merge(fake_repo, required_approvals=1)
    mr = make_mr(fake_github, rig)
    real_observe = checks.observe
    interleaved = []

    def observe_then_worker_a_runs(*args, **kwargs):
        if not interleaved:
            interleaved.append(True)
            # A webhook makes the MR due again; worker A checks, merges, is refused, parks.
            MergeRequest.objects.filter(pk=mr.pk).update(check_requested_at=F("created_at"))
            checks.check_prs(now=clock.now, client_factory=client)
            parked = reload(mr)
            parked_at = (parked.blocker, parked.merge_refusal.refusal_kind)
            assert parked_at == (Blocker.HUMAN_REVIEW,) * 2
        return real_observe(*args, **kwargs)

    monkeypatch.setattr(checks, "observe", observe_then_worker_a_runs)
    summary = run(clock, client_factory=client)  # worker B, with its copy read before

    assert interleaved
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1
    assert len(events("pr.awaiting_approval_detected")) == 1
    assert len(events("pr.merge_refused")) == 1
    mr = reload(mr)
    assert (mr.blocker, mr.awaiting_approval) == (Blocker.HUMAN_REVIEW, True)
    assert mr.merge_refusal.refusal_kind == Blocker.HUMAN_REVIEW
    assert summary.changed == 0  # B's write was skipped: A's park is newer than B's copy


def test_a_check_pass_during_an_attempt_in_flight_makes_no_second_merge_call(
    fake_github, town, rig, clock
):
    """Worker A claimed the merge and is between its fresh check and the merge call when
    worker B's pass (a webhook made the MR due) reads the MR: B must find nothing due."""
    from gastown.feedback import merge

    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    town.auto_merge = False  # the first pass only observes: ready, timer started
    town.save()
    run(clock)
    town.auto_merge = True
    town.save()
    claimed = reload(mr)
    assert merge._claim(claimed, now=clock.now)  # A, in flight

    MergeRequest.objects.filter(pk=mr.pk).update(check_requested_at=clock.now)
    clock.advance(seconds=1)
    run(clock)  # B

    assert fake_github.merge_calls(REPO, mr.pr_number) == []


def test_a_retry_in_flight_makes_no_second_merge_call(fake_github, town, rig, clock):
    """The same guard as a first attempt's when a held MR's hold is over: a pass reading the
    MR while the retry is between its fresh check and its merge call finds nothing due."""
    from gastown.feedback import merge

    fake_repo = fake_github.create_repo(REPO)
    client = rule_only_at_merge(fake_repo, required_approvals=1)
    mr = make_mr(fake_github, rig)
    fake_github.request_review(REPO, mr.pr_number, login="zoe")
    run(clock, client_factory=client)  # refused: held
    clock.advance(minutes=HOLD_MINUTES)
    held = reload(mr)
    assert merge._claim_retry(held, now=clock.now)  # A, in flight
    fake_github.approve(REPO, mr.pr_number, by="zoe")  # the refusal lapses for B

    MergeRequest.objects.filter(pk=mr.pk).update(check_requested_at=clock.now)
    clock.advance(seconds=1)
    run(clock, client_factory=client)  # B

    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 1


def test_every_merge_call_is_a_row_with_githubs_answer(fake_github, town, rig, clock):
    fake_repo = fake_github.create_repo(REPO)
    client = rule_only_at_merge(fake_repo, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock, client_factory=client)  # refused: a review is missing
    head = reload(mr).head_sha
    fake_github.approve(REPO, mr.pr_number, by="alice")
    clock.advance(minutes=HOLD_MINUTES)
    run(clock, client_factory=client)  # the hold is over: asked again, merged

    refused, merged = reload(mr).merge_attempts.order_by("created_at")
    assert (refused.head_sha, refused.outcome, refused.refusal_kind) == (
        head,
        "review_required",
        Blocker.HUMAN_REVIEW,
    )
    assert refused.method and refused.message
    assert (merged.outcome, merged.refusal_kind) == ("merged", "")
    assert merged.merge_commit_sha == fake_github.pull(REPO, mr.pr_number).merge_commit_sha
    assert len(fake_github.merge_calls(REPO, mr.pr_number)) == 2
