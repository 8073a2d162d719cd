"""Turning what GitHub (through PyGithub and requests) says into our errors.

- 401: the token is wrong or expired (town-level).
- 403 with X-RateLimit-Remaining 0, or 429: the budget is spent until X-RateLimit-Reset
  (epoch seconds). 403/429 with Retry-After is a secondary rate limit: wait that many
  seconds, not until the hourly reset, which it does not concern
  (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit).
- REST ("core") and GraphQL have separate budgets, named by X-RateLimit-Resource: a spent
  GraphQL budget does not stop a REST merge, nor the reverse.
- 403 otherwise: a permission is missing; fine-grained tokens get the needed permission in
  X-Accepted-GitHub-Permissions
  (https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api).
- 404: the thing does not exist or the token cannot see it.
- 5xx, timeouts, dropped connections: transient. An unreadable body: invalid_response.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from github import GithubException

from scm.errors import CredentialError, ScmError
from scm.types import Refusal


def _header(headers: dict[str, Any], name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _reset_at(headers: dict[str, Any]) -> datetime:
    """When to ask again, in GitHub's documented order: Retry-After; else the hourly reset,
    only when the budget is spent (GitHub sends X-RateLimit-Reset on every answer); else a
    minute (a secondary limit that named no wait).
    https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api#handle-rate-limit-errors-appropriately"""
    retry_after = _header(headers, "retry-after")
    if retry_after and retry_after.isdigit():
        return datetime.now(UTC) + timedelta(seconds=int(retry_after))
    reset = _header(headers, "x-ratelimit-reset")
    if _header(headers, "x-ratelimit-remaining") == "0" and reset and reset.isdigit():
        return datetime.fromtimestamp(int(reset), UTC)
    return datetime.now(UTC) + timedelta(seconds=60)


def _message(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("message") or "")
    return "" if data is None else str(data)[:200]


def translate(error: Exception, *, source: str | None = None) -> ScmError:
    """Our error for anything PyGithub or requests raised."""
    if isinstance(error, ScmError):
        return error
    if isinstance(error, GithubException):
        status = error.status
        headers = error.headers or {}
        message = _message(error.data)
        token = f"the {source}" if source else "the token"
        if status == 401:
            return CredentialError(
                "unauthorized",
                f"GitHub rejected {token} (401 {message or 'Bad credentials'}): it is wrong, "
                "expired or revoked.",
                source=source,
            )
        if status == 429 or (
            status == 403
            and (
                _header(headers, "x-ratelimit-remaining") == "0"
                or _header(headers, "retry-after") is not None
                or "rate limit" in message.lower()
            )
        ):
            reset_at = _reset_at(headers)
            remaining = _header(headers, "x-ratelimit-remaining")
            if remaining == "0" and _header(headers, "retry-after") is None:
                return CredentialError(
                    "rate_limited",
                    f"GitHub's hourly rate limit for {token} is spent until "
                    f"{reset_at:%Y-%m-%d %H:%M:%S} UTC ({message or status}).",
                    source=source,
                    reset_at=reset_at,
                )
            left = f" (it has {remaining} left)" if remaining and remaining.isdigit() else ""
            return CredentialError(
                "rate_limited",
                f"GitHub's secondary rate limit stopped {token}: too many requests in a short "
                f"time, not the hourly budget{left}. Asking again after "
                f"{reset_at:%Y-%m-%d %H:%M:%S} UTC ({message or status}).",
                source=source,
                reset_at=reset_at,
                secondary=True,
            )
        if status == 403:
            permission = _header(headers, "x-accepted-github-permissions")
            needed = f"; it needs the permission {permission}" if permission else ""
            return CredentialError(
                "forbidden",
                f"GitHub refused {token} (403 {message or 'Forbidden'}){needed}.",
                source=source,
                permission=permission or (message or None),
            )
        if status == 404:
            return ScmError("not_found", f"GitHub says not found: {message or 'Not Found'}.")
        if status >= 500:
            return ScmError("transient", f"GitHub answered {status}: {message or 'server error'}.")
        return ScmError("invalid_response", f"GitHub answered {status}: {message}.")
    if isinstance(error, requests.Timeout):
        return ScmError("transient", "GitHub did not answer in time.")
    if isinstance(error, requests.ConnectionError):
        return ScmError("transient", "Could not connect to GitHub.")
    if isinstance(error, (json.JSONDecodeError, ValueError, UnicodeDecodeError)):
        return ScmError("invalid_response", "GitHub's answer is not valid JSON.")
    if isinstance(error, requests.RequestException):
        return ScmError("transient", f"Request to GitHub failed: {type(error).__name__}.")
    return ScmError(
        "invalid_response", f"Unexpected error talking to GitHub: {type(error).__name__}."
    )


@dataclass
class Budget:
    """One resource's budget ("core" for REST, "graphql"), as GitHub last told us."""

    remaining: int | None = None
    reset_at: datetime | None = None
    secondary: bool = False  # held by a secondary rate limit, not a spent budget


