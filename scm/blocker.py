"""The blocker: what a pull request waits on (domain.md §4). Pure functions of a snapshot."""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from scm.types import MERGE_STATE_STATUSES, REVIEW_DECISIONS, PullRequestSnapshot, Refusal


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
    # The base branch takes changes only through GitHub's merge queue: enqueue, never merge.
    MERGE_QUEUE = "merge_queue"
    # In the merge queue (snapshot.queue_entry: position and state): GitHub merges it.
    QUEUED = "queued"
    # Carries a hold label (e.g. gastown:hold): never merged or enqueued while it does.
    HELD_BY_LABEL = "held_by_label"
    BEHIND = "behind"
    UNKNOWN = "unknown"
    READY = "ready"


# Blockers an agent can fix by pushing: they ask for rework (domain.md §3).
REWORK_BLOCKERS = frozenset(
    {Blocker.CONFLICT, Blocker.CHANGES_REQUESTED, Blocker.CHECKS_FAILING, Blocker.THREADS}
)


#: What a refused merge waits on. A refusal with no blocker is either final (FINAL_REFUSALS:
#: escalate once, no retry of this head) or says nothing about this head (head moved: look
#: again). Messages are GitHub's (scm.github_errors.classify_refusal reads them); rulesets
#: put "Repository rule violations found" and a paragraph per violated rule.
#:
#: ========================  =================  ============================================
#: Refusal                   Blocker            GitHub says
#: ========================  =================  ============================================
#: review_required           human_review       At least 2 approving reviews are required by
#:                                              reviewers with write access. / New changes
#:                                              require approval from someone other than the
#:                                              last pusher.
#: code_owner_review         human_review       Waiting on code owner review from octo/core.
#: changes_requested         changes_requested  Changes must be made before merging
#: checks_expected           checks_pending     Required status check "ci" is expected. /
#:                                              2 of 2 required status checks are expected.
#: checks_failing            checks_failing     Required status check "ci" is failing. / 2 of
#:                                              3 required status checks have not succeeded
#: threads_unresolved        threads            A conversation must be resolved before this
#:                                              pull request can be merged.
#: merge_queue_required      merge_queue        Changes must be made through the merge queue
#: draft                     draft              Pull Request is still a draft
#: signed_commits_required   (final)            Commits must have verified signatures.
#: linear_history_required   (final)            This branch must not contain merge commits.
#: branch_locked             (final)            Cannot change this locked branch / Cannot
#:                                              update this protected ref.
#: method_not_allowed        (final)            Squash merges are not allowed on this
#:                                              repository.
#: not_mergeable             (final)            Pull Request is not mergeable
#: unknown                   (final)            anything else
#: head_moved                (none: look again) Head branch was modified. Review and try the
#:                                              merge again. (409)
#: ========================  =================  ============================================
REFUSAL_BLOCKERS: dict[Refusal, Blocker] = {
    Refusal.REVIEW_REQUIRED: Blocker.HUMAN_REVIEW,
    Refusal.CODE_OWNER_REVIEW: Blocker.HUMAN_REVIEW,
    Refusal.CHANGES_REQUESTED: Blocker.CHANGES_REQUESTED,
    Refusal.CHECKS_EXPECTED: Blocker.CHECKS_PENDING,
    Refusal.CHECKS_FAILING: Blocker.CHECKS_FAILING,
    Refusal.THREADS_UNRESOLVED: Blocker.THREADS,
    Refusal.MERGE_QUEUE_REQUIRED: Blocker.MERGE_QUEUE,
    Refusal.DRAFT: Blocker.DRAFT,
}

#: Refusals a retry of the same head cannot change: escalated once, not retried on that head.
FINAL_REFUSALS = frozenset(
    {
        Refusal.SIGNED_COMMITS_REQUIRED,
        Refusal.LINEAR_HISTORY_REQUIRED,
        Refusal.BRANCH_LOCKED,
        Refusal.METHOD_NOT_ALLOWED,
        Refusal.NOT_MERGEABLE,
        Refusal.UNKNOWN,
    }
)


def refusal_blocker(refusal: Refusal) -> Blocker | None:
    """The blocker a refused merge holds the PR at; None for a final refusal or a moved
    head (see the table above)."""
    return REFUSAL_BLOCKERS.get(refusal)


def awaiting_approval(blocker: Blocker | str | None) -> bool:
    """True exactly when the pull request waits on a human's review."""
    return blocker == Blocker.HUMAN_REVIEW


def held_by(snapshot: PullRequestSnapshot, hold_labels: Collection[str]) -> str | None:
    """The hold label the PR carries, if any (GitHub compares label names ignoring case)."""
    wanted = {label.lower() for label in hold_labels}
    return next((label for label in snapshot.labels if label.lower() in wanted), None)


def derive_blocker(
    snapshot: PullRequestSnapshot,
    *,
    required_checks_only: bool = False,
    hold_labels: Collection[str] = (),
) -> Blocker:
    """First match wins, in domain.md §4's order.

    With `required_checks_only`, checks that branch protection does not require are ignored
    (a rig's rule); GitHub then reports UNSTABLE for their failures, which counts as ready.
    A PR in the merge queue is queued (GitHub merges it, whatever its labels); else one
    carrying any of `hold_labels` is held_by_label (who added it: GitHubClient.label_events).
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
    if snapshot.queue_entry is not None:
        # GitHub owns the merge now; a push or a failing merge group takes it out again.
        return Blocker.QUEUED
    if hold_labels and held_by(snapshot, hold_labels):
        return Blocker.HELD_BY_LABEL
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
