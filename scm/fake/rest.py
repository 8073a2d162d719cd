"""The REST endpoints of the fake, with JSON shaped like GitHub's (enough for PyGithub).

Messages are GitHub's own words where scm/ classifies on them (merge 405/409, 422s):
https://docs.github.com/en/rest/pulls/pulls#merge-a-pull-request
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from scm.fake.hooks import CONTENT_TYPES, FakeHooks
from scm.fake.state import (
    RULESET_PREFIX,
    FakePull,
    FakeRepo,
    FakeState,
    close,
    merge,
    merge_state_status,
    new_sha,
    now,
    protection_violations,
)
from scm.fake.webhooks import pull_request_payload

DOCS = "https://docs.github.com/rest"
MERGE_DOCS = f"{DOCS}/pulls/pulls#merge-a-pull-request"
METHOD_NOT_ALLOWED = {
    "merge": "Merge commits are not allowed on this repository.",
    "squash": "Squash merges are not allowed on this repository.",
    "rebase": "Rebase merges are not allowed on this repository.",
}


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] | None = None


def not_found() -> Reply:
    return Reply(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})


def _iso(value: Any) -> str:
    return str(value.strftime("%Y-%m-%dT%H:%M:%SZ"))


class RestApi:
    """Routes `METHOD /path` to a handler over the fake state."""

    def __init__(self, state: FakeState, base_url: Callable[[], str], web_url: str) -> None:
        self.state = state
        self.base_url = base_url
        self.web_url = web_url
        repo = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
        pull = repo + r"/pulls/(?P<number>[0-9]+)"
        hook = repo + r"/hooks/(?P<hook_id>[0-9]+)"
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
            ("GET", re.compile(r"/rate_limit"), self.rate_limit),
            ("GET", re.compile(repo), self.get_repo),
            ("GET", re.compile(repo + r"/pulls"), self.list_pulls),
            ("POST", re.compile(repo + r"/pulls"), self.create_pull),
            ("GET", re.compile(pull), self.get_pull),
            ("PUT", re.compile(pull + r"/merge"), self.merge_pull),
            ("PUT", re.compile(pull + r"/update-branch"), self.update_branch),
            ("GET", re.compile(pull + r"/reviews"), self.list_reviews),
            ("GET", re.compile(repo + r"/commits/(?P<sha>[^/]+)/check-runs"), self.check_runs),
            ("GET", re.compile(repo + r"/commits/(?P<sha>[^/]+)/status"), self.commit_status),
            ("GET", re.compile(repo + r"/git/ref/heads/(?P<branch>.+)"), self.get_ref),
            ("GET", re.compile(repo + r"/git/refs/heads/(?P<branch>.+)"), self.get_ref),
            ("POST", re.compile(repo + r"/git/refs"), self.create_ref),
            ("DELETE", re.compile(repo + r"/git/refs/heads/(?P<branch>.+)"), self.delete_ref),
            ("GET", re.compile(repo + r"/hooks"), self.list_hooks),
            ("POST", re.compile(repo + r"/hooks"), self.create_hook),
            ("GET", re.compile(hook), self.get_hook),
            ("PATCH", re.compile(hook), self.update_hook),
            ("DELETE", re.compile(hook), self.delete_hook),
            ("GET", re.compile(hook + r"/deliveries"), self.list_deliveries),
            ("GET", re.compile(hook + r"/deliveries/(?P<delivery>[0-9]+)"), self.get_delivery),
        ]

    def dispatch(
        self, method: str, path: str, query: dict[str, str], body: Any, now_epoch: int
    ) -> Reply | None:
        for route_method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                with self.state.lock:
                    return handler(query=query, body=body or {}, **params)
        return None

    # --- shapes -------------------------------------------------------------------------

    def _repo_url(self, repo: FakeRepo) -> str:
        return f"{self.base_url()}/repos/{repo.full_name}"

    def repo_json(self, repo: FakeRepo) -> dict[str, Any]:
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": {"login": repo.owner, "id": 1, "type": "Organization"},
            "private": False,
            "html_url": f"{self.web_url}/{repo.full_name}",
            "url": self._repo_url(repo),
            "default_branch": repo.default_branch,
            "allow_merge_commit": "merge" in repo.allowed_merge_methods,
            "allow_squash_merge": "squash" in repo.allowed_merge_methods,
            "allow_rebase_merge": "rebase" in repo.allowed_merge_methods,
            "permissions": {"admin": False, "push": True, "pull": True},
        }

    def pull_json(self, repo: FakeRepo, pull: FakePull) -> dict[str, Any]:
        url = f"{self._repo_url(repo)}/pulls/{pull.number}"
        repo_json = self.repo_json(repo)
        return {
            "id": repo.id * 100000 + pull.number,
            "node_id": f"PR_{repo.id}_{pull.number}",
            "number": pull.number,
            "url": url,
            "html_url": f"{self.web_url}/{repo.full_name}/pull/{pull.number}",
            "state": pull.state,
            "title": pull.title,
            "body": pull.body,
            "user": {"login": pull.author, "id": 2, "type": "User"},
            "draft": pull.draft,
            "merged": pull.merged,
            "mergeable": None if not pull.mergeable_known else not pull.conflict,
            "mergeable_state": merge_state_status(repo, pull).lower(),
            "merge_commit_sha": pull.merge_commit_sha,
            "merged_at": _iso(pull.updated_at) if pull.merged else None,
            "created_at": _iso(pull.created_at),
            "updated_at": _iso(pull.updated_at),
            "head": {
                "ref": pull.head,
                "sha": pull.head_sha,
                "label": f"{repo.owner}:{pull.head}",
                "repo": repo_json,
            },
            "base": {
                "ref": pull.base,
                "sha": repo.branches.get(pull.base, ""),
                "label": f"{repo.owner}:{pull.base}",
                "repo": repo_json,
            },
            "labels": [{"name": name, "default": False} for name, _by in pull.labels],
            "auto_merge": None
            if pull.auto_merge is None
            else {
                "enabled_by": {"login": pull.auto_merge.enabled_by, "type": "User"},
                "merge_method": pull.auto_merge.method.lower(),
                "commit_title": None,
                "commit_message": None,
            },
            "requested_reviewers": [{"login": u, "type": "User"} for u in pull.requested_reviewers],
            "requested_teams": [{"slug": t, "name": t} for t in pull.requested_teams],
        }

    # --- handlers -----------------------------------------------------------------------

    def rate_limit(self, **_: Any) -> Reply:
        core = {"limit": 5000, "remaining": 4999, "reset": 0, "used": 1}
        return Reply(200, {"resources": {"core": core, "graphql": core}, "rate": core})

    def _repo(self, owner: str, name: str) -> FakeRepo | None:
        return self.state.repo(f"{owner}/{name}")

    def get_repo(self, owner: str, name: str, **_: Any) -> Reply:
        repo = self._repo(owner, name)
        return Reply(200, self.repo_json(repo)) if repo else not_found()

    def list_pulls(self, owner: str, name: str, query: dict[str, str], **_: Any) -> Reply:
        repo = self._repo(owner, name)
        if repo is None:
            return not_found()
        state = query.get("state", "open")
        head = query.get("head")
        base = query.get("base")
        pulls = []
        # `head` is "user:ref-name" or "organization:ref-name"
        # (https://docs.github.com/en/rest/pulls/pulls#list-pull-requests): the fake's PRs
        # come from branches of their own repository, so the owner is the repository's.
        head_owner, _colon, head_ref = head.rpartition(":") if head else ("", "", "")
        owner_of_heads = repo.full_name.split("/", 1)[0].lower()
        for pull in sorted(repo.pulls.values(), key=lambda p: -p.number):
            if state != "all" and pull.state != state:
                continue
            if head and (head_ref != pull.head or head_owner.lower() not in ("", owner_of_heads)):
                continue
            if base and base != pull.base:
                continue
            pulls.append(self.pull_json(repo, pull))
        return Reply(200, pulls)

    def create_pull(self, owner: str, name: str, body: dict[str, Any], **_: Any) -> Reply:
        repo = self._repo(owner, name)
        if repo is None:
            return not_found()
        head = str(body.get("head", "")).split(":", 1)[-1]
        base = str(body.get("base", ""))
        if head not in repo.branches or base not in repo.branches:
            field = "head" if head not in repo.branches else "base"
            return Reply(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"resource": "PullRequest", "field": field, "code": "invalid"}],
                    "documentation_url": f"{DOCS}/pulls/pulls#create-a-pull-request",
                },
            )
        for pull in repo.pulls.values():
            if pull.state == "open" and pull.head == head and pull.base == base:
                return Reply(
                    422,
                    {
                        "message": "Validation Failed",
                        "errors": [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "message": f"A pull request already exists for {owner}:{head}.",
                            }
                        ],
                        "documentation_url": f"{DOCS}/pulls/pulls#create-a-pull-request",
                    },
                )
        pull = self.state.add_pull(
            repo,
            head=head,
            base=base,
            title=str(body.get("title") or ""),
            body=str(body.get("body") or ""),
            draft=bool(body.get("draft", False)),
        )
        return Reply(201, self.pull_json(repo, pull))

    def _pull(self, owner: str, name: str, number: str) -> tuple[FakeRepo, FakePull] | None:
        repo = self._repo(owner, name)
        pull = repo.pulls.get(int(number)) if repo else None
        return (repo, pull) if repo and pull else None

    def get_pull(self, owner: str, name: str, number: str, **_: Any) -> Reply:
        found = self._pull(owner, name, number)
        return Reply(200, self.pull_json(*found)) if found else not_found()

    def merge_pull(
        self, owner: str, name: str, number: str, body: dict[str, Any], **_: Any
    ) -> Reply:
        found = self._pull(owner, name, number)
        if not found:
            return not_found()
        repo, pull = found

        def refuse(status: int, message: str) -> Reply:
            return Reply(
                status, {"message": message, "documentation_url": MERGE_DOCS, "status": str(status)}
            )

        method = str(body.get("merge_method") or "merge")
        if pull.state != "open":
            return refuse(405, "Pull Request is not mergeable")
        if pull.draft:
            return refuse(405, "Pull Request is still a draft")
        sha = body.get("sha")
        if sha and sha != pull.head_sha:
            return refuse(409, "Head branch was modified. Review and try the merge again.")
        if method not in repo.allowed_merge_methods:
            return refuse(405, METHOD_NOT_ALLOWED.get(method, "Invalid merge method."))
        if pull.conflict or not pull.mergeable_known:
            return refuse(405, "Pull Request is not mergeable")
        violations = protection_violations(repo, pull, method)
        if violations:
            if repo.rulesets:
                return refuse(405, RULESET_PREFIX + "".join(f"{v}\n\n" for v in violations))
            return refuse(405, violations[0])
        merge_sha = merge(repo, pull, method)
        return Reply(
            200, {"sha": merge_sha, "merged": True, "message": "Pull Request successfully merged"}
        )

    def update_branch(
        self, owner: str, name: str, number: str, body: dict[str, Any], **_: Any
    ) -> Reply:
        found = self._pull(owner, name, number)
        if not found:
            return not_found()
        repo, pull = found
        expected = body.get("expected_head_sha")
        if expected and expected != pull.head_sha:
            return Reply(
                422,
                {
                    "message": "expected_head_sha does not match the pull request's HEAD.",
                    "documentation_url": f"{DOCS}/pulls/pulls#update-a-pull-request-branch",
                },
            )
        if not pull.behind:
            return Reply(
                422,
                {
                    "message": "There are no new commits on the base branch.",
                    "documentation_url": f"{DOCS}/pulls/pulls#update-a-pull-request-branch",
                },
            )
        pull.behind = False
        before = pull.head_sha
        pull.head_sha = new_sha(f"update-{repo.full_name}-{pull.number}")
        repo.branches[pull.head] = pull.head_sha
        pull.updated_at = now()
        repo.emit(
            "pull_request",
            pull_request_payload(
                "synchronize", repo, pull, sender="web-flow", before=before, after=pull.head_sha
            ),
        )
        return Reply(
            202,
            {
                "message": "Updating pull request branch.",
                "url": f"{self.web_url}/{repo.full_name}/pull/{pull.number}",
            },
        )

    def list_reviews(self, owner: str, name: str, number: str, **_: Any) -> Reply:
        found = self._pull(owner, name, number)
        if not found:
            return not_found()
        repo, pull = found
        return Reply(
            200,
            [
                {
                    "id": i + 1,
                    "user": {"login": login, "type": "User"},
                    "state": state,
                    "body": "",
                    "commit_id": pull.head_sha,
                    "submitted_at": _iso(pull.updated_at),
                    "html_url": f"{self.web_url}/{repo.full_name}/pull/{pull.number}",
                }
                for i, (login, state) in enumerate(pull.reviews)
            ],
        )

    def _pull_for_sha(
        self, owner: str, name: str, sha: str
    ) -> tuple[FakeRepo, FakePull | None] | None:
        repo = self._repo(owner, name)
        if repo is None:
            return None
        for pull in repo.pulls.values():
            if pull.head_sha == sha:
                return repo, pull
        return repo, None

    def check_runs(self, owner: str, name: str, sha: str, **_: Any) -> Reply:
        found = self._pull_for_sha(owner, name, sha)
        if found is None:
            return not_found()
        _repo, pull = found
        runs = [
            {
                "id": i + 1,
                "name": check.name,
                "head_sha": sha,
                "status": check.status,
                "conclusion": check.conclusion if check.status == "completed" else None,
                "started_at": None,
                "completed_at": None,
                "html_url": None,
                "details_url": None,
            }
            for i, check in enumerate(pull.checks.values() if pull else [])
            if check.kind == "check_run"
        ]
        return Reply(200, {"total_count": len(runs), "check_runs": runs})

    def commit_status(self, owner: str, name: str, sha: str, **_: Any) -> Reply:
        found = self._pull_for_sha(owner, name, sha)
        if found is None:
            return not_found()
        repo, pull = found
        statuses = [
            {
                "id": i + 1,
                "context": c.name,
                "state": c.conclusion or "pending",
                "description": None,
            }
            for i, c in enumerate(pull.checks.values() if pull else [])
            if c.kind == "status"
        ]
        states = {s["state"] for s in statuses}
        combined = (
            "failure"
            if states & {"failure", "error"}
            else "pending"
            if states - {"success"} or not statuses
            else "success"
        )
        return Reply(
            200,
            {
                "state": combined,
                "sha": sha,
                "total_count": len(statuses),
                "statuses": statuses,
                "repository": self.repo_json(repo),
                "url": f"{self._repo_url(repo)}/commits/{sha}/status",
            },
        )

    def _ref_json(self, repo: FakeRepo, branch: str) -> dict[str, Any]:
        sha = repo.branches[branch]
        return {
            "ref": f"refs/heads/{branch}",
            "node_id": f"REF_{repo.id}_{branch}",
            "url": f"{self._repo_url(repo)}/git/refs/heads/{branch}",
            "object": {
                "sha": sha,
                "type": "commit",
                "url": f"{self._repo_url(repo)}/git/commits/{sha}",
            },
        }

    def get_ref(self, owner: str, name: str, branch: str, **_: Any) -> Reply:
        repo = self._repo(owner, name)
        if repo is None or branch not in repo.branches:
            return not_found()
        return Reply(200, self._ref_json(repo, branch))

    def create_ref(self, owner: str, name: str, body: dict[str, Any], **_: Any) -> Reply:
        repo = self._repo(owner, name)
        if repo is None:
            return not_found()
        ref = str(body.get("ref", ""))
        sha = str(body.get("sha", ""))
        if not ref.startswith("refs/heads/") or not sha:
            return Reply(
                422, {"message": "Reference name is not well-formed", "documentation_url": DOCS}
            )
        branch = ref.removeprefix("refs/heads/")
        if branch in repo.branches:
            return Reply(422, {"message": "Reference already exists", "documentation_url": DOCS})
        repo.branches[branch] = sha
        return Reply(201, self._ref_json(repo, branch))

    def delete_ref(self, owner: str, name: str, branch: str, **_: Any) -> Reply:
        """https://docs.github.com/en/rest/git/refs#delete-a-reference: 204; 422 for a ref
        that does not exist or a protected branch. Open PRs from the branch are closed."""
        repo = self._repo(owner, name)
        if repo is None:
            return not_found()
        docs = f"{DOCS}/git/refs#delete-a-reference"
        if branch not in repo.branches:
            return Reply(422, {"message": "Reference does not exist", "documentation_url": docs})
        if branch == repo.default_branch or branch in (repo.protected_branches or ()):
            return Reply(
                422, {"message": "Cannot delete a protected branch", "documentation_url": docs}
            )
        del repo.branches[branch]
        for pull in repo.pulls.values():
            if pull.head == branch and pull.state == "open":
                close(repo, pull, by="web-flow")
        return Reply(204, None)

    # --- repository webhooks (https://docs.github.com/en/rest/repos/webhooks) ------------

    @property
    def hooks(self) -> FakeHooks:
        return self.state.hooks

    def _repo_hook(self, owner: str, name: str, hook_id: str) -> Any:
        repo = self._repo(owner, name)
        hook = self.hooks.hooks.get(int(hook_id))
        if repo is None or hook is None or (hook.repo or "").lower() != repo.full_name.lower():
            return None
        return hook

    def list_hooks(self, owner: str, name: str, **_: Any) -> Reply:
        repo = self._repo(owner, name)
        if repo is None:
            return not_found()
        mine = repo.full_name.lower()
        hooks = [h for h in self.hooks.hooks.values() if (h.repo or "").lower() == mine]
        return Reply(200, [h.as_json(self.base_url()) for h in hooks])

    def create_hook(self, owner: str, name: str, body: dict[str, Any], **_: Any) -> Reply:
        repo = self._repo(owner, name)
        if repo is None:
            return not_found()
        config = body.get("config")
        events = body.get("events", ["push"])
        problem = None
        if not isinstance(config, dict) or not isinstance(config.get("url"), str):
            problem = ("config", "missing_field")
        elif config.get("content_type", "form") not in CONTENT_TYPES:
            problem = ("content_type", "invalid")
        elif not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            problem = ("events", "invalid")
        if problem is None:
            assert isinstance(config, dict)
            try:
                hook = self.hooks.add(
                    config["url"],
                    secret=str(config.get("secret") or ""),
                    events=events,
                    # GitHub's default content type for a hook made over the API is form.
                    content_type=config.get("content_type", "form"),
                    active=bool(body.get("active", True)),
                    repo=repo.full_name,
                    repository_id=repo.id,
                )
            except ValueError:
                problem = ("url", "invalid")
            else:
                return Reply(201, hook.as_json(self.base_url()))
        return Reply(
            422,
            {
                "message": "Validation Failed",
                "errors": [{"resource": "Hook", "field": problem[0], "code": problem[1]}],
                "documentation_url": f"{DOCS}/repos/webhooks#create-a-repository-webhook",
            },
        )

    def get_hook(self, owner: str, name: str, hook_id: str, **_: Any) -> Reply:
        hook = self._repo_hook(owner, name, hook_id)
        return Reply(200, hook.as_json(self.base_url())) if hook else not_found()

    def update_hook(
        self, owner: str, name: str, hook_id: str, body: dict[str, Any], **_: Any
    ) -> Reply:
        hook = self._repo_hook(owner, name, hook_id)
        if hook is None:
            return not_found()
        changes: dict[str, Any] = {k: body[k] for k in ("active", "events") if k in body}
        config = body.get("config") or {}
        changes.update({k: config[k] for k in ("url", "secret", "content_type") if k in config})
        try:
            hook = self.hooks.update(hook.id, **changes)
        except (TypeError, ValueError):
            return Reply(422, {"message": "Validation Failed", "documentation_url": DOCS})
        return Reply(200, hook.as_json(self.base_url()))

    def delete_hook(self, owner: str, name: str, hook_id: str, **_: Any) -> Reply:
        hook = self._repo_hook(owner, name, hook_id)
        if hook is None:
            return not_found()
        self.hooks.remove(hook.id)
        return Reply(204, None)

    def list_deliveries(self, owner: str, name: str, hook_id: str, **_: Any) -> Reply:
        hook = self._repo_hook(owner, name, hook_id)
        if hook is None:
            return not_found()
        return Reply(200, [d.summary() for d in self.hooks.recent(hook.id)])

    def get_delivery(self, owner: str, name: str, hook_id: str, delivery: str, **_: Any) -> Reply:
        hook = self._repo_hook(owner, name, hook_id)
        found = [d for d in self.hooks.recent(hook.id) if d.id == int(delivery)] if hook else []
        return Reply(200, found[0].as_json()) if found else not_found()