class RateLimit:
    """The budgets GitHub told us about (REST headers and GraphQL's rateLimit), by resource."""

    def __init__(self) -> None:
        self.budgets: dict[str, Budget] = {}
        self.last_cost: int | None = None
        self.points_spent = 0  # GraphQL points, summed over this client's documents

    def budget(self, resource: str) -> Budget:
        return self.budgets.setdefault(resource, Budget())

    def update_from_headers(self, headers: dict[str, Any], *, resource: str) -> None:
        """`resource` is what the request was for; X-RateLimit-Resource wins when given."""
        budget = self.budget(_header(headers, "x-ratelimit-resource") or resource)
        if budget.secondary:
            return  # a secondary hold lasts its Retry-After, whatever the budget says
        remaining = _header(headers, "x-ratelimit-remaining")
        reset = _header(headers, "x-ratelimit-reset")
        if remaining and remaining.isdigit():
            budget.remaining = int(remaining)
        if reset and reset.isdigit():
            budget.reset_at = datetime.fromtimestamp(int(reset), UTC)

    def update_from_graphql(self, rate: Any) -> None:
        if not isinstance(rate, dict):
            return
        budget = self.budget("graphql")
        if isinstance(rate.get("remaining"), int):
            budget.remaining = rate["remaining"]
        if isinstance(rate.get("cost"), int):
            self.last_cost = rate["cost"]
            self.points_spent += rate["cost"]
        reset = rate.get("resetAt")
        if isinstance(reset, str):
            with contextlib.suppress(ValueError):
                budget.reset_at = datetime.fromisoformat(reset.replace("Z", "+00:00"))

    def hold(self, resource: str, until: datetime, *, secondary: bool = False) -> None:
        """No call on `resource` until `until` (a rate limit GitHub announced by refusing)."""
        budget = self.budget(resource)
        budget.remaining, budget.reset_at, budget.secondary = 0, until, secondary

    def raise_if_spent(self, source: str | None, *, resource: str) -> None:
        """Before a request: no call is made on a spent budget until its reset."""
        budget = self.budget(resource)
        if budget.remaining != 0 or budget.reset_at is None:
            return
        if budget.reset_at <= datetime.now(UTC):
            budget.remaining, budget.secondary = None, False
            return
        if budget.secondary:
            message = (
                f"GitHub's secondary rate limit stopped the {source or 'token'} ({resource}): "
                f"too many requests in a short time, not the hourly budget. Asking again after "
                f"{budget.reset_at:%Y-%m-%d %H:%M:%S} UTC."
            )
        else:
            message = (
                f"GitHub's hourly {resource} rate limit for the {source or 'token'} is spent "
                f"until {budget.reset_at:%Y-%m-%d %H:%M:%S} UTC."
            )
        raise CredentialError(
            "rate_limited",
            message,
            source=source,
            reset_at=budget.reset_at,
            secondary=budget.secondary,
        )


# What GitHub says when it refuses PUT /repos/{owner}/{repo}/pulls/{number}/merge (405, or 409
# for a moved head), https://docs.github.com/en/rest/pulls/pulls#merge-a-pull-request. Classic
# branch protection answers with one sentence; a ruleset answers "Repository rule violations
# found" followed by one paragraph per rule it violates
# (https://docs.github.com/en/repositories/configuring-branches-and-merges-in-your-repository/managing-rulesets/about-rulesets).
# Each pattern is searched in the lower-cased message; the first refusal in this order that
# matches any paragraph wins: what no push or review can change comes first, then what the
# author can fix, then what a reviewer gives (the order of scm.blocker.derive_blocker).
_REFUSAL_PATTERNS: tuple[tuple[Refusal, tuple[str, ...]], ...] = (
    (Refusal.HEAD_MOVED, ("head branch was modified", "base branch was modified")),
    (Refusal.METHOD_NOT_ALLOWED, ("are not allowed on this repository", "merge method")),
    # "Changes must be made through the merge queue": before the review patterns, which
    # would otherwise read "changes must be made" as a reviewer's request.
    (Refusal.MERGE_QUEUE_REQUIRED, ("merge queue",)),
    (Refusal.BRANCH_LOCKED, ("locked branch", "branch is locked", "read-only", "protected ref")),
    (Refusal.SIGNED_COMMITS_REQUIRED, ("verified signature", "signed commit")),
    (Refusal.LINEAR_HISTORY_REQUIRED, ("must not contain merge commits", "linear history")),
    (Refusal.DRAFT, ("draft",)),
    (Refusal.NOT_MERGEABLE, ("not mergeable", "merge conflict")),
    (Refusal.CHANGES_REQUESTED, ("changes must be made", "changes requested")),
    (Refusal.CHECKS_FAILING, ("is failing", "failing", "have not succeeded", "has not succeeded")),
    (Refusal.CHECKS_EXPECTED, ("status check",)),
    (Refusal.THREADS_UNRESOLVED, ("conversation", "comments must be resolved")),
    (Refusal.CODE_OWNER_REVIEW, ("code owner",)),
    (Refusal.REVIEW_REQUIRED, ("review", "approv")),
)


def classify_refusal(status: int, message: str) -> Refusal:
    """A refused merge (405/409/422) classified from GitHub's message; the table of what each
    refusal waits on is scm.blocker.refusal_blocker's."""
    if status == 409:
        return Refusal.HEAD_MOVED
    text = message.lower()
    for refusal, patterns in _REFUSAL_PATTERNS:
        if any(pattern in text for pattern in patterns):
            return refusal
    return Refusal.UNKNOWN
