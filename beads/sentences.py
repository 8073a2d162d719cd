"""What a merge request is doing, as one sentence for people (docs/domain.md §4, §8).

The one place that words an MR's state and blocker: the dashboard's lists, the bead page,
the convoy page and the admin all call `merge_request_status`, so an MR reads the same
everywhere. GitHub's raw values (review decision, merge state) stay in the pages' details.
"""

from __future__ import annotations

from dataclasses import dataclass

from beads.models import Blocker, MergeRequest, MergeRequestState

#: Failure codes (Bead.failure_code, Convoy.failure_reason) in plain words. A code this list
#: does not know (written by another tool or a shell) reads with its underscores as spaces.
FAILURE_WORDS: dict[str, str] = {
    "agent_failed": "the agent could not finish it",
    "dispatch_exhausted": "no agent finished it in its dispatch attempts",
    "review_dispatch_exhausted": "its review could not be dispatched",
    "orphaned_review": "nobody watched its PR for 30 minutes",
    "pr_open_failed": "its pull request could not be opened",
    "pr_closed": "its PR was closed without merging",
    "pr_not_found": "its PR is not on GitHub",
    "unrecognized_url": "its PR URL is not a GitHub pull request",
    "github_unreachable": "GitHub did not answer about its PR",
    "github_invalid_response": "GitHub's answers about its PR were unreadable",
    "failed_by_user": "failed by a team lead",
    "convoy_closed": "its convoy was closed",
    "timed_out": "timed out",
    "landing_mr_exhausted": "every landing attempt failed",
}


def code_words(code: str) -> str:
    """A code no list words, as people can read it: "lost_in_space" is "lost in space"."""
    return code.replace("_", " ").strip()


def failure_words(code: str) -> str:
    """A failure code as people read it: "timed out", "its PR was closed without merging"."""
    return FAILURE_WORDS.get(code) or code_words(code)


def _people(names: object) -> str:
    listed = [n for n in names if isinstance(n, str) and n] if isinstance(names, list) else []
    if not listed:
        return ""
    if len(listed) == 1:
        return listed[0]
    return f"{', '.join(listed[:-1])} or {listed[-1]}"


def plural(n: int, word: str) -> str:
    """ "1 approval", "2 approvals": for the words that take an s."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _blocker_sentence(mr: MergeRequest) -> str:
    blocker = mr.blocker
    if blocker == Blocker.HUMAN_REVIEW:
        who = _people(mr.requested_reviewers)
        # The count is known when the token may read the branch's protection (scm's
        # PullRequestSnapshot.approvals_missing); without it, the sentence has no number.
        count = mr.approvals_missing
        if count:
            needed = plural(count, "approval")
            return f"needs {needed} from {who}" if who else f"needs {needed} (no reviewer named)"
        return f"needs approval from {who}" if who else "needs an approval (no reviewer named)"
    if blocker == Blocker.CHECKS_FAILING:
        failing = [c for c in mr.failing_checks or [] if isinstance(c, str)]
        return f"CI failing: {', '.join(failing)}" if failing else "CI failing"
    if blocker == Blocker.CHECKS_PENDING:
        return "waiting on checks"
    if blocker == Blocker.CHANGES_REQUESTED:
        return "a reviewer asked for changes"
    if blocker == Blocker.CONFLICT:
        return f"conflicts with {mr.target_branch}" if mr.target_branch else "has conflicts"
    if blocker == Blocker.DRAFT:
        return "still a draft"
    if blocker == Blocker.THREADS:
        return f"{plural(mr.blocking_threads or 1, 'unresolved review thread')} to settle"
    if blocker == Blocker.BEHIND:
        return f"behind {mr.target_branch}, to be updated" if mr.target_branch else "behind"
    if blocker == Blocker.MERGE_QUEUE:
        return "goes through the merge queue once ready"
    if blocker == Blocker.QUEUED:
        position = mr.queue_position
        return f"queued for merge, position {position}" if position else "queued for merge"
    if blocker == Blocker.HELD_BY_LABEL:
        return "held by a label on the PR"
    if blocker == Blocker.UNKNOWN:
        return "waiting on GitHub to work out whether it can merge"
    if blocker == Blocker.READY:
        return "ready to merge"
    if blocker == Blocker.MERGED:
        return "PR merged"
    if blocker == Blocker.CLOSED:
        return "PR closed without merging"
    return "waiting for the first check of its PR"


@dataclass(frozen=True)
class MergeRequestStatus:
    """The sentence, a tone for its badge, and what is happening about it right now."""

    text: str
    tone: str  # a CSS class: "waiting", "failing", "ready", "done", "failed"
    pending: str = ""  # "checking now", "merging now": a check asked for and not yet run

    def __str__(self) -> str:
        return f"{self.text} ({self.pending})" if self.pending else self.text


_TONES: dict[str, str] = {
    Blocker.HUMAN_REVIEW: "waiting",
    Blocker.CHECKS_PENDING: "waiting",
    Blocker.UNKNOWN: "waiting",
    Blocker.QUEUED: "waiting",
    Blocker.MERGE_QUEUE: "waiting",
    Blocker.HELD_BY_LABEL: "waiting",
    Blocker.READY: "ready",
    Blocker.MERGED: "done",
    Blocker.NONE: "waiting",
}


def merge_request_status(*, merge_request: MergeRequest) -> MergeRequestStatus:
    """What the MR is doing, in plain words: "needs approval from alice", "CI failing: lint",
    "merged", "failed: its PR was closed without merging"; with "checking now" while a
    requested check has not run."""
    mr = merge_request
    if mr.state == MergeRequestState.MERGED:
        return MergeRequestStatus("merged", "done")
    if mr.state == MergeRequestState.FAILED:
        code = mr.bead.failure_code if mr.bead_id else ""
        text = f"failed: {failure_words(code)}" if code else "failed"
        # A failed landing MR a suppression holds still waits on its reviewer.
        if getattr(mr, "held", False) and mr.blocker == Blocker.HUMAN_REVIEW:
            text += f"; its PR still {_blocker_sentence(mr)}"
        return MergeRequestStatus(text, "failed")
    if not mr.pr_url:
        return MergeRequestStatus("waiting for its pull request to be opened", "waiting")
    pending = ""
    requested = mr.check_requested_at
    if requested is not None and (mr.last_checked_at is None or mr.last_checked_at < requested):
        pending = "merging now" if mr.merge_requested_at else "checking now"
    return MergeRequestStatus(_blocker_sentence(mr), _TONES.get(mr.blocker, "failing"), pending)
