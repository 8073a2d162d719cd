"""GitHub's webhook payloads for what the fake models, shaped as GitHub documents them
(https://docs.github.com/en/webhooks/webhook-events-and-payloads): merge_group
(checks_requested, destroyed), pull_request (opened, closed, synchronize, labeled, unlabeled),
pull_request_review (submitted), check_run (created, completed), check_suite (completed) and
status. Only the fields a receiver reads are filled. The fake's hooks deliver them
(scm/fake/hooks.py); a few control calls also return them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scm.fake.state import FakeCheck, FakePull, FakeRepo

#: merge_group `destroyed` reasons GitHub sends.
DESTROYED_REASONS = frozenset({"merged", "invalidated", "dequeued"})


def _repository(repo: FakeRepo, web_url: str) -> dict[str, Any]:
    return {
        "id": repo.id,
        "name": repo.name,
        "full_name": repo.full_name,
        "owner": {"login": repo.owner},
        "html_url": f"{web_url}/{repo.full_name}",
        "default_branch": repo.default_branch,
    }


def merge_group_payload(
    action: str,
    repo: FakeRepo,
    *,
    base: str,
    base_sha: str,
    head_sha: str,
    number: int,
    reason: str | None = None,
) -> dict[str, Any]:
    """`checks_requested` when a merge group starts its checks; `destroyed` (with `reason`:
    merged, invalidated or dequeued) when it ends."""
    if action not in {"checks_requested", "destroyed"}:
        raise ValueError(f"merge_group has no action {action!r}")
    if action == "destroyed" and reason not in DESTROYED_REASONS:
        raise ValueError(f"a destroyed merge group needs a reason in {sorted(DESTROYED_REASONS)}")
    payload: dict[str, Any] = {
        "action": action,
        "merge_group": {
            "head_sha": head_sha,
            "head_ref": f"refs/heads/gh-readonly-queue/{base}/pr-{number}-{base_sha}",
            "base_sha": base_sha,
            "base_ref": f"refs/heads/{base}",
            "head_commit": {"id": head_sha, "tree_id": head_sha, "message": f"Merge #{number}"},
        },
        "repository": _repository(repo, repo.web_url),
        "sender": _user("github-merge-queue[bot]"),
    }
    if action == "destroyed":
        payload["reason"] = reason
    return payload


def _user(login: str) -> dict[str, Any]:
    return {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"}


def _pull_request(repo: FakeRepo, pull: FakePull, web_url: str) -> dict[str, Any]:
    return {
        "number": pull.number,
        "state": pull.state,
        "merged": pull.merged,
        "merge_commit_sha": pull.merge_commit_sha,
        "draft": pull.draft,
        "title": pull.title,
        "user": _user(pull.author),
        "html_url": f"{web_url}/{repo.full_name}/pull/{pull.number}",
        "head": {"ref": pull.head, "sha": pull.head_sha},
        "base": {"ref": pull.base, "sha": repo.branches.get(pull.base, "")},
        "labels": [{"name": name} for name, _by in pull.labels],
    }


def pull_request_payload(
    action: str, repo: FakeRepo, pull: FakePull, *, sender: str, **extra: Any
) -> dict[str, Any]:
    """The pull_request event: `opened`, `closed` (merged or not: pull_request.merged),
    `synchronize` (with `before` and `after`), ..."""
    return {
        "action": action,
        "number": pull.number,
        "pull_request": _pull_request(repo, pull, repo.web_url),
        **extra,
        "repository": _repository(repo, repo.web_url),
        "sender": _user(sender),
    }


def review_payload(repo: FakeRepo, pull: FakePull, *, state: str, by: str) -> dict[str, Any]:
    """pull_request_review `submitted`; `state` is GitHub's review state in lower case
    (approved, changes_requested, commented)."""
    return {
        "action": "submitted",
        "review": {
            "id": len(pull.reviews),
            "user": _user(by),
            "state": state.lower(),
            "commit_id": pull.head_sha,
            "submitted_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "html_url": f"{repo.web_url}/{repo.full_name}/pull/{pull.number}",
        },
        "pull_request": _pull_request(repo, pull, repo.web_url),
        "repository": _repository(repo, repo.web_url),
        "sender": _user(by),
    }


def _check_pulls(repo: FakeRepo, pull: FakePull) -> list[dict[str, Any]]:
    # The pull requests a check suite matches: same head branch and SHA.
    return [
        {
            "number": pull.number,
            "head": {"ref": pull.head, "sha": pull.head_sha},
            "base": {"ref": pull.base, "sha": repo.branches.get(pull.base, "")},
        }
    ]


def _suite(repo: FakeRepo, pull: FakePull) -> dict[str, Any]:
    return {
        "id": repo.id * 100000 + pull.number,
        "head_branch": pull.head,
        "head_sha": pull.head_sha,
        "pull_requests": _check_pulls(repo, pull),
    }


def check_run_payload(repo: FakeRepo, pull: FakePull, check: FakeCheck) -> dict[str, Any]:
    """check_run `completed` once it has a conclusion, `created` before."""
    completed = check.status == "completed"
    return {
        "action": "completed" if completed else "created",
        "check_run": {
            "name": check.name,
            "head_sha": pull.head_sha,
            "status": check.status,
            "conclusion": check.conclusion if completed else None,
            "pull_requests": _check_pulls(repo, pull),
            "check_suite": _suite(repo, pull),
        },
        "repository": _repository(repo, repo.web_url),
        "sender": _user("github-actions[bot]"),
    }


def check_suite_payload(repo: FakeRepo, pull: FakePull, *, conclusion: str) -> dict[str, Any]:
    """check_suite `completed`: every check run on the head has finished."""
    return {
        "action": "completed",
        "check_suite": {**_suite(repo, pull), "status": "completed", "conclusion": conclusion},
        "repository": _repository(repo, repo.web_url),
        "sender": _user("github-actions[bot]"),
    }


def status_payload(repo: FakeRepo, pull: FakePull, check: FakeCheck) -> dict[str, Any]:
    """status: a commit status changed (its `state` is the check's conclusion here)."""
    return {
        "sha": pull.head_sha,
        "name": repo.full_name,
        "context": check.name,
        "state": check.conclusion,
        "commit": {"sha": pull.head_sha},
        "branches": [{"name": pull.head, "commit": {"sha": pull.head_sha}}],
        "repository": _repository(repo, repo.web_url),
        "sender": _user("ci[bot]"),
    }


def label_payload(
    action: str, repo: FakeRepo, pull: FakePull, *, label: str, sender: str
) -> dict[str, Any]:
    """The pull_request event GitHub sends when a label is added (`labeled`) or removed
    (`unlabeled`); `sender` is who did it."""
    if action not in {"labeled", "unlabeled"}:
        raise ValueError(f"not a label action: {action!r}")
    return pull_request_payload(action, repo, pull, sender=sender, label={"name": label})
