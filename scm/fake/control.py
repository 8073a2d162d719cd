"""Driving the fake: a Python API for tests (mixed into FakeGitHub) and the same verbs over
HTTP under /_fake/ for other processes (the demo's worker, `manage.py fake_review`)."""

from __future__ import annotations

import dataclasses
import re
import threading
from typing import TYPE_CHECKING, Any

from scm.fake.apps import FakeApps
from scm.fake.faults import Fault
from scm.fake.hooks import FakeDelivery, FakeHook, FakeHooks
from scm.fake.rest import Reply
from scm.fake.state import (
    PASSING_CONCLUSIONS,
    FakeAutoMerge,
    FakeCheck,
    FakePull,
    FakeRepo,
    FakeState,
    FakeThread,
    merge_group_ended,
    merge_group_started,
    merge_queue_enabled,
    new_sha,
    now,
    queue_position,
    repo_options_from_json,
    settle,
)
from scm.fake.state import close as _close
from scm.fake.state import dequeue as _dequeue
from scm.fake.state import enqueue as _enqueue
from scm.fake.state import merge as _merge
from scm.fake.state import merge_state_status as _merge_state_status
from scm.fake.state import mergeable as _mergeable
from scm.fake.state import review_decision as _review_decision
from scm.fake.webhooks import (
    check_run_payload,
    check_suite_payload,
    label_payload,
    pull_request_payload,
    review_payload,
    status_payload,
)

if TYPE_CHECKING:
    from scm.fake.server import RequestRecord


#: How a merge group can end, and the removal reason GitHub shows for a dropped one.
ADVANCE_RESULTS = {
    "merge": "",
    "fail_checks": "Required status checks failed for the merge group",
    "conflict": "Merge conflict with the base branch",
}


