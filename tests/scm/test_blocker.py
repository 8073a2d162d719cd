from dataclasses import replace
from datetime import UTC, datetime

import pytest

from scm.blocker import REWORK_BLOCKERS, Blocker, awaiting_approval, derive_blocker
from scm.types import CheckRun, PullRequestSnapshot

CLEAN = PullRequestSnapshot(
    repo="octo/app",
    number=1,
    url="https://github.com/octo/app/pull/1",
    state="OPEN",
    merged=False,
    is_draft=False,
    review_decision=None,
    merge_state_status="CLEAN",
    mergeable="MERGEABLE",
    head_sha="abc",
    head_ref="feature",
    base_ref="main",
    checks="passing",
    failing_checks=(),
    pending_checks=(),
    unresolved_threads=0,
    blocking_threads=0,
    requested_reviewers=(),
    fetched_at=datetime(2025, 1, 1, tzinfo=UTC),
)
REQUIRED_FAIL = CheckRun("ci", required=True, state="FAILURE")
OPTIONAL_FAIL = CheckRun("lint", required=False, state="FAILURE")
REQUIRED_PENDING = CheckRun("ci", required=True, state="IN_PROGRESS")
OPTIONAL_PENDING = CheckRun("lint", required=False, state="QUEUED")


def snap(**changes: object) -> PullRequestSnapshot:
    return replace(CLEAN, **changes)  # type: ignore[arg-type]


ROWS = [
    # domain.md §4, first match wins
    ("merged", snap(state="MERGED", merged=True, merge_state_status="UNKNOWN"), Blocker.MERGED),
    ("merged beats everything", snap(state="MERGED", merged=True, is_draft=True), Blocker.MERGED),
    ("closed", snap(state="CLOSED"), Blocker.CLOSED),
    ("draft flag", snap(is_draft=True, merge_state_status="DRAFT"), Blocker.DRAFT),
    ("draft beats conflict", snap(is_draft=True, mergeable="CONFLICTING"), Blocker.DRAFT),
    ("merge state DIRTY", snap(merge_state_status="DIRTY"), Blocker.CONFLICT),
    (
        "mergeable CONFLICTING",
        snap(mergeable="CONFLICTING", merge_state_status="UNKNOWN"),
        Blocker.CONFLICT,
    ),
    (
        "changes requested",
        snap(review_decision="CHANGES_REQUESTED", merge_state_status="BLOCKED"),
        Blocker.CHANGES_REQUESTED,
    ),
    (
        "changes requested beats failing checks",
        snap(review_decision="CHANGES_REQUESTED", failing_checks=(REQUIRED_FAIL,)),
        Blocker.CHANGES_REQUESTED,
    ),
    (
        "failing check",
        snap(merge_state_status="UNSTABLE", checks="failing", failing_checks=(OPTIONAL_FAIL,)),
        Blocker.CHECKS_FAILING,
    ),
    (
        "BLOCKED with failing required check is checks_failing, not human_review",
        snap(
            merge_state_status="BLOCKED",
            review_decision="REVIEW_REQUIRED",
            checks="failing",
            failing_checks=(REQUIRED_FAIL,),
        ),
        Blocker.CHECKS_FAILING,
    ),
    (
        "BLOCKED with pending required check is checks_pending",
        snap(merge_state_status="BLOCKED", checks="pending", pending_checks=(REQUIRED_PENDING,)),
        Blocker.CHECKS_PENDING,
    ),
    (
        "failing beats pending",
        snap(failing_checks=(REQUIRED_FAIL,), pending_checks=(OPTIONAL_PENDING,)),
        Blocker.CHECKS_FAILING,
    ),
    (
        "unresolved blocking threads",
        snap(unresolved_threads=2, blocking_threads=1),
        Blocker.THREADS,
    ),
    ("threads judged not blocking", snap(unresolved_threads=2, blocking_threads=0), Blocker.READY),
    (
        "review required",
        snap(review_decision="REVIEW_REQUIRED", merge_state_status="BLOCKED"),
        Blocker.HUMAN_REVIEW,
    ),
    (
        "BLOCKED while checks pass and approved: code owners etc.",
        snap(review_decision="APPROVED", merge_state_status="BLOCKED"),
        Blocker.HUMAN_REVIEW,
    ),
    (
        "BLOCKED with no checks at all",
        snap(merge_state_status="BLOCKED", checks="none"),
        Blocker.HUMAN_REVIEW,
    ),
    ("behind", snap(merge_state_status="BEHIND"), Blocker.BEHIND),
    (
        "review required beats behind",
        snap(merge_state_status="BEHIND", review_decision="REVIEW_REQUIRED"),
        Blocker.HUMAN_REVIEW,
    ),
    (
        "merge state UNKNOWN (GitHub computing)",
        snap(merge_state_status="UNKNOWN", mergeable="UNKNOWN"),
        Blocker.UNKNOWN,
    ),
    ("mergeable UNKNOWN with CLEAN", snap(mergeable="UNKNOWN"), Blocker.UNKNOWN),
    ("clean", snap(), Blocker.READY),
    ("clean approved", snap(review_decision="APPROVED"), Blocker.READY),
    ("has hooks", snap(merge_state_status="HAS_HOOKS"), Blocker.READY),
    (
        "unstable with nothing visible failing counts as failing",
        snap(merge_state_status="UNSTABLE"),
        Blocker.CHECKS_FAILING,
    ),
    (
        "a merge state GitHub adds later",
        snap(merge_state_status="QUEUED_FOR_FUTURE"),
        Blocker.UNKNOWN,
    ),
    ("a normalised unknown review decision", snap(review_decision="UNKNOWN"), Blocker.UNKNOWN),
    ("a state GitHub adds later", snap(state="UNKNOWN"), Blocker.UNKNOWN),
    ("an unreadable field is never ready", snap(odd_fields=("isDraft",)), Blocker.UNKNOWN),
]


