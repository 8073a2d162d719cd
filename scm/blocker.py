"""The blocker: what a pull request waits on (SPEC §4). Pure functions of a snapshot."""

from __future__ import annotations

from enum import StrEnum

from scm.types import MERGE_STATE_STATUSES, REVIEW_DECISIONS, PullRequestSnapshot


class Blocker(StrEnum):
    MERGED = "merged"
    CLOSED = "closed"
    DRAFT = "draft"
    CONFLICT = "conflict"
    CHANGES_REQUESTED = "changes_requested"
    CHECKS_FAILING = "checks_failing"
    CHECKS_PENDING = "checks_pending"
    THREADS = "threads"
    HUMAN_REVIEW = "human_review"
    BEHIND = "behind"
    UNKNOWN = "unknown"
    READY = "ready"


# Blockers an agent can fix by pushing: they ask for rework (SPEC §3).
REWORK_BLOCKERS = frozenset(
    {Blocker.CONFLICT, Blocker.CHANGES_REQUESTED, Blocker.CHECKS_FAILING, Blocker.THREADS}
)


def awaiting_approval(blocker: Blocker | str | None) -> bool:
    """True exactly when the pull request waits on a human's review."""
    return blocker == Blocker.HUMAN_REVIEW


def derive_blocker(snapshot: PullRequestSnapshot, *, required_checks_only: bool = False) -> Blocker:
    """First match wins, in SPEC §4's order.

    With `required_checks_only`, checks that branch protection does not require are ignored
    (a rig's rule); GitHub then reports UNSTABLE for their failures, which counts as ready.
    """
    status = snapshot.merge_state_status
    decision = snapshot.review_decision
    failing = [c for c in snapshot.failing_checks if c.required or not required_checks_only]
    pending = [c for c in snapshot.pending_checks if c.required or not required_checks_only]

    if snapshot.merged or snapshot.state == "MERGED":
        return Blocker.MERGED
    if snapshot.state == "CLOSED":
        return Blocker.CLOSED
    if snapshot.state != "OPEN":
        return Blocker.UNKNOWN
    if snapshot.is_draft or status == "DRAFT":
        return Blocker.DRAFT
    if status == "DIRTY" or snapshot.mergeable == "CONFLICTING":
        return Blocker.CONFLICT
    if decision == "CHANGES_REQUESTED":
        return Blocker.CHANGES_REQUESTED
    if failing:
        return Blocker.CHECKS_FAILING
    if pending:
        return Blocker.CHECKS_PENDING
    if snapshot.blocking_threads > 0:
        return Blocker.THREADS
    # BLOCKED with checks passing and nothing above to explain it: code-owner review,
    # approval of the latest push, conversation resolution... all wait for a human.
    if decision == "REVIEW_REQUIRED" or status == "BLOCKED":
        return Blocker.HUMAN_REVIEW
    if status == "BEHIND":
        return Blocker.BEHIND
    if status not in MERGE_STATE_STATUSES or status == "UNKNOWN":
        return Blocker.UNKNOWN
    if decision is not None and decision not in REVIEW_DECISIONS:
        return Blocker.UNKNOWN
    if snapshot.mergeable not in {"MERGEABLE"}:
        # GitHub is still computing mergeability (or said something new).
        return Blocker.UNKNOWN
    if snapshot.odd_fields:
        # Part of GitHub's answer could not be read: never call that ready (fail closed).
        return Blocker.UNKNOWN
    if status in {"CLEAN", "HAS_HOOKS"}:
        return Blocker.READY
    if status == "UNSTABLE":
        # A non-passing check GitHub knows of. Under the rig's rule only required checks
        # count, and none is failing (else we returned above); otherwise a failure we could
        # not see (e.g. past the contexts page) still counts: fail closed.
        return Blocker.READY if required_checks_only else Blocker.CHECKS_FAILING
    return Blocker.UNKNOWN