class FakeControl:
    """What a test (or the human-reviewer command) can do to the fake's GitHub."""

    state: FakeState
    hooks: FakeHooks
    faults: list[Fault]
    requests: list[RequestRecord]
    web_url: str
    apps: FakeApps
    _lock: threading.Lock
    _release: threading.Event

    # --- repositories and branches ------------------------------------------------------

    def create_repo(self, full_name: str, **options: Any) -> FakeRepo:
        """options: default_branch, allowed_merge_methods, required_approvals,
        required_checks, require_code_owner_review, code_owners,
        require_conversation_resolution."""
        owner, name = full_name.split("/", 1)
        return self.state.add_repo(owner, name, **options)

    def _repo(self, full_name: str) -> FakeRepo:
        repo = self.state.repo(full_name)
        if repo is None:
            raise KeyError(f"no repository {full_name} in the fake")
        return repo

    def create_branch(self, repo: str, branch: str, sha: str | None = None) -> str:
        with self.state.lock:
            fake_repo = self._repo(repo)
            fake_repo.branches[branch] = sha or new_sha(f"{repo}:{branch}")
            return fake_repo.branches[branch]

    def branch_sha(self, repo: str, branch: str) -> str | None:
        return self._repo(repo).branches.get(branch)

    # --- pull requests ------------------------------------------------------------------

    def create_pr(
        self,
        repo: str,
        *,
        head: str | None = None,
        base: str | None = None,
        title: str = "",
        body: str = "",
        draft: bool = False,
    ) -> FakePull:
        with self.state.lock:
            fake_repo = self._repo(repo)
            head = head or f"feature-{fake_repo.next_number}"
            return self.state.add_pull(
                fake_repo, head=head, base=base, title=title, body=body, draft=draft
            )

    def pull(self, repo: str, number: int) -> FakePull:
        pull = self._repo(repo).pulls.get(number)
        if pull is None:
            raise KeyError(f"no pull request {repo}#{number} in the fake")
        return pull

    def pr_url(self, repo: str, number: int) -> str:
        return f"{self.web_url}/{repo}/pull/{number}"

    def _touch(self, repo: str, number: int) -> FakePull:
        pull = self.pull(repo, number)
        pull.updated_at = now()
        return pull

    def approve(self, repo: str, number: int, *, by: str = "alice") -> None:
        with self.state.lock:
            pull = self._touch(repo, number)
            pull.reviews.append((by, "APPROVED"))
            if by in pull.requested_reviewers:
                pull.requested_reviewers.remove(by)
            fake_repo = self._repo(repo)
            fake_repo.emit(
                "pull_request_review", review_payload(fake_repo, pull, state="approved", by=by)
            )

    def request_changes(
        self, repo: str, number: int, *, by: str = "alice", body: str = "Please fix."
    ) -> None:
        with self.state.lock:
            pull = self._touch(repo, number)
            pull.reviews.append((by, "CHANGES_REQUESTED"))
            if body:
                pull.threads.append(FakeThread(path="README.md", body=body, author=by))
            fake_repo = self._repo(repo)
            fake_repo.emit(
                "pull_request_review",
                review_payload(fake_repo, pull, state="changes_requested", by=by),
            )

    def request_review(
        self, repo: str, number: int, *, login: str | None = None, team: str | None = None
    ) -> None:
        with self.state.lock:
            pull = self._touch(repo, number)
            if login:
                pull.requested_reviewers.append(login)
            if team:
                pull.requested_teams.append(team)

    def set_check(
        self,
        repo: str,
        number: int,
        name: str,
        conclusion: str | None = "success",
        *,
        status: str = "completed",
        required: bool | None = None,
        kind: str = "check_run",
    ) -> None:
        """A check run (or with kind="status", a commit status whose state is
        `conclusion`). required=True/False adds/removes it from branch protection."""
        with self.state.lock:
            pull = self._touch(repo, number)
            fake_repo = self._repo(repo)
            check = pull.checks[name] = FakeCheck(
                name=name, kind=kind, status=status, conclusion=conclusion
            )
            if required is not None:
                if required:
                    fake_repo.required_checks.add(name)
                else:
                    fake_repo.required_checks.discard(name)
            if kind == "status":
                fake_repo.emit("status", status_payload(fake_repo, pull, check))
                return
            fake_repo.emit("check_run", check_run_payload(fake_repo, pull, check))
            runs = [c for c in pull.checks.values() if c.kind == "check_run"]
            if check.status == "completed" and all(c.status == "completed" for c in runs):
                passing = all((c.conclusion or "") in PASSING_CONCLUSIONS for c in runs)
                fake_repo.emit(
                    "check_suite",
                    check_suite_payload(
                        fake_repo, pull, conclusion="success" if passing else "failure"
                    ),
                )

    def add_thread(
        self,
        repo: str,
        number: int,
        *,
        body: str,
        path: str = "README.md",
        by: str = "alice",
        resolved: bool = False,
    ) -> None:
        with self.state.lock:
            self._touch(repo, number).threads.append(
                FakeThread(path=path, body=body, author=by, resolved=resolved)
            )

    def resolve_threads(self, repo: str, number: int) -> None:
        with self.state.lock:
            for thread in self._touch(repo, number).threads:
                thread.resolved = True

    def set_pr(self, repo: str, number: int, **fields: Any) -> None:
        """Set raw fields: draft, conflict, behind, mergeable_known, has_hooks, title..."""
        with self.state.lock:
            pull = self._touch(repo, number)
            for key, value in fields.items():
                if key not in {f.name for f in dataclasses.fields(FakePull)}:
                    raise TypeError(f"unknown pull request field {key!r}")
                setattr(pull, key, value)

    def push(
        self, repo: str, number: int, *, sha: str | None = None, keep_checks: bool = False
    ) -> str:
        """A new commit on the head branch: new head SHA, checks start over."""
        with self.state.lock:
            pull = self._touch(repo, number)
            before = pull.head_sha
            pull.head_sha = sha or new_sha(f"push-{repo}-{number}")
            fake_repo = self._repo(repo)
            fake_repo.branches[pull.head] = pull.head_sha
            if not keep_checks:
                pull.checks.clear()
            fake_repo.emit(
                "pull_request",
                pull_request_payload(
                    "synchronize",
                    fake_repo,
                    pull,
                    sender=pull.author,
                    before=before,
                    after=pull.head_sha,
                ),
            )
            return pull.head_sha

    def close(self, repo: str, number: int, *, by: str = "alice") -> None:
        with self.state.lock:
            _close(self._repo(repo), self._touch(repo, number), by=by)

    def merge_externally(self, repo: str, number: int, *, by: str = "alice") -> None:
        """Someone merged it on GitHub."""
        with self.state.lock:
            pull = self._touch(repo, number)
            pull.state = "closed"
            pull.merged = True
            pull.merge_commit_sha = new_sha(f"external-{repo}-{number}")
            fake_repo = self._repo(repo)
            fake_repo.emit(
                "pull_request", pull_request_payload("closed", fake_repo, pull, sender=by)
            )

    # --- labels, auto-merge and the merge queue -----------------------------------------

    def add_label(self, repo: str, number: int, name: str, *, by: str = "alice") -> dict[str, Any]:
        """Someone adds a label; returns GitHub's `labeled` webhook payload."""
        with self.state.lock:
            pull = self._touch(repo, number)
            if name not in {n for n, _ in pull.labels}:
                pull.labels.append((name, by))
                pull.label_events.append((name, by, now()))
            fake_repo = self._repo(repo)
            payload = label_payload("labeled", fake_repo, pull, label=name, sender=by)
            fake_repo.emit("pull_request", payload)
            return payload

    def remove_label(
        self, repo: str, number: int, name: str, *, by: str = "alice"
    ) -> dict[str, Any]:
        """Someone removes a label; returns GitHub's `unlabeled` webhook payload."""
        with self.state.lock:
            pull = self._touch(repo, number)
            pull.labels = [(n, who) for n, who in pull.labels if n != name]
            fake_repo = self._repo(repo)
            payload = label_payload("unlabeled", fake_repo, pull, label=name, sender=by)
            fake_repo.emit("pull_request", payload)
            return payload

    def enable_auto_merge(
        self, repo: str, number: int, *, by: str = "alice", method: str = "SQUASH"
    ) -> None:
        """Someone pressed "Enable auto-merge" on GitHub (no checks: a person may)."""
        with self.state.lock:
            fake_repo = self._repo(repo)
            self._touch(repo, number).auto_merge = FakeAutoMerge(enabled_by=by, method=method)
            settle(fake_repo)

    def disable_auto_merge(self, repo: str, number: int) -> None:
        with self.state.lock:
            self._touch(repo, number).auto_merge = None

    def enqueue(self, repo: str, number: int, *, by: str = "alice") -> int:
        """Someone pressed "Merge when ready"; returns the entry's position."""
        with self.state.lock:
            fake_repo = self._repo(repo)
            pull = self._touch(repo, number)
            if not merge_queue_enabled(fake_repo, pull):
                raise ValueError(f"{repo}:{pull.base} has no merge queue")
            _enqueue(fake_repo, pull, by=by)
            found = queue_position(fake_repo, pull)
            assert found is not None
            return found[0]

    def merge_queue(self, repo: str, base: str | None = None) -> list[int]:
        """The PR numbers in the queue of `base` (default branch by default), head first."""
        fake_repo = self._repo(repo)
        return [e.number for e in fake_repo.merge_queues.get(base or fake_repo.default_branch, [])]

    def advance_merge_queue(
        self, repo: str, *, base: str | None = None, result: str = "merge"
    ) -> list[dict[str, Any]]:
        """The head entry's merge group finishes: `merge` lands it; `fail_checks` (a required
        check failed on the merge group) or `conflict` drops it from the queue. Returns the
        merge_group webhook payloads GitHub would send (destroyed, then checks_requested for
        the next head)."""
        if result not in ADVANCE_RESULTS:
            raise ValueError(f"result must be one of {sorted(ADVANCE_RESULTS)}")
        with self.state.lock:
            fake_repo = self._repo(repo)
            base = base or fake_repo.default_branch
            queue = fake_repo.merge_queues.get(base) or []
            if not queue:
                raise ValueError(f"the merge queue of {repo}:{base} is empty")
            entry = queue[0]
            pull = self._touch(repo, entry.number)
            if result != "merge":
                return _dequeue(
                    fake_repo, pull, ADVANCE_RESULTS[result], group_reason="invalidated"
                )
            payloads = [merge_group_ended(fake_repo, pull, reason="merged")]
            queue.pop(0)
            _merge(fake_repo, pull, "merge", by="github-merge-queue[bot]")
            if started := merge_group_started(fake_repo, base):
                payloads.append(started)
            return payloads

    def describe(self, repo: str, number: int) -> dict[str, Any]:
        """What GitHub would say now (for the control API and debugging)."""
        with self.state.lock:
            fake_repo = self._repo(repo)
            pull = self.pull(repo, number)
            return {
                "repo": fake_repo.full_name,
                "number": pull.number,
                "url": self.pr_url(fake_repo.full_name, pull.number),
                "state": pull.state,
                "merged": pull.merged,
                "draft": pull.draft,
                "head": pull.head,
                "base": pull.base,
                "head_sha": pull.head_sha,
                "review_decision": _review_decision(fake_repo, pull),
                "merge_state_status": _merge_state_status(fake_repo, pull),
                "mergeable": _mergeable(pull),
                "reviews": [list(r) for r in pull.reviews],
                "checks": {n: [c.status, c.conclusion] for n, c in pull.checks.items()},
                "threads": [[t.body, t.resolved] for t in pull.threads],
                "labels": [name for name, _by in pull.labels],
                "auto_merge": None
                if pull.auto_merge is None
                else [pull.auto_merge.enabled_by, pull.auto_merge.method],
                "merge_queue_position": (queue_position(fake_repo, pull) or (None,))[0],
            }

    # --- webhooks -----------------------------------------------------------------------

    def add_hook(
        self,
        url: str,
        *,
        secret: str = "",
        events: list[str] | None = None,
        content_type: str = "json",
        repo: str | None = None,
    ) -> FakeHook:
        """A webhook for `repo` (as POST /repos/{owner}/{repo}/hooks makes), or for every
        repository; events default to every one ("*")."""
        repository_id = None
        if repo is not None:
            fake_repo = self._repo(repo)
            repo, repository_id = fake_repo.full_name, fake_repo.id
        return self.hooks.add(
            url,
            secret=secret,
            events=events or ["*"],
            content_type=content_type,
            repo=repo,
            repository_id=repository_id,
        )

    def deliveries(self, hook_id: int | None = None) -> list[FakeDelivery]:
        """Recent deliveries, newest first."""
        return self.hooks.recent(hook_id)

    def wait_for_deliveries(self, timeout: float = 15.0) -> list[FakeDelivery]:
        """Once every queued delivery was sent (or given up on): the recent deliveries."""
        if not self.hooks.wait_idle(timeout):
            raise TimeoutError(f"webhook deliveries still queued after {timeout} s")
        return self.hooks.recent()

    # --- GitHub Apps --------------------------------------------------------------------

    def register_app(self, app_id: int, public_key: str, *, slug: str = "gastown") -> None:
        """A GitHub App whose JWTs the fake verifies with `public_key` (PEM)."""
        with self._lock:
            self.apps.register(app_id, public_key, slug)

    def install_app(self, app_id: int, owner: str) -> int:
        """Install the App on an owner (all its repositories); returns the installation id."""
        with self._lock:
            return self.apps.install(app_id, owner)

    def suspend_installation(self, installation_id: int) -> None:
        with self._lock:
            self.apps.installations[installation_id].suspended = True

    def revoke_installation_tokens(self, installation_id: int) -> None:
        with self._lock:
            self.apps.revoke_tokens(installation_id)

    # --- faults and the request log -----------------------------------------------------

    def add_fault(self, kind: str, **options: Any) -> Fault:
        """See scm/fake/faults.py; e.g. add_fault("status", status=502, method="PUT",
        path=r"/merge$", times=1)."""
        fault = Fault(kind=kind, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove the faults and send the answers `hold` faults withhold."""
        with self._lock:
            self.faults.clear()
            self._release.set()
            self._release = threading.Event()

    def held_requests(self) -> list[RequestRecord]:
        """The requests performed whose answers a `hold` fault withholds now."""
        return [r for r in list(self.requests) if r.held]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def merge_calls(self, repo: str, number: int) -> list[RequestRecord]:
        path = f"/repos/{repo}/pulls/{number}/merge".lower()
        return [r for r in list(self.requests) if r.method == "PUT" and r.path.lower() == path]

    def graphql_requests(self) -> list[RequestRecord]:
        return [r for r in list(self.requests) if r.path == "/graphql"]


_PULL_ACTION = re.compile(
    r"/_fake/pulls/(?P<owner>[^/]+)/(?P<name>[^/]+)/(?P<number>\d+)(?:/(?P<action>[a-z-]+))?"
)


_QUEUE_ADVANCE = re.compile(r"/_fake/queues/(?P<owner>[^/]+)/(?P<name>[^/]+)/advance")


class ControlApi:
    """HTTP verbs under /_fake/ mapped to FakeControl methods (JSON in, JSON out)."""

    def __init__(self, fake: FakeControl) -> None:
        self.fake = fake

    def dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        data: dict[str, Any] = body if isinstance(body, dict) else {}
        try:
            return self._dispatch(method, path, query, data)
        except (KeyError, TypeError, ValueError) as error:
            return Reply(400, {"error": str(error)})

    def _dispatch(
        self, method: str, path: str, query: dict[str, str], data: dict[str, Any]
    ) -> Reply:
        fake = self.fake
        if path == "/_fake/health":
            return Reply(200, {"ok": True})
        if path == "/_fake/reset" and method == "POST":
            fake.reset()  # type: ignore[attr-defined]
            return Reply(200, {"ok": True})
        if path == "/_fake/repos" and method == "POST":
            full_name = data.pop("repo")
            data = repo_options_from_json(data)
            repo = fake.create_repo(full_name, **data)
            return Reply(201, {"repo": repo.full_name, "default_branch": repo.default_branch})
        if path == "/_fake/faults":
            if method == "DELETE":
                fake.clear_faults()
                return Reply(200, {"ok": True})
            if method == "POST":
                fault = fake.add_fault(data.pop("kind"), **data)
                return Reply(201, dataclasses.asdict(fault))
        if path == "/_fake/hooks":
            if method == "GET":
                return Reply(200, [h.as_json("") for h in fake.hooks.hooks.values()])
            if method == "POST":
                hook = fake.add_hook(
                    data["url"],
                    secret=data.get("secret", ""),
                    events=data.get("events"),
                    content_type=data.get("content_type", "json"),
                    repo=data.get("repo"),
                )
                return Reply(201, hook.as_json(""))
        hook_path = re.fullmatch(r"/_fake/hooks/(?P<id>[0-9]+)", path)
        if hook_path and method == "DELETE":
            fake.hooks.remove(int(hook_path["id"]))
            return Reply(200, {"ok": True})
        if path == "/_fake/deliveries" and method == "GET":
            hook_id = int(query["hook"]) if query.get("hook") else None
            return Reply(200, [d.as_json() for d in fake.deliveries(hook_id)])
        if path == "/_fake/requests" and method == "GET":
            return Reply(200, [dataclasses.asdict(r) for r in list(fake.requests)])
        if path == "/_fake/apps" and method == "POST":
            fake.register_app(
                int(data["app_id"]), data["public_key"], slug=data.get("slug", "gastown")
            )
            return Reply(201, {"app_id": int(data["app_id"])})
        installs = re.fullmatch(r"/_fake/apps/(?P<app_id>[0-9]+)/installations", path)
        if installs and method == "POST":
            installation_id = fake.install_app(int(installs["app_id"]), data["owner"])
            return Reply(201, {"id": installation_id, "owner": data["owner"]})
        queue = _QUEUE_ADVANCE.fullmatch(path)
        if queue and method == "POST":
            repo_name = f"{queue['owner']}/{queue['name']}"
            payloads = fake.advance_merge_queue(
                repo_name, base=data.get("base"), result=data.get("result", "merge")
            )
            return Reply(200, {"webhooks": payloads, "queue": fake.merge_queue(repo_name)})
        match = _PULL_ACTION.fullmatch(path)
        if match:
            return self._pull_action(method, match, data)
        if path.startswith("/_fake/repos/") and path.endswith("/pulls") and method == "POST":
            repo_name = path.removeprefix("/_fake/repos/").removesuffix("/pulls")
            pull = fake.create_pr(repo_name, **data)
            return Reply(201, fake.describe(repo_name, pull.number))
        return Reply(404, {"error": f"no control endpoint {method} {path}"})

    def _pull_action(self, method: str, match: re.Match[str], data: dict[str, Any]) -> Reply:
        fake = self.fake
        repo = f"{match['owner']}/{match['name']}"
        number = int(match["number"])
        action = match["action"]
        if action is None and method == "GET":
            return Reply(200, fake.describe(repo, number))
        if method != "POST":
            return Reply(405, {"error": "use POST"})
        actions = {
            "approve": lambda: fake.approve(repo, number, by=data.get("by", "alice")),
            "request-changes": lambda: fake.request_changes(
                repo, number, by=data.get("by", "alice"), body=data.get("body", "Please fix.")
            ),
            "request-review": lambda: fake.request_review(
                repo, number, login=data.get("login"), team=data.get("team")
            ),
            "checks": lambda: fake.set_check(
                repo,
                number,
                data["name"],
                data.get("conclusion", "success"),
                status=data.get("status", "completed"),
                required=data.get("required"),
                kind=data.get("kind", "check_run"),
            ),
            "threads": lambda: fake.add_thread(
                repo,
                number,
                body=data["body"],
                path=data.get("path", "README.md"),
                by=data.get("by", "alice"),
            ),
            "resolve-threads": lambda: fake.resolve_threads(repo, number),
            "push": lambda: fake.push(repo, number, sha=data.get("sha")),
            "set": lambda: fake.set_pr(repo, number, **data),
            "close": lambda: fake.close(repo, number),
            "merge-externally": lambda: fake.merge_externally(repo, number),
            "labels": lambda: fake.add_label(
                repo, number, data["name"], by=data.get("by", "alice")
            ),
            "unlabel": lambda: fake.remove_label(
                repo, number, data["name"], by=data.get("by", "alice")
            ),
            "auto-merge": lambda: fake.enable_auto_merge(
                repo, number, by=data.get("by", "alice"), method=data.get("method", "SQUASH")
            ),
            "disable-auto-merge": lambda: fake.disable_auto_merge(repo, number),
            "enqueue": lambda: fake.enqueue(repo, number, by=data.get("by", "alice")),
        }
        if action not in actions:
            return Reply(404, {"error": f"unknown action {action!r}; one of {sorted(actions)}"})
        result = actions[action]()
        described = fake.describe(repo, number)
        if isinstance(result, dict):  # a webhook payload GitHub would send for this action
            described["webhook"] = result
        return Reply(200, described)
