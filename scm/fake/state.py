"""In-memory GitHub: repositories, branches, pull requests, reviews, checks, threads.

Derived values (reviewDecision, mergeStateStatus) follow GitHub's documented meaning:
https://docs.github.com/en/graphql/reference/enums#mergestatestatus
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scm.fake.hooks import FakeHooks
from scm.fake.webhooks import merge_group_payload, pull_request_payload

MERGE_METHODS = ("merge", "squash", "rebase")
PASSING_CONCLUSIONS = {"success", "neutral", "skipped"}

_sha_counter = itertools.count(1)


def new_sha(seed: str = "") -> str:
    return hashlib.sha1(f"{seed}-{next(_sha_counter)}".encode()).hexdigest()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class FakeCheck:
    """A check run (kind "check_run") or a commit status (kind "status") on a PR's head."""

    name: str
    kind: str = "check_run"
    status: str = "completed"  # check runs: queued, in_progress, completed
    conclusion: str | None = "success"  # check runs; for statuses: the state

    @property
    def passing(self) -> bool:
        if self.kind == "status":
            return self.conclusion == "success"
        return self.status == "completed" and (self.conclusion or "") in PASSING_CONCLUSIONS

    @property
    def pending(self) -> bool:
        if self.kind == "status":
            return self.conclusion in {"pending", "expected"}
        return self.status != "completed"


@dataclass
class FakeThread:
    path: str
    body: str
    author: str = "reviewer"
    resolved: bool = False
    outdated: bool = False


@dataclass
class FakeQueueEntry:
    """A pull request in its base branch's merge queue (position is its index + 1)."""

    number: int
    head_sha: str
    enqueuer: str
    enqueued_at: datetime = field(default_factory=now)
    state: str = "QUEUED"  # GitHub's MergeQueueEntryState


@dataclass
class FakeAutoMerge:
    enabled_by: str
    method: str  # GitHub's PullRequestMergeMethod: MERGE, SQUASH, REBASE
    enabled_at: datetime = field(default_factory=now)


@dataclass
class FakeQueueRemoval:
    """The queue dropped the pull request (RemovedFromMergeQueueEvent)."""

    reason: str
    head_sha: str
    at: datetime = field(default_factory=now)


@dataclass
class FakePull:
    number: int
    title: str
    body: str
    head: str
    base: str
    head_sha: str
    author: str = "agent"
    state: str = "open"  # open, closed
    merged: bool = False
    merge_commit_sha: str | None = None
    merge_method: str | None = None
    draft: bool = False
    conflict: bool = False
    behind: bool = False
    mergeable_known: bool = True
    has_hooks: bool = False
    signed: bool = True  # every commit has a verified signature
    auto_merge: FakeAutoMerge | None = None
    labels: list[tuple[str, str]] = field(default_factory=list)  # (name, who added it)
    label_events: list[tuple[str, str, datetime]] = field(default_factory=list)  # LabeledEvent
    queue_removals: list[FakeQueueRemoval] = field(default_factory=list)
    reviews: list[tuple[str, str]] = field(default_factory=list)  # (login, APPROVED/...)
    requested_reviewers: list[str] = field(default_factory=list)
    requested_teams: list[str] = field(default_factory=list)
    checks: dict[str, FakeCheck] = field(default_factory=dict)
    threads: list[FakeThread] = field(default_factory=list)
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)


def _no_hooks(event: str, payload: dict[str, Any]) -> None:
    pass


@dataclass
class FakeRepo:
    owner: str
    name: str
    id: int
    default_branch: str = "main"
    allowed_merge_methods: set[str] = field(default_factory=lambda: set(MERGE_METHODS))
    required_approvals: int = 0
    required_checks: set[str] = field(default_factory=set)
    require_code_owner_review: bool = False
    code_owners: set[str] = field(default_factory=set)
    require_conversation_resolution: bool = False
    require_signed_commits: bool = False
    require_linear_history: bool = False
    lock_branch: bool = False
    require_merge_queue: bool = False
    # Protection comes from rulesets (a refusal lists every violated rule) rather than
    # classic branch protection (it names the first). GraphQL shows a ruleset's rules in
    # the base ref's `rules`, classic protection in its `refUpdateRule`.
    rulesets: bool = False
    # Whether the token may see the base branch's protection (refUpdateRule, rules): False
    # gives neither, so the count of approvals required is unknown to it.
    protection_visible: bool = True
    # The repository setting "Allow auto-merge" (off by default on GitHub; on here so tests
    # need not ask for it).
    allow_auto_merge: bool = True
    merge_queues: dict[str, list[FakeQueueEntry]] = field(default_factory=dict)
    # Branch protection applies to PRs into these bases; None protects every base.
    protected_branches: set[str] | None = None
    branches: dict[str, str] = field(default_factory=dict)
    pulls: dict[int, FakePull] = field(default_factory=dict)
    next_number: int = 1
    web_url: str = "https://github.com"
    # Where the webhook events GitHub would send go (FakeState.emit: the fake's hooks).
    emit: Callable[[str, dict[str, Any]], None] = field(
        default=_no_hooks, repr=False, compare=False
    )

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def latest_reviews(pull: FakePull) -> dict[str, str]:
    latest: dict[str, str] = {}
    for login, state in pull.reviews:
        if state in {"APPROVED", "CHANGES_REQUESTED", "DISMISSED"}:
            latest[login] = state
    return latest


