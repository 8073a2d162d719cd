"""POST /graphql for the fake: validate against GitHub's published schema, then execute with
resolvers over the fake state. Only the fields the product asks for have real resolvers; any
other field of the schema validates but resolves to null."""

from __future__ import annotations

import functools
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from graphql import (
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    build_schema,
    execute,
    parse,
    validate,
)

from scm.fake.state import (
    FakeAutoMerge,
    FakePull,
    FakeRepo,
    FakeState,
    dequeue,
    enqueue,
    merge_queue_enabled,
    merge_state_status,
    mergeable,
    opinionated_reviews,
    protection_applies,
    protection_violations,
    queue_position,
    ready_for_queue,
    review_decision,
    reviews_required,
    settle,
)
from scm.graphql import charged_points, graphql_cost

SCHEMA_PATH = Path(__file__).parent / "schema" / "schema.graphql"


@functools.cache
def github_schema() -> GraphQLSchema:
    """Built once per process (the SDL is 1.2 MB, about two seconds to build). The SDL
    defines a few fields twice, hence assume_valid_sdl; graphql-core 3.3 also needs
    assume_valid to execute against it."""
    sdl = SCHEMA_PATH.read_text(encoding="utf-8")
    return build_schema(sdl, assume_valid_sdl=True, assume_valid=True)


_validation_cache: dict[str, list[GraphQLError]] = {}
_validation_lock = threading.Lock()


def validation_errors(query: str) -> list[GraphQLError]:
    """Validate a document against the schema (cached by text: batches of the same size
    send the same text with different variables)."""
    with _validation_lock:
        cached = _validation_cache.get(query)
    if cached is not None:
        return cached
    try:
        errors = list(validate(github_schema(), parse(query)))
    except GraphQLError as error:
        errors = [error]
    with _validation_lock:
        _validation_cache[query] = errors
    return errors


