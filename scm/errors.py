"""The only exceptions scm/ raises.

Two families, because callers react to them differently (domain.md §4): a `ScmError` concerns one
pull request (its MR may fail after enough of them in a row), a `CredentialError` concerns the
town's token or budget (no MR fails; one escalation says which token and which permission).

Messages are written for people and never contain the token: GitHub's answers do not echo it,
and nothing here formats request headers.
"""

from __future__ import annotations

from datetime import datetime


class ScmError(Exception):
    """A per-pull-request failure. `kind` is one of `KINDS` ("refused": GitHub, or scm on its
    behalf, says no to a write that retrying will not change, e.g. deleting the default
    branch)."""

    KINDS = frozenset({"unrecognized_url", "not_found", "transient", "invalid_response", "refused"})

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, message={self.message!r})"


class AnswerError(ScmError):
    """GitHub's whole answer failed (a 5xx, a time-out, a body that is not JSON, GraphQL errors
    that name no pull request): it says nothing about any one PR, so no PR is blamed for it
    (domain.md §4). `kind` is "transient" or "invalid_response"."""


class CredentialError(ScmError):
    """A failure of the token or its budget: affects the whole town, not one pull request.

    `source` names where the token came from ("town token", "GITHUB_TOKEN") when known;
    `permission` is the permission GitHub says is missing (403); `reset_at` is when the
    rate-limit budget comes back (rate_limited). `secondary` says a rate_limited error is
    GitHub's secondary rate limit (too many requests in a short time: Retry-After, or a
    403/429 while the hourly budget still has points left), not a spent hourly budget.
    """

    KINDS = frozenset({"no_token", "unauthorized", "forbidden", "rate_limited"})

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        source: str | None = None,
        permission: str | None = None,
        reset_at: datetime | None = None,
        secondary: bool = False,
    ) -> None:
        super().__init__(kind, message)
        self.source = source
        self.permission = permission
        self.reset_at = reset_at
        self.secondary = secondary