def opinionated_reviews(pull: FakePull) -> list[tuple[str, str]]:
    """Each reviewer's latest approving, change-requesting or dismissed review, in the order
    they last reviewed (PullRequest.latestOpinionatedReviews); every reviewer here may
    write, so writersOnly changes nothing."""
    return list(latest_reviews(pull).items())


def reviews_required(repo: FakeRepo, pull: FakePull) -> bool:
    return protection_applies(repo, pull) and bool(
        repo.required_approvals or repo.require_code_owner_review
    )


def repo_options_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """Repository options as JSON carries them (lists) turned into what FakeRepo holds."""
    options = dict(data)
    for key in ("allowed_merge_methods", "required_checks", "code_owners", "protected_branches"):
        if options.get(key) is not None:
            options[key] = set(options[key])
    return options


def protection_applies(repo: FakeRepo, pull: FakePull) -> bool:
    return repo.protected_branches is None or pull.base in repo.protected_branches


def review_decision(repo: FakeRepo, pull: FakePull) -> str | None:
    """GitHub gives a decision only when branch protection asks for reviews."""
    if not protection_applies(repo, pull):
        return None
    if not (repo.required_approvals or repo.require_code_owner_review):
        return None
    latest = latest_reviews(pull)
    if "CHANGES_REQUESTED" in latest.values():
        return "CHANGES_REQUESTED"
    approvers = {login for login, state in latest.items() if state == "APPROVED"}
    if len(approvers) < repo.required_approvals:
        return "REVIEW_REQUIRED"
    if repo.require_code_owner_review and not approvers & repo.code_owners:
        return "REVIEW_REQUIRED"
    return "APPROVED"


def required_checks_pass(repo: FakeRepo, pull: FakePull) -> bool:
    if not protection_applies(repo, pull):
        return True
    return all(name in pull.checks and pull.checks[name].passing for name in repo.required_checks)


def merge_state_status(repo: FakeRepo, pull: FakePull) -> str:
    if pull.state != "open":
        return "UNKNOWN"
    if pull.draft:
        return "DRAFT"
    if not pull.mergeable_known:
        return "UNKNOWN"
    if pull.conflict:
        return "DIRTY"
    decision = review_decision(repo, pull)
    unresolved = any(not t.resolved for t in pull.threads)
    if (
        not required_checks_pass(repo, pull)
        or decision in {"REVIEW_REQUIRED", "CHANGES_REQUESTED"}
        or (repo.require_conversation_resolution and unresolved and protection_applies(repo, pull))
    ):
        return "BLOCKED"
    if pull.behind:
        return "BEHIND"
    if any(not c.passing for c in pull.checks.values()):
        return "UNSTABLE"
    if pull.has_hooks:
        return "HAS_HOOKS"
    return "CLEAN"


# A ruleset's refusal lists every rule it violates, a paragraph each; classic branch
# protection names the first one.
RULESET_PREFIX = "Repository rule violations found\n\n"
MERGE_QUEUE_REQUIRED = "Changes must be made through the merge queue"


