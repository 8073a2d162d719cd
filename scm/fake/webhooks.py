"""GitHub's webhook payloads for what the fake models, shaped as GitHub documents them:
https://docs.github.com/en/webhooks/webhook-events-and-payloads#merge_group and
https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request (labeled,
unlabeled). Only the fields a receiver reads are filled; tests post them as deliveries."""

from __future__ import annotations

from typing import Any

from scm.fake.state import FakePull, FakeRepo

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
    web_url: str = "https://github.com",
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
        "repository": _repository(repo, web_url),
        "sender": {"login": "github-merge-queue[bot]", "type": "Bot"},
    }
    if action == "destroyed":
        payload["reason"] = reason
    return payload


def label_payload(
    action: str,
    repo: FakeRepo,
    pull: FakePull,
    *,
    label: str,
    sender: str,
    web_url: str = "https://github.com",
) -> dict[str, Any]:
    """The pull_request event GitHub sends when a label is added (`labeled`) or removed
    (`unlabeled`); `sender` is who did it."""
    if action not in {"labeled", "unlabeled"}:
        raise ValueError(f"not a label action: {action!r}")
    return {
        "action": action,
        "number": pull.number,
        "pull_request": {
            "number": pull.number,
            "state": pull.state,
            "html_url": f"{web_url}/{repo.full_name}/pull/{pull.number}",
            "head": {"ref": pull.head, "sha": pull.head_sha},
            "base": {"ref": pull.base},
            "labels": [{"name": name} for name, _by in pull.labels],
        },
        "label": {"name": label},
        "repository": _repository(repo, web_url),
        "sender": {"login": sender},
    }