class FakeGraphQLError(Exception):
    """An error GitHub reports with a `type` (NOT_FOUND, FORBIDDEN, ...)."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None


def _check_node(repo: FakeRepo, name: str, pull: FakePull) -> dict[str, Any]:
    check = pull.checks[name]
    required = name in repo.required_checks and protection_applies(repo, pull)

    def is_required(info: Any, **_: Any) -> bool:
        return required

    if check.kind == "status":
        return {
            "__typename": "StatusContext",
            "context": name,
            "state": _upper(check.conclusion) or "PENDING",
            "isRequired": is_required,
        }
    return {
        "__typename": "CheckRun",
        "name": name,
        "status": _upper(check.status),
        "conclusion": _upper(check.conclusion) if check.status == "completed" else None,
        "isRequired": is_required,
    }


def _connection(nodes: list[Any], first: int | None, last: int | None) -> dict[str, Any]:
    total = len(nodes)
    if first is not None:
        nodes = nodes[:first]
    if last is not None:
        nodes = nodes[-last:] if last else []
    return {
        "totalCount": total,
        "nodes": nodes,
        "pageInfo": {"hasNextPage": len(nodes) < total, "hasPreviousPage": False},
    }


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _actor(login: str) -> dict[str, Any]:
    typename = "Bot" if login.endswith("[bot]") else "User"
    return {"__typename": typename, "login": login}


def pull_node_id(repo: FakeRepo, pull: FakePull) -> str:
    return f"PR_{repo.id}_{pull.number}"


def _entry_node(repo: FakeRepo, pull: FakePull) -> dict[str, Any] | None:
    found = queue_position(repo, pull)
    if found is None:
        return None
    position, entry = found
    return {
        "id": f"MQE_{repo.id}_{pull.number}",
        "position": position,
        "state": entry.state,
        "enqueuedAt": _iso(entry.enqueued_at),
        "enqueuer": _actor(entry.enqueuer),
        "jump": False,
        "solo": False,
        "pullRequest": lambda info, **_: {"number": pull.number, "headRefOid": pull.head_sha},
    }


def _timeline(pull: FakePull):
    """Labeled and removed-from-merge-queue events, oldest first."""

    def items(
        info: Any,
        first: int | None = None,
        last: int | None = None,
        itemTypes: list[str] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        events: list[tuple[datetime, dict[str, Any]]] = []
        if not itemTypes or "LABELED_EVENT" in itemTypes:
            events += [
                (
                    at,
                    {
                        "__typename": "LabeledEvent",
                        "actor": _actor(by),
                        "createdAt": _iso(at),
                        "label": {"name": name},
                    },
                )
                for name, by, at in pull.label_events
            ]
        if not itemTypes or "REMOVED_FROM_MERGE_QUEUE_EVENT" in itemTypes:
            events += [
                (
                    removal.at,
                    {
                        "__typename": "RemovedFromMergeQueueEvent",
                        "reason": removal.reason,
                        "createdAt": _iso(removal.at),
                        "beforeCommit": {"oid": removal.head_sha},
                    },
                )
                for removal in pull.queue_removals
            ]
        events.sort(key=lambda e: e[0])
        return _connection([e for _, e in events], first, last)

    return items


def _base_ref(repo: FakeRepo, pull: FakePull) -> dict[str, Any]:
    """The PR's base branch and the protection on it a token may read: classic protection
    as `refUpdateRule` (null when no rule asks for reviews), a ruleset's pull_request rule
    in `rules` (https://docs.github.com/en/graphql/reference/objects#ref)."""
    required = reviews_required(repo, pull) and repo.protection_visible
    rule = None
    if required and not repo.rulesets:
        rule = {
            "pattern": pull.base,
            "requiredApprovingReviewCount": repo.required_approvals,
            "requiresCodeOwnerReviews": repo.require_code_owner_review,
            "requiresConversationResolution": repo.require_conversation_resolution,
            "requiresLinearHistory": repo.require_linear_history,
            "requiresSignatures": repo.require_signed_commits,
            "requiredStatusCheckContexts": sorted(repo.required_checks),
        }
    rules = []
    if required and repo.rulesets:
        rules.append(
            {
                "id": f"RR_{repo.id}_pull_request",
                "type": "PULL_REQUEST",
                "parameters": {
                    "__typename": "PullRequestParameters",
                    "requiredApprovingReviewCount": repo.required_approvals,
                    "requireCodeOwnerReview": repo.require_code_owner_review,
                    "requireLastPushApproval": False,
                    "dismissStaleReviewsOnPush": False,
                    "requiredReviewThreadResolution": repo.require_conversation_resolution,
                },
            }
        )
    return {
        "__typename": "Ref",
        "id": f"REF_{repo.id}_{pull.base}",
        "name": pull.base,
        "prefix": "refs/heads/",
        "refUpdateRule": rule,
        "rules": lambda info, first=None, last=None, **_: _connection(rules, first, last),
    }


def _pull_node(repo: FakeRepo, pull: FakePull, web_url: str) -> dict[str, Any]:
    state = "MERGED" if pull.merged else "OPEN" if pull.state == "open" else "CLOSED"
    auto_merge = pull.auto_merge

    def review_requests(info: Any, first: int | None = None, last: int | None = None, **_: Any):
        nodes: list[dict[str, Any]] = [
            {"requestedReviewer": {"__typename": "User", "login": login}}
            for login in pull.requested_reviewers
        ] + [
            {"requestedReviewer": {"__typename": "Team", "slug": slug}}
            for slug in pull.requested_teams
        ]
        return _connection(nodes, first, last)

    def review_threads(info: Any, first: int | None = None, last: int | None = None, **_: Any):
        nodes = [
            {
                "isResolved": t.resolved,
                "isOutdated": t.outdated,
                "path": t.path,
                "comments": lambda info, first=None, last=None, t=t, **_: _connection(
                    [{"author": {"login": t.author}, "body": t.body}], first, last
                ),
            }
            for t in pull.threads
        ]
        return _connection(nodes, first, last)

    rollup = None
    if pull.checks:
        contexts = [_check_node(repo, name, pull) for name in pull.checks]
        if any(c.pending for c in pull.checks.values()):
            rollup_state = "PENDING"
        elif all(c.passing for c in pull.checks.values()):
            rollup_state = "SUCCESS"
        else:
            rollup_state = "FAILURE"
        rollup = {
            "state": rollup_state,
            "contexts": lambda info, first=None, last=None, **_: _connection(contexts, first, last),
        }

    def latest_opinionated_reviews(
        info: Any, first: int | None = None, last: int | None = None, **_: Any
    ) -> dict[str, Any]:
        nodes = [
            {"__typename": "PullRequestReview", "state": state, "author": _actor(login)}
            for login, state in opinionated_reviews(pull)
        ]
        return _connection(nodes, first, last)

    return {
        "__typename": "PullRequest",
        "id": f"PR_{repo.id}_{pull.number}",
        "baseRef": _base_ref(repo, pull),
        "latestOpinionatedReviews": latest_opinionated_reviews,
        "number": pull.number,
        "title": pull.title,
        "url": f"{web_url}/{repo.full_name}/pull/{pull.number}",
        "state": state,
        "merged": pull.merged,
        "mergeCommit": {"oid": pull.merge_commit_sha} if pull.merge_commit_sha else None,
        "closed": pull.state != "open",
        "isDraft": pull.draft,
        "reviewDecision": review_decision(repo, pull),
        "mergeStateStatus": merge_state_status(repo, pull),
        "mergeable": mergeable(pull),
        "headRefOid": pull.head_sha,
        "headRefName": pull.head,
        "baseRefName": pull.base,
        "reviewRequests": review_requests,
        "reviewThreads": review_threads,
        "statusCheckRollup": rollup,
        "isMergeQueueEnabled": merge_queue_enabled(repo, pull),
        "isInMergeQueue": queue_position(repo, pull) is not None,
        "mergeQueueEntry": _entry_node(repo, pull),
        "autoMergeRequest": None
        if auto_merge is None
        else {
            "enabledBy": _actor(auto_merge.enabled_by),
            "mergeMethod": auto_merge.method,
            "enabledAt": _iso(auto_merge.enabled_at),
        },
        "labels": lambda info, first=None, last=None, **_: _connection(
            [{"name": name} for name, _by in pull.labels], first, last
        ),
        "timelineItems": _timeline(pull),
    }


class _Root:
    def __init__(self, state: FakeState, web_url: str, rate: dict[str, Any], viewer: str) -> None:
        self.state = state
        self.web_url = web_url
        self.rate = rate
        self.viewer = viewer

    def _node(self, node_id: str) -> tuple[FakeRepo, FakePull]:
        for repo in self.state.repos.values():
            for pull in repo.pulls.values():
                if pull_node_id(repo, pull) == node_id:
                    return repo, pull
        raise FakeGraphQLError(
            "NOT_FOUND", f"Could not resolve to a node with the global id of '{node_id}'"
        )

    def _writable(self, node_id: str, expected_head: str | None) -> tuple[FakeRepo, FakePull]:
        repo, pull = self._node(node_id)
        if pull.state != "open":
            raise FakeGraphQLError("UNPROCESSABLE", "Pull request is closed")
        if expected_head and expected_head != pull.head_sha:
            raise FakeGraphQLError(
                "UNPROCESSABLE", "Pull request head sha does not match expected head sha"
            )
        return repo, pull

    def enqueuePullRequest(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        # https://docs.github.com/en/graphql/reference/mutations#enqueuepullrequest
        repo, pull = self._writable(input["pullRequestId"], input.get("expectedHeadOid"))
        if not merge_queue_enabled(repo, pull):
            raise FakeGraphQLError(
                "UNPROCESSABLE", "Pull request is not in a merge queue-enabled branch"
            )
        unmet = ready_for_queue(repo, pull)
        if unmet:
            raise FakeGraphQLError("UNPROCESSABLE", f"Pull request {unmet[0]}")
        enqueue(repo, pull, by=self.viewer)
        return {"mergeQueueEntry": _entry_node(repo, pull)}

    def dequeuePullRequest(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        # https://docs.github.com/en/graphql/reference/mutations#dequeuepullrequest
        repo, pull = self._writable(input["id"], None)
        entry = _entry_node(repo, pull)
        if entry is None:
            raise FakeGraphQLError("UNPROCESSABLE", "Pull request is not in the merge queue")
        dequeue(repo, pull, f"Removed from the merge queue by {self.viewer}")
        return {"mergeQueueEntry": entry}

    def enablePullRequestAutoMerge(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        # https://docs.github.com/en/graphql/reference/mutations#enablepullrequestautomerge
        repo, pull = self._writable(input["pullRequestId"], input.get("expectedHeadOid"))
        if not repo.allow_auto_merge:
            raise FakeGraphQLError("UNPROCESSABLE", "Auto merge is not allowed for this repository")
        method = str(input.get("mergeMethod") or "MERGE")
        if pull.draft:
            raise FakeGraphQLError(
                "UNPROCESSABLE", "Can't enable auto-merge for this pull request."
            )
        status = merge_state_status(repo, pull)
        # GitHub refuses auto-merge for a PR it could merge right now: merge it instead.
        if not merge_queue_enabled(repo, pull) and not protection_violations(
            repo, pull, method.lower()
        ):
            raise FakeGraphQLError(
                "UNPROCESSABLE", f"Pull request Pull request is in {status.lower()} status"
            )
        pull.auto_merge = FakeAutoMerge(enabled_by=self.viewer, method=method)
        settle(repo)
        return {"actor": _actor(self.viewer), "pullRequest": _pull_node(repo, pull, self.web_url)}

    def disablePullRequestAutoMerge(self, info: Any, input: dict[str, Any]) -> dict[str, Any]:
        repo, pull = self._writable(input["pullRequestId"], None)
        pull.auto_merge = None
        return {"actor": _actor(self.viewer), "pullRequest": _pull_node(repo, pull, self.web_url)}

    def repository(self, info: Any, owner: str, name: str, **_: Any) -> dict[str, Any]:
        repo = self.state.repo(f"{owner}/{name}")
        if repo is None:
            raise FakeGraphQLError(
                "NOT_FOUND", f"Could not resolve to a Repository with the name '{owner}/{name}'."
            )

        def pull_request(info: Any, number: int) -> dict[str, Any]:
            pull = repo.pulls.get(number)
            if pull is None:
                raise FakeGraphQLError(
                    "NOT_FOUND",
                    f"Could not resolve to a PullRequest with the number of {number}.",
                )
            return _pull_node(repo, pull, self.web_url)

        def merge_queue(info: Any, branch: str | None = None) -> dict[str, Any] | None:
            base = branch or repo.default_branch
            if not repo.require_merge_queue or (
                repo.protected_branches is not None and base not in repo.protected_branches
            ):
                return None
            entries = [
                _entry_node(repo, repo.pulls[e.number]) for e in repo.merge_queues.get(base, [])
            ]
            return {
                "id": f"MQ_{repo.id}_{base}",
                "entries": lambda info, first=None, last=None, **_: _connection(
                    entries, first, last
                ),
            }

        return {
            "__typename": "Repository",
            "name": repo.name,
            "nameWithOwner": repo.full_name,
            "pullRequest": pull_request,
            "mergeQueue": merge_queue,
        }

    def rateLimit(self, info: Any, **_: Any) -> dict[str, Any]:
        return self.rate


def execute_graphql(
    state: FakeState,
    query: str,
    variables: dict[str, Any] | None,
    *,
    web_url: str,
    remaining: int,
    reset_at: datetime,
    viewer: str = "gastown",
) -> tuple[dict[str, Any], int]:
    """Run one document; returns GitHub's JSON answer and the points it cost."""
    errors = validation_errors(query)
    if errors:
        return {"errors": [_format(e) for e in errors]}, 0
    cost = charged_points(graphql_cost(query, variables))
    rate = {
        "cost": cost,
        "limit": 5000,
        "remaining": max(0, remaining - cost),
        "used": 5000 - max(0, remaining - cost),
        "resetAt": reset_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nodeCount": 0,
    }
    with state.lock:
        result: ExecutionResult = execute(  # type: ignore[assignment]
            github_schema(),
            parse(query),
            root_value=_Root(state, web_url, rate, viewer),
            variable_values=variables or {},
        )
    answer: dict[str, Any] = {"data": result.data}
    if result.errors:
        answer["errors"] = [_format(e) for e in result.errors]
    return answer, cost


def _format(error: GraphQLError) -> dict[str, Any]:
    # GitHub's error entries carry a `type` (NOT_FOUND, UNPROCESSABLE, FORBIDDEN...).
    formatted: dict[str, Any] = dict(error.formatted)
    original = error.original_error
    if isinstance(original, FakeGraphQLError):
        formatted["type"] = original.type
    return formatted
