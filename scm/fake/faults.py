"""Faults the fake injects on request: what GitHub does on a bad day."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FAULT_KINDS = frozenset(
    {
        "status",  # answer `status` (500, 502, 401, 403, 429...) with GitHub's body
        "forbidden",  # 403 naming the permission in X-Accepted-GitHub-Permissions
        "rate_limit",  # 403 (or `status` 429) with X-RateLimit-Remaining 0 and a reset,
        # or with `retry_after`, a secondary limit
        "slow",  # wait `delay` seconds, then perform the request and answer: a client that
        # gave up (or died) meanwhile still has its request performed
        "hold",  # perform the request, then withhold the answer for `delay` seconds (0: until
        # the faults are cleared, at most HOLD_MAX): the work is done on GitHub while the
        # client waits; kill the client then to crash it inside a side effect (the record in
        # the request log says `held` meanwhile; docs/architecture.md, "Side effects and crashes")
        "malformed",  # 200 with a body that is not JSON
        "graphql_errors",  # GraphQL: null the given aliases (or all) and add `errors`
        "graphql_timeout",  # GraphQL: 200 with no data and GitHub's time-out message
        "rewrite_enum",  # replace every `field` value in the JSON answer with `value`
    }
)


#: The longest a `hold` fault withholds an answer when no `delay` is given.
HOLD_MAX = 60.0


@dataclass
class Fault:
    kind: str
    method: str | None = None  # None: any method
    path: str | None = None  # a regex searched in the path; None: any path
    operation: str | None = None  # a GraphQL operation's name (EnqueuePullRequest); None: any
    times: int | None = 1  # how many matching requests; None: until cleared
    after: int = 0  # how many matching requests are answered normally first
    status: int = 500
    delay: float = 0.0
    permission: str = "pull_requests=write"
    reset_in: int = 60  # seconds until the rate-limit reset
    # rate_limit: a secondary limit (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits):
    # Retry-After seconds, the hourly budget untouched.
    retry_after: int | None = None
    aliases: list[str] | None = None  # graphql_errors: which aliases (None: all)
    error_type: str = "NOT_FOUND"
    field: str = "mergeStateStatus"
    value: Any = "QUEUED_FOR_FUTURE"
    hits: int = 0
    passed: int = 0  # matching requests let through (`after`)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")

    def matches(self, method: str, path: str, operation: str | None = None) -> bool:
        if self.method and self.method.upper() != method:
            return False
        if self.operation and self.operation != operation:
            return False
        return not (self.path and not re.search(self.path, path))

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times


def rewrite(value: Any, field_name: str, new_value: Any) -> Any:
    """Replace every `field_name` in a JSON tree (GitHub adding an enum value)."""
    if isinstance(value, dict):
        return {
            k: (new_value if k == field_name else rewrite(v, field_name, new_value))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [rewrite(v, field_name, new_value) for v in value]
    return value