def protection_violations(repo: FakeRepo, pull: FakePull, method: str) -> list[str]:
    """GitHub's words for each rule this merge breaks, in the order GitHub checks them."""
    if not protection_applies(repo, pull):
        return []
    violations = []
    if repo.lock_branch:
        violations.append(
            "Cannot update this protected ref."
            if repo.rulesets
            else "Cannot change this locked branch"
        )
    if repo.require_merge_queue:
        violations.append(MERGE_QUEUE_REQUIRED)
    if repo.require_signed_commits and not pull.signed:
        violations.append("Commits must have verified signatures.")
    if repo.require_linear_history and method == "merge":
        violations.append("This branch must not contain merge commits.")
    decision = review_decision(repo, pull)
    if decision == "CHANGES_REQUESTED":
        violations.append("Changes must be made before merging")
    elif decision == "REVIEW_REQUIRED":
        approvals = sum(1 for s in latest_reviews(pull).values() if s == "APPROVED")
        if approvals < repo.required_approvals:
            needed = repo.required_approvals
            violations.append(
                f"At least {needed} approving review{'s are' if needed > 1 else ' is'} "
                "required by reviewers with write access."
            )
        else:
            owners = ", ".join(sorted(repo.code_owners))
            violations.append(f"Waiting on code owner review from {owners}.")
    if not required_checks_pass(repo, pull):
        required = sorted(repo.required_checks)
        missing = [n for n in required if n not in pull.checks or pull.checks[n].pending]
        failing = [n for n in required if n not in missing and not pull.checks[n].passing]
        unmet = len(missing) + len(failing)
        if unmet > 1 and failing:
            violations.append(
                f"{unmet} of {len(required)} required status checks have not succeeded: "
                f"{len(failing)} failing."
            )
        elif unmet > 1:
            violations.append(f"{unmet} of {len(required)} required status checks are expected.")
        elif failing:
            violations.append(f'Required status check "{failing[0]}" is failing.')
        else:
            violations.append(f'Required status check "{missing[0]}" is expected.')
    if repo.require_conversation_resolution and any(not t.resolved for t in pull.threads):
        violations.append("A conversation must be resolved before this pull request can be merged.")
    return violations


def merge_queue_enabled(repo: FakeRepo, pull: FakePull) -> bool:
    return repo.require_merge_queue and protection_applies(repo, pull)


def queue_position(repo: FakeRepo, pull: FakePull) -> tuple[int, FakeQueueEntry] | None:
    for index, entry in enumerate(repo.merge_queues.get(pull.base, [])):
        if entry.number == pull.number:
            return index + 1, entry
    return None


def ready_for_queue(repo: FakeRepo, pull: FakePull) -> list[str]:
    """What keeps an open PR out of its merge queue (every rule but the queue itself)."""
    if pull.draft:
        return ["Pull request is still a draft"]
    if pull.conflict or not pull.mergeable_known:
        return ["Pull Request is not mergeable"]
    return [v for v in protection_violations(repo, pull, "squash") if v != MERGE_QUEUE_REQUIRED]


def merge(repo: FakeRepo, pull: FakePull, method: str, *, by: str = "web-flow") -> str:
    """Land the pull request on its base; the merge commit's SHA."""
    merge_sha = new_sha(f"merge-{repo.full_name}-{pull.number}")
    pull.merged = True
    pull.state = "closed"
    pull.merge_commit_sha = merge_sha
    pull.merge_method = method
    pull.auto_merge = None
    pull.updated_at = now()
    repo.branches[pull.base] = merge_sha
    repo.emit("pull_request", pull_request_payload("closed", repo, pull, sender=by))
    return merge_sha


def close(repo: FakeRepo, pull: FakePull, *, by: str = "alice") -> None:
    """Closed without merging. A queued pull request leaves its merge queue first (its
    merge group `destroyed`, reason `dequeued`, if it was the head)."""
    if queue_position(repo, pull) is not None:
        dequeue(repo, pull, "The pull request was closed")
    pull.state = "closed"
    pull.updated_at = now()
    repo.emit("pull_request", pull_request_payload("closed", repo, pull, sender=by))


def merge_group_started(repo: FakeRepo, base: str) -> dict[str, Any] | None:
    """The head entry of the queue of `base` runs its merge group's checks (GitHub's
    `checks_requested`); None for an empty queue."""
    queue = repo.merge_queues.get(base) or []
    if not queue:
        return None
    queue[0].state = "AWAITING_CHECKS"
    payload = merge_group_payload(
        "checks_requested",
        repo,
        base=base,
        base_sha=repo.branches[base],
        head_sha=new_sha("merge-group"),
        number=queue[0].number,
    )
    repo.emit("merge_group", payload)
    return payload


def merge_group_ended(repo: FakeRepo, pull: FakePull, *, reason: str) -> dict[str, Any]:
    """The merge group of `pull` (the head of its queue) is gone: merged, invalidated or
    dequeued (GitHub's `destroyed`)."""
    payload = merge_group_payload(
        "destroyed",
        repo,
        base=pull.base,
        base_sha=repo.branches[pull.base],
        head_sha=new_sha("merge-group"),
        number=pull.number,
        reason=reason,
    )
    repo.emit("merge_group", payload)
    return payload


def enqueue(repo: FakeRepo, pull: FakePull, *, by: str) -> FakeQueueEntry:
    found = queue_position(repo, pull)
    if found is not None:
        return found[1]
    queue = repo.merge_queues.setdefault(pull.base, [])
    entry = FakeQueueEntry(number=pull.number, head_sha=pull.head_sha, enqueuer=by)
    queue.append(entry)
    pull.updated_at = now()
    if len(queue) == 1:  # the head of the queue runs its merge group's checks
        merge_group_started(repo, pull.base)
    return entry


