"""Reading one pull request's GraphQL answer into a PullRequestSnapshot.

Every field is read on its own: a value GitHub added later becomes "UNKNOWN", a missing
field is noted in `odd_fields`, and neither discards the rest of the answer (SPEC §4).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from scm.types import (
    MERGE_STATE_STATUSES,
    MERGEABLE_STATES,
    PULL_REQUEST_STATES,
    REVIEW_DECISIONS,
    CheckRun,
    ChecksSummary,
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
    return PullRequestSnapshot(
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