@pytest.mark.parametrize(("snapshot", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_derive_blocker_follows_spec_order(
    snapshot: PullRequestSnapshot, expected: Blocker
) -> None:
    assert derive_blocker(snapshot) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("BEHIND", Blocker.BEHIND),
        ("BLOCKED", Blocker.HUMAN_REVIEW),
        ("CLEAN", Blocker.READY),
        ("DIRTY", Blocker.CONFLICT),
        ("DRAFT", Blocker.DRAFT),
        ("HAS_HOOKS", Blocker.READY),
        ("UNKNOWN", Blocker.UNKNOWN),
        ("UNSTABLE", Blocker.CHECKS_FAILING),
        ("SOMETHING_NEW", Blocker.UNKNOWN),
    ],
)
def test_every_merge_state_status_has_a_blocker(status: str, expected: Blocker) -> None:
    assert derive_blocker(snap(merge_state_status=status)) == expected


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ("APPROVED", Blocker.READY),
        ("CHANGES_REQUESTED", Blocker.CHANGES_REQUESTED),
        ("REVIEW_REQUIRED", Blocker.HUMAN_REVIEW),
        (None, Blocker.READY),
        ("UNKNOWN", Blocker.UNKNOWN),
    ],
)
def test_every_review_decision_has_a_blocker(decision: str | None, expected: Blocker) -> None:
    assert derive_blocker(snap(review_decision=decision)) == expected


def test_unstable_with_only_optional_checks_failing_is_ready_under_required_checks_rule() -> None:
    snapshot = snap(
        merge_state_status="UNSTABLE", checks="failing", failing_checks=(OPTIONAL_FAIL,)
    )
    assert derive_blocker(snapshot, required_checks_only=True) == Blocker.READY
    assert derive_blocker(snapshot) == Blocker.CHECKS_FAILING


def test_required_check_failing_still_blocks_under_required_checks_rule() -> None:
    snapshot = snap(merge_state_status="BLOCKED", failing_checks=(REQUIRED_FAIL, OPTIONAL_FAIL))
    assert derive_blocker(snapshot, required_checks_only=True) == Blocker.CHECKS_FAILING


def test_optional_pending_check_is_ignored_under_required_checks_rule() -> None:
    snapshot = snap(merge_state_status="UNSTABLE", pending_checks=(OPTIONAL_PENDING,))
    assert derive_blocker(snapshot, required_checks_only=True) == Blocker.READY
    assert derive_blocker(snapshot) == Blocker.CHECKS_PENDING


