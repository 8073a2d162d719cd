"""Reading one pull request's GraphQL answer into a PullRequestSnapshot.

Every field is read on its own: a value GitHub added later becomes "UNKNOWN", a missing
field is noted in `odd_fields`, and neither discards the rest of the answer (domain.md §4). The
merge-queue, auto-merge and label fields, absent, read as none (a merge GitHub refuses for the
queue says so itself); present but unreadable, they are odd.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from scm.types import (
    MERGE_METHODS,
    MERGE_QUEUE_ENTRY_STATES,
    MERGE_STATE_STATUSES,
    MERGEABLE_STATES,
    PULL_REQUEST_STATES,
    REVIEW_DECISIONS,
    AutoMergeRequest,
    CheckRun,
    ChecksSummary,
    MergeQueueEntry,
    PullRequestRef,
    PullRequestSnapshot,
    ReviewComment,
    ReviewThread,
)

# https://docs.github.com/en/graphql/reference/enums#checkconclusionstate
PASSING = {"SUCCESS", "NEUTRAL", "SKIPPED"}
FAILING = {"FAILURE", "TIMED_OUT", "CANCELLED", "ACTION_REQUIRED", "STARTUP_FAILURE", "ERROR"}


class _Reader:
    def __init__(self, node: dict[str, Any]) -> None:
        self.node = node
        self.odd: list[str] = []

    def enum(self, key: str, allowed: frozenset[str], *, nullable: bool = False) -> str | None:
        value = self.node.get(key)
        if value is None and nullable and key in self.node:
            return None
        if not isinstance(value, str) or value not in allowed:
            self.odd.append(key)
            return "UNKNOWN"
        return value

    def boolean(self, key: str) -> bool:
        value = self.node.get(key)
        if not isinstance(value, bool):
            self.odd.append(key)
            return False
        return value

    def text(self, key: str) -> str:
        value = self.node.get(key)
        if not isinstance(value, str):
            self.odd.append(key)
            return ""
        return value

    def nodes(self, *path: str) -> list[dict[str, Any]]:
        value: Any = self.node
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, list):
            self.odd.append(".".join(path[:-1]) or path[0])
            return []
        return [n for n in value if isinstance(n, dict)]


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def _queue_entry(read: _Reader) -> MergeQueueEntry | None:
    entry = read.node.get("mergeQueueEntry")
    if entry is None:
        return None
    position = entry.get("position") if isinstance(entry, dict) else None
    if not isinstance(entry, dict) or isinstance(position, bool) or not isinstance(position, int):
        # In a queue we cannot read: still queued (GitHub owns the merge), never "not queued".
        read.odd.append("mergeQueueEntry")
        return MergeQueueEntry(position=0, state="UNKNOWN")
    return MergeQueueEntry(
        position=position, state=_Reader(entry).enum("state", MERGE_QUEUE_ENTRY_STATES) or "UNKNOWN"
    )


def _auto_merge(read: _Reader) -> AutoMergeRequest | None:
    request = read.node.get("autoMergeRequest")
    if request is None:
        return None
    if not isinstance(request, dict):
        read.odd.append("autoMergeRequest")
        return AutoMergeRequest(enabled_by=None, method="UNKNOWN")
    by = request.get("enabledBy")
    login = by.get("login") if isinstance(by, dict) else None
    return AutoMergeRequest(
        enabled_by=login if isinstance(login, str) else None,
        method=_Reader(request).enum("mergeMethod", MERGE_METHODS) or "UNKNOWN",
        enabled_at=parse_time(request.get("enabledAt")),
    )


def _check(node: dict[str, Any]) -> tuple[CheckRun, str] | None:
    """A context and how it counts: passing, pending or failing."""
    required = node.get("isRequired") is True
    if node.get("__typename") == "StatusContext":
        name, state = node.get("context"), node.get("state")
        verdict = "passing" if state == "SUCCESS" else "failing" if state in FAILING else "pending"
    else:
        name, status, conclusion = node.get("name"), node.get("status"), node.get("conclusion")
        if status == "COMPLETED":
            state = conclusion
            verdict = (
                "passing"
                if conclusion in PASSING
                else "failing"
                if conclusion in FAILING
                else "pending"  # STALE or a conclusion GitHub added later: not done yet
            )
        else:
            state, verdict = status, "pending"
    if not isinstance(name, str):
        return None
    return CheckRun(name=name, required=required, state=str(state or "UNKNOWN")), verdict


ROLLUP_FAILING = {"FAILURE", "ERROR"}
ROLLUP_PENDING = {"PENDING", "EXPECTED"}


def _account_for_unlisted(
    rollup: dict[str, Any],
    listed: int,
    merge_state: Any,
    failing: list[CheckRun],
    pending: list[CheckRun],
) -> None:
    """The rollup's state covers every context, the page only CONTEXTS_LIMIT of them: when
    the state says failing (or pending) and the page does not show why, a check past the
    page does. Without this a PR with 60 checks whose hidden required check fails, merge
    state BLOCKED, would be read as waiting on a human instead of on its checks.

    Whether the hidden check is required is unknown; UNSTABLE means GitHub sees the required
    checks pass, so there it is optional, else it counts as required (fail closed)."""
    state = rollup.get("state")
    contexts = rollup.get("contexts")
    total = contexts.get("totalCount") if isinstance(contexts, dict) else None
    truncated = not isinstance(total, int) or total > listed
    required = merge_state != "UNSTABLE"
    unlisted = CheckRun(name="(unlisted)", required=required, state=str(state))
    for states, found in ((ROLLUP_FAILING, failing), (ROLLUP_PENDING, pending)):
        explained = bool(found) and (not truncated or any(c.required for c in found))
        if state in states and not explained:
            found.append(unlisted)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _required_approvals(node: dict[str, Any]) -> int | None:
    """Classic branch protection's count, as the token may see it (baseRef.refUpdateRule:
    null without a rule, or for a token that may not read it)."""
    base = node.get("baseRef")
    rule = base.get("refUpdateRule") if isinstance(base, dict) else None
    return _count(rule.get("requiredApprovingReviewCount")) if isinstance(rule, dict) else None


def parse_approvals(node: dict[str, Any]) -> tuple[int | None, int]:
    """A PullRequestApprovals answer: the strictest ruleset's required count (None: no
    pull_request rule seen) and how many writers' latest reviews approve."""
    read = _Reader(node)
    given = sum(
        1
        for review in read.nodes("latestOpinionatedReviews", "nodes")
        if review.get("state") == "APPROVED"
    )
    base = node.get("baseRef")
    counts = [
        count
        for rule in (_Reader(base).nodes("rules", "nodes") if isinstance(base, dict) else [])
        if rule.get("type") == "PULL_REQUEST"
        and isinstance(rule.get("parameters"), dict)
        and (count := _count(rule["parameters"].get("requiredApprovingReviewCount"))) is not None
    ]
    return (max(counts) if counts else None), given