def dequeue(
    repo: FakeRepo, pull: FakePull, reason: str, *, group_reason: str = "dequeued"
) -> list[dict[str, Any]]:
    """Take the pull request out of its queue; the merge_group payloads this sends (its
    group `destroyed` if it was the head, then `checks_requested` for the next head)."""
    queue = repo.merge_queues.get(pull.base, [])
    was_head = bool(queue) and queue[0].number == pull.number
    queue[:] = [e for e in queue if e.number != pull.number]
    pull.queue_removals.append(FakeQueueRemoval(reason=reason, head_sha=pull.head_sha))
    pull.auto_merge = None
    pull.updated_at = now()
    if not was_head:
        return []
    payloads = [merge_group_ended(repo, pull, reason=group_reason)]
    if started := merge_group_started(repo, pull.base):
        payloads.append(started)
    return payloads


def settle(repo: FakeRepo) -> None:
    """What GitHub does by itself: auto-merge merges (or, on a queue branch, enqueues) a PR
    once its rules are met; a PR whose head moved, or that closed, leaves the queue."""
    for queue in list(repo.merge_queues.values()):
        for entry in list(queue):
            pull = repo.pulls[entry.number]
            if pull.state != "open":
                queue.remove(entry)
            elif pull.head_sha != entry.head_sha:
                dequeue(repo, pull, "The head of the pull request changed")
    for pull in repo.pulls.values():
        if pull.state != "open" or pull.auto_merge is None or ready_for_queue(repo, pull):
            continue
        if merge_queue_enabled(repo, pull):
            enqueue(repo, pull, by=pull.auto_merge.enabled_by)
        elif not protection_violations(repo, pull, pull.auto_merge.method.lower()):
            merge(repo, pull, pull.auto_merge.method.lower(), by=pull.auto_merge.enabled_by)


def mergeable(pull: FakePull) -> str:
    if not pull.mergeable_known:
        return "UNKNOWN"
    return "CONFLICTING" if pull.conflict else "MERGEABLE"


class FakeState:
    """All of the fake's data, behind one lock (the server answers on many threads)."""

    def __init__(self, *, web_url: str = "https://github.com") -> None:
        self.lock = threading.RLock()
        self.repos: dict[str, FakeRepo] = {}
        self._repo_ids = itertools.count(1000)
        self.web_url = web_url
        self.hooks = FakeHooks()

    def emit(self, event: str, payload: dict[str, Any]) -> None:
        """A webhook event happened (scm/fake/webhooks.py builds its payload)."""
        self.hooks.emit(event, payload)

    def reset(self) -> None:
        with self.lock:
            self.repos.clear()

    def repo(self, full_name: str) -> FakeRepo | None:
        return self.repos.get(full_name.lower())

    def add_repo(self, owner: str, name: str, **options: object) -> FakeRepo:
        with self.lock:
            repo = FakeRepo(
                owner=owner,
                name=name,
                id=next(self._repo_ids),
                web_url=self.web_url,
                emit=self.emit,
            )
            for key, value in options.items():
                if not hasattr(repo, key):
                    raise TypeError(f"unknown repo option {key!r}")
                setattr(repo, key, value)
            repo.allowed_merge_methods = set(repo.allowed_merge_methods)
            repo.required_checks = set(repo.required_checks)
            repo.code_owners = set(repo.code_owners)
            if repo.protected_branches is not None:
                repo.protected_branches = set(repo.protected_branches)
            repo.branches.setdefault(repo.default_branch, new_sha(repo.full_name))
            self.repos[repo.full_name.lower()] = repo
            return repo

    def add_pull(
        self,
        repo: FakeRepo,
        *,
        head: str,
        base: str | None = None,
        title: str = "",
        body: str = "",
        draft: bool = False,
    ) -> FakePull:
        with self.lock:
            base = base or repo.default_branch
            if head not in repo.branches:
                repo.branches[head] = new_sha(f"{repo.full_name}:{head}")
            repo.branches.setdefault(base, new_sha(f"{repo.full_name}:{base}"))
            number = repo.next_number
            repo.next_number += 1
            pull = FakePull(
                number=number,
                title=title or f"Change {number}",
                body=body,
                head=head,
                base=base,
                head_sha=repo.branches[head],
                draft=draft,
                # As GitHub does for a CODEOWNERS file: its owners are asked for a review.
                requested_reviewers=sorted(repo.code_owners),
            )
            repo.pulls[number] = pull
            opened = pull_request_payload("opened", repo, pull, sender=pull.author)
            repo.emit("pull_request", opened)
            return pull