def test_awaiting_approval_is_true_exactly_for_human_review() -> None:
    assert [b for b in Blocker if awaiting_approval(b)] == [Blocker.HUMAN_REVIEW]
    assert awaiting_approval(None) is False


def test_rework_blockers_are_the_ones_an_agent_can_fix() -> None:
    assert {
        Blocker.CONFLICT,
        Blocker.CHANGES_REQUESTED,
        Blocker.CHECKS_FAILING,
        Blocker.THREADS,
    } == REWORK_BLOCKERS


def _parsed(rollup: dict, *, merge_state: str = "BLOCKED") -> PullRequestSnapshot:
    from scm.snapshots import parse_snapshot
    from scm.types import PullRequestRef

    node = {
        "number": 1,
        "url": "https://github.com/octo/app/pull/1",
        "state": "OPEN",
        "merged": False,
        "isDraft": False,
        "reviewDecision": None,
        "mergeStateStatus": merge_state,
        "mergeable": "MERGEABLE",
        "headRefOid": "abc",
        "headRefName": "feature",
        "baseRefName": "main",
        "reviewRequests": {"nodes": []},
        "reviewThreads": {"totalCount": 0, "nodes": []},
        "statusCheckRollup": rollup,
    }
    ref = PullRequestRef("octo/app", 1)
    return parse_snapshot(ref, node, fetched_at=CLEAN.fetched_at, url=ref.url)


def _passing_page(count: int = 50) -> list[dict]:
    return [
        {
            "__typename": "CheckRun",
            "name": f"check-{i}",
            "status": "COMPLETED",
            "conclusion": "SUCCESS",
            "isRequired": False,
        }
        for i in range(count)
    ]


@pytest.mark.parametrize(
    ("rollup_state", "expected"),
    [
        ("FAILURE", Blocker.CHECKS_FAILING),
        ("ERROR", Blocker.CHECKS_FAILING),
        ("PENDING", Blocker.CHECKS_PENDING),
        ("EXPECTED", Blocker.CHECKS_PENDING),
    ],
)
@pytest.mark.parametrize("required_checks_only", [False, True])
def test_rollup_state_wins_over_a_first_page_of_passing_checks(
    rollup_state: str, expected: Blocker, required_checks_only: bool
) -> None:
    snapshot = _parsed(
        {"state": rollup_state, "contexts": {"totalCount": 60, "nodes": _passing_page()}}
    )
    assert snapshot.checks == ("failing" if expected == Blocker.CHECKS_FAILING else "pending")
    assert derive_blocker(snapshot, required_checks_only=required_checks_only) == expected


def test_rollup_failure_past_the_page_is_found_beside_a_visible_optional_failure() -> None:
    lint = {
        "__typename": "CheckRun",
        "name": "lint",
        "status": "COMPLETED",
        "conclusion": "FAILURE",
        "isRequired": False,
    }
    page = [*_passing_page(49), lint]
    snapshot = _parsed({"state": "FAILURE", "contexts": {"totalCount": 60, "nodes": page}})
    assert derive_blocker(snapshot, required_checks_only=True) == Blocker.CHECKS_FAILING


def test_hidden_failure_of_an_unstable_pr_is_optional_under_required_checks_rule() -> None:
    # UNSTABLE: GitHub says required checks pass, so what fails past the page is optional.
    snapshot = _parsed(
        {"state": "FAILURE", "contexts": {"totalCount": 60, "nodes": _passing_page()}},
        merge_state="UNSTABLE",
    )
    assert derive_blocker(snapshot, required_checks_only=True) == Blocker.READY
    assert derive_blocker(snapshot) == Blocker.CHECKS_FAILING


def test_rollup_success_with_every_check_listed_is_passing() -> None:
    snapshot = _parsed(
        {"state": "SUCCESS", "contexts": {"totalCount": 50, "nodes": _passing_page()}},
        merge_state="CLEAN",
    )
    assert snapshot.checks == "passing"
    assert derive_blocker(snapshot) == Blocker.READY
