"""Plain values scm/ hands to the rest of the project (no PyGithub objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass(frozen=True)
class PullRequestSnapshot:
    """What GitHub said about one pull request at `fetched_at`.

    Enum-like fields hold GitHub's value, or "UNKNOWN" for a value this code does not know
    (GitHub adds values over time; SPEC §4 treats them as unknown).
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

    @property
    def ref(self) -> PullRequestRef:
        return PullRequestRef(self.repo, self.number)


@dataclass(frozen=True)
class SnapshotResult:
    """Per pull request: either a snapshot or the error that concerns only this PR."""

    ref: PullRequestRef
    snapshot: PullRequestSnapshot | None = None
    error: ScmError | None = None

    @property
    def ok(self) -> bool:
        return self.snapshot is not None


@dataclass(frozen=True)
class MergeOutcome:
    """The answer to one merge call.

    kind: merged, method_not_allowed (every configured method refused), review_required,
    checks_required, not_mergeable, head_moved, transient, permanent.
    """

    kind: str
    method: str | None
    message: str
    sha: str | None = None

    @property
    def merged(self) -> bool:
        return self.kind == "merged"
