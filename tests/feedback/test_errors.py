"""The error policy (domain.md §4): errors about one PR affect its own MR only, and only past
their limit; faults of GitHub's whole answer back the town off and fail nothing; credential
and budget errors pause the town with one escalation and fail nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from beads.models import BeadStatus, Blocker, MergeRequest
from gastown.models import Town
from scm.client import GitHubClient
from tests.feedback.conftest import REPO, escalations, events, make_mr, reload, run


@pytest.fixture
def watch_only(town):
    town.auto_merge = False
    town.save()
    return town


def test_one_deleted_pr_in_a_batch_of_30_fails_only_its_own_mr(fake_github, watch_only, rig, clock):
    fake_github.create_repo(REPO)
    mrs = [make_mr(fake_github, rig) for _ in range(29)]
    gone = make_mr(fake_github, rig, number=999)

    summary = run(clock)

    assert len(fake_github.graphql_requests()) == 1
    assert summary.checked == 29
    gone = reload(gone)
    assert gone.bead.status == BeadStatus.FAILED
    assert gone.bead.failure_code == "pr_not_found"
    assert gone.pr_url in gone.bead.failure_message
    assert "Fix the MR's PR URL" in gone.bead.failure_message
    [failed] = events("pr.poll_failed")
    assert (failed.label, failed.bead_id) == ("not_found", gone.bead_id)
    assert failed.data == {"pr_url": gone.pr_url}
    for mr in mrs:
        mr = reload(mr)
        assert mr.bead.status == BeadStatus.OPEN
        assert mr.blocker == Blocker.READY


def test_forbidden_for_one_pr_pauses_the_town_and_fails_nothing(
    fake_github, watch_only, rig, clock
):
    fake_github.create_repo(REPO)
    mrs = [make_mr(fake_github, rig) for _ in range(3)]
    # One PR's organisation enforces SAML SSO the token is not authorised for.
    fake_github.add_fault(
        "graphql_errors", path="/graphql", aliases=["pr1"], error_type="FORBIDDEN", times=None
    )

    for _ in range(30):
        run(clock)
        clock.advance(minutes=1)

    assert all(reload(mr).bead.status == BeadStatus.OPEN for mr in mrs)
    assert events("pr.poll_failed") == []
    [escalation] = escalations("github:forbidden")
    assert "Token tried" in escalation.body
    assert Town.objects.get(pk=watch_only.pk).github_blocked_until is not None

    fake_github.clear_faults()  # the token was authorised for the organisation
    clock.advance(minutes=5)
    run(clock)
    assert Town.objects.get(pk=watch_only.pk).github_blocked_until is None
    assert all(reload(mr).blocker == Blocker.READY for mr in mrs)


def test_unrecognized_pr_url_fails_its_mr_at_once_saying_what_to_fix(
    fake_github, watch_only, rig, clock
):
    fake_github.create_repo(REPO)
    ok = make_mr(fake_github, rig)
    bad = make_mr(fake_github, rig)
    # Pasted by hand in the admin: not a pull request URL.
    MergeRequest.objects.filter(pk=bad.pk).update(pr_url="https://github.com/octo/app/issues/7")
    run(clock)
    bad = reload(bad)
    assert bad.bead.status == BeadStatus.FAILED
    assert bad.bead.failure_code == "unrecognized_url"
    assert "points at an issue" in bad.bead.failure_message
    assert reload(ok).bead.status == BeadStatus.OPEN


def test_401_fails_nothing_and_raises_one_escalation_over_many_passes(
    fake_github, watch_only, rig, clock, caplog
):
    fake_github.create_repo(REPO)
    mrs = [make_mr(fake_github, rig) for _ in range(3)]
    fake_github.tokens = {"another-token"}

    for _ in range(120):  # two hours, a pass a minute
        run(clock)
        clock.advance(minutes=1)

    assert all(reload(mr).bead.status == BeadStatus.OPEN for mr in mrs)
    assert events("pr.poll_failed") == []
    [escalation] = escalations("github:unauthorized")
    assert "Token tried: GITHUB_TOKEN" in escalation.body
    assert "No merge request is failed" in escalation.body
    town = Town.objects.get(pk=watch_only.pk)
    assert town.github_blocked_until is not None
    assert "401" in town.github_error
    # Paused between retries: one GraphQL request per 5-minute pause, not one per pass.
    assert len(fake_github.graphql_requests()) == 24
    everything = escalation.body + escalation.title + town.github_error + caplog.text
    assert "test-token" not in everything

    fake_github.tokens = None  # the token is fixed
    clock.advance(minutes=5)
    run(clock)
    town.refresh_from_db()
    assert (town.github_blocked_until, town.github_error) == (None, "")
    assert all(reload(mr).blocker == Blocker.READY for mr in mrs)


def test_missing_permission_names_the_permission(fake_github, watch_only, rig, clock):
    fake_github.create_repo(REPO)
    make_mr(fake_github, rig)
    fake_github.add_fault("forbidden", path="/graphql", permission="pull_requests=read")
    run(clock)
    [escalation] = escalations("github:forbidden")
    assert "Missing permission: pull_requests=read" in escalation.body


def test_no_token_at_all_pauses_the_town_without_calling_github(
    fake_github, watch_only, rig, clock, settings
):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    settings.GITHUB_TOKEN = ""
    run(clock)
    assert fake_github.requests == []
    [escalation] = escalations("github:no_token")
    assert "GITHUB_TOKEN" in escalation.body
    assert reload(mr).bead.status == BeadStatus.OPEN


def test_rate_limit_pauses_the_town_and_resumes_after_the_reset(
    fake_github, watch_only, rig, clock
):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.add_fault("rate_limit", path="/graphql", reset_in=600, times=1)

    run(clock)
    town = Town.objects.get(pk=watch_only.pk)
    reset_at = town.github_blocked_until
    assert reset_at is not None
    assert reset_at - clock.now > timedelta(minutes=8)
    assert len(escalations("github:rate_limited")) == 1
    assert reload(mr).blocker == ""

    fake_github.clear_requests()
    for _ in range(9):
        clock.advance(minutes=1)
        assert run(clock).towns_paused == 1
    assert fake_github.requests == []

    clock.now = reset_at + timedelta(seconds=1)
    summary = run(clock)
    assert summary.checked == 1
    mr = reload(mr)
    assert mr.blocker == Blocker.READY
    assert mr.bead.status == BeadStatus.OPEN
    town.refresh_from_db()
    assert town.github_blocked_until is None
    # It resolved itself: its escalation closes (a person has nothing left to do).
    [escalation] = escalations("github:rate_limited")
    assert escalation.status == BeadStatus.CLOSED


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_rate_limit_is_escalated_as_such_not_as_a_spent_budget(
    fake_github, watch_only, rig, clock, status
):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.add_fault("rate_limit", path="/graphql", status=status, retry_after=90, times=1)

    run(clock)
    town = Town.objects.get(pk=watch_only.pk)
    assert timedelta(seconds=80) < town.github_blocked_until - clock.now < timedelta(seconds=100)
    assert "secondary rate limit" in town.github_error
    assert "spent" not in town.github_error
    assert escalations("github:rate_limited") == []
    [escalation] = escalations("github:secondary_rate_limited")
    assert "secondary rate limit" in escalation.title
    assert "hourly budget is not spent" in escalation.title
    assert "spent" not in escalation.body.replace("is not spent", "")
    assert reload(mr).blocker == ""


def test_spent_hourly_budget_is_escalated_as_spent(fake_github, watch_only, rig, clock):
    fake_github.create_repo(REPO)
    make_mr(fake_github, rig)
    fake_github.add_fault("rate_limit", path="/graphql", reset_in=600, times=1)
    run(clock)
    [escalation] = escalations("github:rate_limited")
    assert "hourly GitHub rate limit is spent" in escalation.title
    assert "secondary" not in escalation.body


def _passes(clock, minutes, **kwargs) -> None:
    """A pass a minute, as the schedule runs them."""
    for _ in range(minutes):
        run(clock, **kwargs)
        clock.advance(minutes=1)


def _waiting_mrs(fake_github, rig, clock, count):
    fake_github.create_repo(REPO, required_approvals=1)
    mrs = [make_mr(fake_github, rig) for _ in range(count)]
    run(clock)
    assert all(reload(mr).awaiting_approval for mr in mrs)
    clock.advance(minutes=1)
    fake_github.clear_requests()
    return mrs


def _nothing_failed(mrs) -> None:
    for mr in mrs:
        mr = reload(mr)
        assert mr.bead.status == BeadStatus.OPEN
        assert mr.source.status == BeadStatus.IN_REVIEW  # not reopened, not re-dispatched
        assert (mr.consecutive_transient_failures, mr.consecutive_malformed_failures) == (0, 0)
    assert events("pr.poll_failed") == []


def test_a_truncated_graphql_body_for_hours_fails_no_mr_and_raises_one_escalation(
    fake_github, town, rig, clock
):
    mrs = _waiting_mrs(fake_github, rig, clock, 8)
    fake_github.add_fault("malformed", path="/graphql", times=None)

    _passes(clock, 180)

    _nothing_failed(mrs)
    [escalation] = escalations("github:outage")
    assert "No merge request is failed" in escalation.body
    assert escalation.status == BeadStatus.OPEN
    # Backed off while it lasted (1, 1, 2, 4, 8, 16, 30, 30... minutes), not asked every pass:
    # 11 passes, each asking once and again once.
    assert len(fake_github.graphql_requests()) == 22
    town_row = Town.objects.get(pk=town.pk)
    assert town_row.github_blocked_until - clock.now <= timedelta(minutes=30)
    assert "invalid_response" in town_row.github_error


def test_a_502_for_hours_fails_no_waiting_mr_and_checks_resume_by_themselves(
    fake_github, town, rig, clock
):
    mrs = _waiting_mrs(fake_github, rig, clock, 4)
    fake_github.add_fault("status", path="/graphql", status=502, times=None)

    _passes(clock, 240)
    _nothing_failed(mrs)
    assert len(escalations("github:outage")) == 1

    fake_github.clear_faults()  # GitHub is back
    _passes(clock, 31)
    town_row = Town.objects.get(pk=town.pk)
    assert (town_row.github_blocked_until, town_row.github_error) == (None, "")
    [escalation] = escalations("github:outage")
    escalation.refresh_from_db()
    assert escalation.status == BeadStatus.CLOSED
    for mr in mrs:
        mr = reload(mr)
        assert mr.awaiting_approval
        assert mr.last_successful_check_at > clock.now - timedelta(minutes=2)
        assert mr.last_error == ""

    # The next outage backs off anew, from one minute, with an escalation of its own.
    fake_github.add_fault("status", path="/graphql", status=503, times=None)
    run(clock)
    town_row.refresh_from_db()
    assert town_row.github_blocked_until == clock.now + timedelta(minutes=1)
    assert sorted(e.status for e in escalations("github:outage")) == ["closed", "open"]


def test_graphql_time_outs_and_errors_naming_no_pr_fail_nothing(
    fake_github, watch_only, rig, clock
):
    fake_github.create_repo(REPO)
    mrs = [make_mr(fake_github, rig) for _ in range(3)]
    fake_github.add_fault("graphql_timeout", path="/graphql", times=None)
    _passes(clock, 60)
    _nothing_failed(mrs)
    assert len(escalations("github:outage")) == 1


def test_request_time_outs_fail_nothing(fake_github, watch_only, rig, clock):
    fake_github.create_repo(REPO)
    mr = make_mr(fake_github, rig)
    fake_github.add_fault("slow", path="/graphql", delay=0.5, times=None)

    def impatient(credential):
        return GitHubClient(credential, timeout=0.2)

    _passes(clock, 10, client_factory=impatient)
    _nothing_failed([mr])
    [escalation] = escalations("github:outage")
    assert escalation.status == BeadStatus.OPEN

    fake_github.clear_faults()
    _passes(clock, 10)  # GitHub answers in time again (a patient client: no flaky time-out)
    assert reload(mr).blocker == Blocker.READY
    escalation.refresh_from_db()
    assert escalation.status == BeadStatus.CLOSED


def test_a_whole_answer_fault_on_one_batch_keeps_the_other_batches_snapshots(
    fake_github, watch_only, rig, clock
):
    fake_github.create_repo(REPO)
    mrs = [make_mr(fake_github, rig) for _ in range(60)]  # two GraphQL documents
    # The first document fails, and so does its one repeat.
    fake_github.add_fault("status", path="/graphql", status=502, times=2)

    summary = run(clock)

    assert summary.checked == 23  # 37 in the first document, 23 in the second
    assert summary.failed == 0
    assert sum(reload(mr).blocker == Blocker.READY for mr in mrs) == 23
    assert sum(reload(mr).check_requested_at is not None for mr in mrs) == 37
    assert len(escalations("github:outage")) == 1


def test_an_error_about_one_pr_counts_against_it_and_fails_it_after_10_in_a_row(
    fake_github, watch_only, rig, clock
):
    fake_github.create_repo(REPO)
    other = make_mr(fake_github, rig)
    mr = make_mr(fake_github, rig)
    # GitHub answers the document, with an error at this PR's path only.
    fake_github.add_fault(
        "graphql_errors", path="/graphql", aliases=["pr1"], error_type="INTERNAL", times=None
    )
    _passes(clock, 9)
    assert reload(mr).bead.status == BeadStatus.OPEN
    assert reload(mr).consecutive_transient_failures == 9

    run(clock)
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.FAILED
    assert mr.bead.failure_code == "github_unreachable"
    assert "10 times in a row" in mr.bead.failure_message
    [failed] = events("pr.poll_failed")
    assert failed.label == "transient"
    assert reload(other).bead.status == BeadStatus.OPEN
    assert escalations("github:outage") == []


def test_an_error_about_a_pr_waiting_on_a_human_never_fails_it(fake_github, town, rig, clock):
    [mr] = _waiting_mrs(fake_github, rig, clock, 1)
    fake_github.add_fault(
        "graphql_errors", path="/graphql", aliases=["pr0"], error_type="INTERNAL", times=None
    )
    _passes(clock, 60)
    mr = reload(mr)
    assert mr.bead.status == BeadStatus.OPEN
    assert mr.awaiting_approval
    assert mr.consecutive_transient_failures == 60


def test_a_waiting_pr_failed_by_the_error_policy_ends_its_wait(fake_github, town, rig, clock):
    fake_github.create_repo(REPO, required_approvals=1)
    mr = make_mr(fake_github, rig)
    run(clock)
    assert reload(mr).awaiting_approval
    fake_github.state.repo(REPO).pulls.pop(mr.pr_number)  # the PR was deleted
    clock.advance(minutes=1)
    run(clock)
    assert reload(mr).bead.failure_code == "pr_not_found"
    [resolved] = events("pr.awaiting_approval_resolved")
    assert resolved.reason == "mr_failed"


def test_an_unreadable_town_token_pauses_the_town_with_one_escalation_naming_it(
    fake_github, watch_only, rig, clock, settings
):
    fake_github.create_repo(REPO)
    mrs = [make_mr(fake_github, rig) for _ in range(2)]
    watch_only.set_github_token("town-secret-token")
    watch_only.save()
    settings.SECRET_KEY = "a-new-secret-key"  # the stored token can no longer be decrypted

    for _ in range(30):
        run(clock)
        clock.advance(minutes=1)

    assert fake_github.requests == []
    assert all(reload(mr).bead.status == BeadStatus.OPEN for mr in mrs)
    assert all(reload(mr).check_requested_at is not None for mr in mrs)  # first when fixed
    assert events("pr.poll_failed") == []
    [escalation] = escalations("github:token_unreadable")
    assert "Token tried: town token" in escalation.body
    assert "SECRET_KEY_FALLBACKS" in escalation.body
    assert "enter the town's GitHub token again" in escalation.body
    assert "No merge request is failed" in escalation.body
    assert "town-secret-token" not in escalation.body + escalation.title
    town = Town.objects.get(pk=watch_only.pk)
    assert town.github_blocked_until is not None
    assert "cannot be decrypted" in town.github_error
