"""Plain values scm/ hands to the rest of the project (no PyGithub objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from django.conf import settings

from scm.errors import ScmError

ChecksSummary = Literal["passing", "pending", "failing", "none"]

MERGE_STATE_STATUSES = frozenset(
    {"BEHIND", "BLOCKED", "CLEAN", "DIRTY", "DRAFT", "HAS_HOOKS", "UNKNOWN", "UNSTABLE"}
)
REVIEW_DECISIONS = frozenset({"APPROVED", "CHANGES_REQUESTED", "REVIEW_REQUIRED"})
MERGEABLE_STATES = frozenset({"MERGEABLE", "CONFLICTING", "UNKNOWN"})
PULL_REQUEST_STATES = frozenset({"OPEN", "CLOSED", "MERGED"})


def pr_web_url(repo: str, number: int) -> str:
    """The pull request's page on GitHub (or GitHub Enterprise, per settings.GITHUB_WEB_URL)."""
    return f"{settings.GITHUB_WEB_URL.rstrip('/')}/{repo}/pull/{number}"


@dataclass(frozen=True, order=True)
class PullRequestRef:
    """Which pull request: `repo` is "owner/name"."""

    repo: str
    number: int

    @property
    def owner(self) -> str:
        return self.repo.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.repo.split("/", 1)[1]

    @property
    def url(self) -> str:
        return pr_web_url(self.repo, self.number)

    def __str__(self) -> str:
        return f"{self.repo}#{self.number}"


@dataclass(frozen=True)
class CheckRun:
    """One check run or commit status of the head commit. `state` is GitHub's own word:
    a check run's conclusion (SUCCESS, FAILURE, ...) or status when not completed
    (QUEUED, IN_PROGRESS, ...), or a commit status's state (SUCCESS, PENDING, EXPECTED, ...)."""

    name: str
    required: bool
    state: str


@dataclass(frozen=True)
class ReviewComment:
    author: str
    body: str


@dataclass(frozen=True)
class ReviewThread:
    """An unresolved review thread, as handed to a thread classifier."""

    path: str
    is_outdated: bool
    comments: tuple[ReviewComment, ...]


MERGE_QUEUE_ENTRY_STATES = frozenset(
    {"AWAITING_CHECKS", "LOCKED", "MERGEABLE", "QUEUED", "UNMERGEABLE"}
)
MERGE_METHODS = frozenset({"MERGE", "SQUASH", "REBASE"})


@dataclass(frozen=True)
class MergeQueueEntry:
    """The PR's place in its base branch's merge queue. `state` is GitHub's
    MergeQueueEntryState (QUEUED, AWAITING_CHECKS, MERGEABLE, UNMERGEABLE, LOCKED) or
    UNKNOWN. https://docs.github.com/en/graphql/reference/objects#mergequeueentry"""

    position: int
    state: str


@dataclass(frozen=True)
class AutoMergeRequest:
    """GitHub's native auto-merge, enabled on the PR: GitHub merges (or enqueues) it by
    itself once its rules are met. `method` is MERGE, SQUASH, REBASE or UNKNOWN;
    `enabled_by` a login (None: a deleted account)."""

    enabled_by: str | None
    method: str
    enabled_at: datetime | None = None


@dataclass(frozen=True)
class QueueRemoval:
    """The last time the merge queue dropped the PR (RemovedFromMergeQueueEvent): `reason` is
    GitHub's text, `head_sha` the head it dropped."""

    reason: str
    at: datetime | None
    head_sha: str | None

    @property
    def cause(self) -> Literal["checks_failing", "conflict", "other"]:
        text = self.reason.lower()
        if "conflict" in text:
            return "conflict"
        if "check" in text or "fail" in text:
            return "checks_failing"
        return "other"


@dataclass(frozen=True)
class LabelEvent:
    """Who added a label, and when (the latest LabeledEvent of that label)."""

    label: str
    actor: str | None
    at: datetime | None


@dataclass(frozen=True)
class PullRequestSnapshot:
    """What GitHub said about one pull request at `fetched_at`.

    Enum-like fields hold GitHub's value, or "UNKNOWN" for a value this code does not know
    (GitHub adds values over time; domain.md §4 treats them as unknown).
    """

    repo: str
    number: int
    url: str
    state: str
    merged: bool
    is_draft: bool
    review_decision: str | None
    merge_state_status: str
    mergeable: str
    head_sha: str
    head_ref: str
    base_ref: str
    checks: ChecksSummary
    failing_checks: tuple[CheckRun, ...]
    pending_checks: tuple[CheckRun, ...]
    unresolved_threads: int
    blocking_threads: int
    requested_reviewers: tuple[str, ...]
    fetched_at: datetime
    # Fields whose value GitHub did not give or gave in a form we could not read; the rest
    # of the snapshot is still GitHub's answer.
    odd_fields: tuple[str, ...] = field(default=())
    node_id: str = ""  # GitHub's global ID, what mutations take
    # The base branch takes changes only through its merge queue (isMergeQueueEnabled): a
    # ready PR is enqueued (GitHubClient.enqueue), never merged.
    merge_queue_required: bool = False
    queue_entry: MergeQueueEntry | None = None
    auto_merge: AutoMergeRequest | None = None
    labels: tuple[str, ...] = ()  # names only; GitHubClient.label_events says who added one
    merge_commit_sha: str = ""  # a merged PR's merge commit (mergeCommit.oid)
    # Approving reviews the base branch's protection requires: classic protection's
    # requiredApprovingReviewCount, or the strictest ruleset's; None when the token sees no
    # count (no rule asks for approvals, or it may not read them). `approvals_given`: writers
    # whose latest review approves, when asked (None: not asked, see approvals_missing).
    approvals_required: int | None = None
    approvals_given: int | None = None

    @property
    def ref(self) -> PullRequestRef:
        return PullRequestRef(self.repo, self.number)

    @property
    def approvals_count_open(self) -> bool:
        """Waiting on reviews with a count the snapshot alone does not settle: more than one
        approval required (how many are given?), or no count seen (a ruleset's?)."""
        return (
            self.review_decision == "REVIEW_REQUIRED"
            and self.approvals_given is None
            and (self.approvals_required is None or self.approvals_required > 1)
        )

    @property
    def approvals_missing(self) -> int | None:
        """How many more approvals GitHub requires: 0 once approved; None when not known (no
        count seen, or the wait is on something a count does not say: code owners, a
        change request)."""
        if self.review_decision == "APPROVED":
            return 0
        if self.review_decision != "REVIEW_REQUIRED" or not self.approvals_required:
            return None
        if self.approvals_required == 1:
            # Still waiting, so the one that counts is missing (a code owner's, when
            # someone else approved).
            return 1
        if self.approvals_given is None:
            return None
        missing = self.approvals_required - self.approvals_given
        return missing if missing > 0 else None