def parse_snapshot(
    ref: PullRequestRef, node: dict[str, Any], *, fetched_at: datetime, url: str
) -> PullRequestSnapshot:
    read = _Reader(node)
    failing: list[CheckRun] = []
    pending: list[CheckRun] = []
    passing = 0
    rollup = node.get("statusCheckRollup")
    if isinstance(rollup, dict):
        listed = _Reader(rollup).nodes("contexts", "nodes")
        for context in listed:
            parsed = _check(context)
            if parsed is None:
                read.odd.append("statusCheckRollup.contexts")
                continue
            check, verdict = parsed
            if verdict == "failing":
                failing.append(check)
            elif verdict == "pending":
                pending.append(check)
            else:
                passing += 1
        _account_for_unlisted(rollup, len(listed), node.get("mergeStateStatus"), failing, pending)
    elif rollup is not None or "statusCheckRollup" not in node:
        read.odd.append("statusCheckRollup")
    checks: ChecksSummary
    if failing:
        checks = "failing"
    elif pending:
        checks = "pending"
    elif passing:
        checks = "passing"
    else:
        checks = "none"

    unresolved = sum(
        1 for t in read.nodes("reviewThreads", "nodes") if t.get("isResolved") is not True
    )
    reviewers: list[str] = []
    for request in read.nodes("reviewRequests", "nodes"):
        reviewer = request.get("requestedReviewer") or {}
        name = reviewer.get("login") or reviewer.get("slug")
        if isinstance(name, str):
            reviewers.append(name)

    state = read.enum("state", PULL_REQUEST_STATES) or "UNKNOWN"
    number = node.get("number")
    labels = tuple(
        str(label["name"])
        for label in (read.nodes("labels", "nodes") if "labels" in node else [])
        if isinstance(label.get("name"), str)
    )
    queue_required = node.get("isMergeQueueEnabled")
    if queue_required is not None and not isinstance(queue_required, bool):
        read.odd.append("isMergeQueueEnabled")
    queue_entry = _queue_entry(read)
    auto_merge = _auto_merge(read)
    node_id = node.get("id")
    merge_commit = node.get("mergeCommit")
    merge_commit_oid = merge_commit.get("oid") if isinstance(merge_commit, dict) else None
    return PullRequestSnapshot(
        merge_commit_sha=merge_commit_oid if isinstance(merge_commit_oid, str) else "",
        repo=ref.repo,
        number=number if isinstance(number, int) else ref.number,
        url=node["url"] if isinstance(node.get("url"), str) else url,
        state=state,
        merged=read.boolean("merged"),
        is_draft=read.boolean("isDraft"),
        review_decision=read.enum("reviewDecision", REVIEW_DECISIONS, nullable=True),
        merge_state_status=read.enum("mergeStateStatus", MERGE_STATE_STATUSES) or "UNKNOWN",
        mergeable=read.enum("mergeable", MERGEABLE_STATES) or "UNKNOWN",
        head_sha=read.text("headRefOid"),
        head_ref=read.text("headRefName"),
        base_ref=read.text("baseRefName"),
        checks=checks,
        failing_checks=tuple(failing),
        pending_checks=tuple(pending),
        unresolved_threads=unresolved,
        blocking_threads=unresolved,
        requested_reviewers=tuple(reviewers),
        fetched_at=fetched_at,
        odd_fields=tuple(read.odd),
        node_id=node_id if isinstance(node_id, str) else "",
        merge_queue_required=queue_required is True,
        queue_entry=queue_entry,
        auto_merge=auto_merge,
        labels=labels,
        approvals_required=_required_approvals(node),
    )


def parse_threads(node: dict[str, Any]) -> list[ReviewThread]:
    """The unresolved threads of a PullRequestThreads answer."""
    threads = []
    for thread in _Reader(node).nodes("reviewThreads", "nodes"):
        if thread.get("isResolved") is True:
            continue
        comments = tuple(
            ReviewComment(
                author=str((c.get("author") or {}).get("login") or "ghost"),
                body=str(c.get("body") or ""),
            )
            for c in _Reader(thread).nodes("comments", "nodes")
        )
        threads.append(
            ReviewThread(
                path=str(thread.get("path") or ""),
                is_outdated=thread.get("isOutdated") is True,
                comments=comments,
            )
        )
    return threads