WriteKind = Literal["done", "head_moved", "clean", "not_allowed", "refused", "transient"]


@dataclass(frozen=True)
class WriteOutcome:
    """The answer to a GraphQL write (enqueue, enable or disable auto-merge).

    kind: done; head_moved (the head is not the SHA checked: look again); clean (auto-merge
    refused because GitHub could merge the PR right now, its merge state CLEAN, UNSTABLE or
    HAS_HOOKS: merge it); not_allowed (the
    repository does not allow auto-merge, or the base has no merge queue); refused (any other
    of GitHub's refusals, in `message`); transient (a 5xx or time-out: it may have happened,
    look again before retrying).
    """

    kind: WriteKind
    message: str
    queue_entry: MergeQueueEntry | None = None
    auto_merge: AutoMergeRequest | None = None

    @property
    def done(self) -> bool:
        return self.kind == "done"


@dataclass(frozen=True)
class SnapshotResult:
    """Per pull request: either a snapshot or the error that concerns only this PR."""

    ref: PullRequestRef
    snapshot: PullRequestSnapshot | None = None
    error: ScmError | None = None

    @property
    def ok(self) -> bool:
        return self.snapshot is not None


class Refusal(StrEnum):
    """Why GitHub refused a merge, read from its message (scm.github_errors.classify_refusal);
    scm.blocker.refusal_blocker says what each one waits on."""

    REVIEW_REQUIRED = "review_required"
    CODE_OWNER_REVIEW = "code_owner_review"
    CHANGES_REQUESTED = "changes_requested"
    CHECKS_EXPECTED = "checks_expected"
    CHECKS_FAILING = "checks_failing"
    THREADS_UNRESOLVED = "threads_unresolved"
    MERGE_QUEUE_REQUIRED = "merge_queue_required"
    SIGNED_COMMITS_REQUIRED = "signed_commits_required"
    LINEAR_HISTORY_REQUIRED = "linear_history_required"
    BRANCH_LOCKED = "branch_locked"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    DRAFT = "draft"
    NOT_MERGEABLE = "not_mergeable"
    HEAD_MOVED = "head_moved"
    UNKNOWN = "unknown"


#: MergeOutcome.kind for each refusal: the coarse family callers read before `refusal`
#: existed. Thread resolution stays review_required there (it parked the MR before);
#: the merge queue never is (it is no human's to give).
REFUSAL_FAMILY: dict[Refusal, str] = {
    Refusal.REVIEW_REQUIRED: "review_required",
    Refusal.CODE_OWNER_REVIEW: "review_required",
    Refusal.CHANGES_REQUESTED: "review_required",
    Refusal.THREADS_UNRESOLVED: "review_required",
    Refusal.CHECKS_EXPECTED: "checks_required",
    Refusal.CHECKS_FAILING: "checks_required",
    Refusal.MERGE_QUEUE_REQUIRED: "merge_queue_required",
    Refusal.SIGNED_COMMITS_REQUIRED: "permanent",
    Refusal.LINEAR_HISTORY_REQUIRED: "permanent",
    Refusal.BRANCH_LOCKED: "permanent",
    Refusal.METHOD_NOT_ALLOWED: "method_not_allowed",
    Refusal.DRAFT: "not_mergeable",
    Refusal.NOT_MERGEABLE: "not_mergeable",
    Refusal.HEAD_MOVED: "head_moved",
    Refusal.UNKNOWN: "permanent",
}


@dataclass(frozen=True)
class MergeOutcome:
    """The answer to one merge call.

    kind: merged, transient, or a refused merge's family (REFUSAL_FAMILY): method_not_allowed
    (every configured method refused), review_required, checks_required,
    merge_queue_required, not_mergeable, head_moved, permanent. `refusal` says exactly why
    (None when merged or transient); scm.blocker.refusal_blocker maps it to a blocker.
    """

    kind: str
    method: str | None
    message: str
    sha: str | None = None
    refusal: Refusal | None = None

    @classmethod
    def refused(cls, refusal: Refusal, method: str | None, message: str) -> MergeOutcome:
        return cls(REFUSAL_FAMILY[refusal], method, message, refusal=refusal)

    @property
    def merged(self) -> bool:
        return self.kind == "merged"
