"""The fake GitHub's webhooks: hooks configured over GitHub's REST API or the control API, and
signed deliveries of every event the fake models, sent over real HTTP to a local receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.processes import free_port, wait_for

REPO = "octo/app"
SECRET = "hook-secret"


class Receiver:
    """A webhook receiver on loopback that records each request and answers `status`."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((dict(self.headers.items()), body))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/github"

    def events(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        found = []
        for headers, body in self.requests:
            payload = json.loads(body)
            found.append((headers["X-GitHub-Event"], payload.get("action"), payload))
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture
def hooked(fake_github, receiver):
    fake_github.create_repo(REPO, required_approvals=1, required_checks={"ci"})
    fake_github.add_hook(receiver.url, secret=SECRET, repo=REPO)
    fake_github.wait_for_deliveries()
    receiver.requests.clear()  # the ping
    return fake_github


def _delivered(fake) -> None:
    fake.wait_for_deliveries()


def test_every_event_is_delivered_signed_with_the_hook_secret(hooked, receiver):
    fake = hooked
    pull = fake.create_pr(REPO)
    fake.set_check(REPO, pull.number, "ci", status="in_progress", conclusion=None)
    fake.set_check(REPO, pull.number, "ci", "success")
    fake.set_check(REPO, pull.number, "legacy", "success", kind="status")
    fake.approve(REPO, pull.number, by="alice")
    fake.request_changes(REPO, pull.number, by="bob")
    fake.push(REPO, pull.number)
    fake.close(REPO, pull.number)
    _delivered(fake)

    seen = [(event, action) for event, action, _ in receiver.events()]
    assert seen == [
        ("pull_request", "opened"),
        ("check_run", "created"),
        ("check_run", "completed"),
        ("check_suite", "completed"),
        ("status", None),
        ("pull_request_review", "submitted"),
        ("pull_request_review", "submitted"),
        ("pull_request", "synchronize"),
        ("pull_request", "closed"),
    ]
    guids = set()
    for headers, body in receiver.requests:
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature-256"] == f"sha256={expected}"
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"].startswith("GitHub-Hookshot/")
        assert headers["X-GitHub-Hook-ID"].isdigit()
        guids.add(str(uuid.UUID(headers["X-GitHub-Delivery"])))
    assert len(guids) == len(receiver.requests)

    events = receiver.events()
    review = events[5][2]
    assert review["review"]["state"] == "approved" and review["review"]["user"]["login"] == "alice"
    assert review["pull_request"]["number"] == pull.number
    assert events[6][2]["review"]["state"] == "changes_requested"
    run = events[2][2]["check_run"]
    assert (run["name"], run["conclusion"]) == ("ci", "success")
    assert run["pull_requests"][0]["number"] == pull.number
    suite = events[3][2]["check_suite"]
    assert suite["conclusion"] == "success" and suite["pull_requests"][0]["number"] == pull.number
    assert events[4][2]["state"] == "success" and events[4][2]["context"] == "legacy"
    closed = events[8][2]
    assert closed["pull_request"]["merged"] is False
    assert closed["repository"]["full_name"] == REPO


def test_a_failing_check_completes_its_suite_as_a_failure(hooked, receiver):
    pull = hooked.create_pr(REPO)
    hooked.set_check(REPO, pull.number, "ci", "success")
    hooked.set_check(REPO, pull.number, "lint", "failure")
    _delivered(hooked)
    suites = [p for event, _, p in receiver.events() if event == "check_suite"]
    assert [s["check_suite"]["conclusion"] for s in suites] == ["success", "failure"]


def test_a_merge_through_the_api_is_delivered_as_a_merged_close(hooked, receiver, github_client):
    from scm.types import PullRequestRef

    pull = hooked.create_pr(REPO)
    hooked.set_check(REPO, pull.number, "ci", "success")
    hooked.approve(REPO, pull.number)
    outcome = github_client.merge(
        PullRequestRef(REPO, pull.number), head_sha=pull.head_sha, methods=["squash"]
    )
    assert outcome.merged
    _delivered(hooked)
    closed = [p for event, action, p in receiver.events() if action == "closed"]
    assert len(closed) == 1
    assert closed[0]["pull_request"]["merged"] is True
    assert (
        closed[0]["pull_request"]["merge_commit_sha"]
        == hooked.pull(REPO, pull.number).merge_commit_sha
    )


def _two_queued_prs(fake_github, receiver):
    """Two PRs in the merge queue of a repository whose hook takes merge_group events."""
    fake_github.create_repo(REPO, require_merge_queue=True)
    fake_github.add_hook(receiver.url, secret=SECRET, events=["merge_group"])
    first = fake_github.create_pr(REPO)
    second = fake_github.create_pr(REPO)
    fake_github.enqueue(REPO, first.number)
    fake_github.enqueue(REPO, second.number)
    return first.number, second.number


def _merge_groups(fake_github, receiver) -> list[tuple[str, str | None, int]]:
    """The merge_group deliveries: action, reason and the PR its head ref names."""
    _delivered(fake_github)
    return [
        (action, p.get("reason"), int(p["merge_group"]["head_ref"].rsplit("/", 1)[1].split("-")[1]))
        for event, action, p in receiver.events()
        if event == "merge_group"
    ]


def test_the_merge_queue_sends_merge_group_events(fake_github, receiver):
    first, second = _two_queued_prs(fake_github, receiver)
    fake_github.advance_merge_queue(REPO, result="merge")
    fake_github.advance_merge_queue(REPO, result="fail_checks")

    assert _merge_groups(fake_github, receiver) == [
        ("checks_requested", None, first),
        ("destroyed", "merged", first),
        ("checks_requested", None, second),
        ("destroyed", "invalidated", second),
    ]
    # Only the subscribed events (and the ping) reach this hook.
    assert {event for event, _, _ in receiver.events()} == {"ping", "merge_group"}


def test_closing_the_head_of_the_queue_destroys_its_merge_group(fake_github, receiver):
    first, second = _two_queued_prs(fake_github, receiver)
    fake_github.close(REPO, second)  # not the head: its group never started
    fake_github.close(REPO, first)

    assert _merge_groups(fake_github, receiver) == [
        ("checks_requested", None, first),
        ("destroyed", "dequeued", first),
    ]
    assert fake_github.merge_queue(REPO) == []


def test_rest_hooks_are_modelled_on_github_and_list_their_deliveries(fake_github, receiver):
    fake_github.create_repo(REPO)
    token = {"Authorization": "token test-token", "Content-Type": "application/json"}

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"{fake_github.url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers=token,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    status, hook = call(
        "POST",
        f"/repos/{REPO}/hooks",
        {
            "name": "web",
            "events": ["pull_request_review"],
            "config": {"url": receiver.url, "content_type": "json", "secret": SECRET},
        },
    )
    assert status == 201
    assert hook["config"] == {
        "url": receiver.url,
        "content_type": "json",
        "insecure_ssl": "0",
        "secret": "********",
    }
    assert hook["events"] == ["pull_request_review"] and hook["active"] is True
    assert call("POST", f"/repos/{REPO}/hooks", {"config": {"url": "nope"}})[0] == 422

    pull = fake_github.create_pr(REPO)
    fake_github.approve(REPO, pull.number)
    _delivered(fake_github)
    assert [event for event, _, _ in receiver.events()] == ["ping", "pull_request_review"]

    status, deliveries = call("GET", f"/repos/{REPO}/hooks/{hook['id']}/deliveries")
    assert status == 200
    assert [(d["event"], d["status_code"], d["status"]) for d in deliveries] == [
        ("pull_request_review", 200, "OK"),
        ("ping", 200, "OK"),
    ]
    one = call("GET", f"/repos/{REPO}/hooks/{hook['id']}/deliveries/{deliveries[0]['id']}")[1]
    assert one["request"]["headers"]["X-GitHub-Delivery"] == deliveries[0]["guid"]
    assert one["request"]["payload"]["action"] == "submitted"

    assert call("PATCH", f"/repos/{REPO}/hooks/{hook['id']}", {"active": False})[0] == 200
    fake_github.approve(REPO, pull.number, by="bob")
    _delivered(fake_github)
    assert len(receiver.requests) == 2  # an inactive hook gets nothing
    assert call("DELETE", f"/repos/{REPO}/hooks/{hook['id']}")[0] == 204
    assert call("GET", f"/repos/{REPO}/hooks")[1] == []


def test_deliveries_record_what_the_receiver_answered(fake_github, receiver, monkeypatch):
    fake_github.create_repo(REPO)
    monkeypatch.setattr(fake_github.hooks, "timeout", 0.5)
    hook = fake_github.add_hook(receiver.url, secret=SECRET)
    unreachable = fake_github.add_hook(f"http://127.0.0.1:{free_port()}/hook", events=["*"])
    _delivered(fake_github)
    receiver.status = 503
    fake_github.create_pr(REPO)
    _delivered(fake_github)
    receiver.status, receiver.delay = 200, 1.0
    fake_github.create_pr(REPO)
    _delivered(fake_github)

    mine = [(d.event, d.status_code, d.status) for d in fake_github.deliveries(hook.id)]
    assert mine == [
        ("pull_request", 0, "timed out"),
        ("pull_request", 503, "Invalid HTTP Response: 503"),
        ("ping", 200, "OK"),
    ]
    assert all(
        d.status.startswith("failed to connect") and d.status_code == 0
        for d in fake_github.deliveries(unreachable.id)
    )
    assert hook.last_response["message"] == "timed out"


def test_control_api_adds_a_global_form_hook_and_lists_recent_deliveries(fake_github, receiver):
    fake_github.create_repo(REPO)
    fake_github.create_repo("octo/other")

    def control(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{fake_github.url}/_fake/{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    hook = control(
        "POST",
        "hooks",
        {"url": receiver.url, "secret": SECRET, "events": ["pull_request"], "content_type": "form"},
    )
    fake_github.create_pr(REPO)
    fake_github.create_pr("octo/other")
    _delivered(fake_github)

    repos = []
    for headers, body in receiver.requests:
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature-256"] == f"sha256={expected}"
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        repos.append(payload.get("repository", {}).get("full_name"))
    assert repos[1:] == [REPO, "octo/other"]  # after the ping: every repository

    recent = control("GET", "deliveries")
    assert [d["event"] for d in recent] == ["pull_request", "pull_request", "ping"]
    assert all(d["hook_id"] == hook["id"] and d["status_code"] == 200 for d in recent)
    control("DELETE", f"hooks/{hook['id']}")
    assert control("GET", "hooks") == []


def test_reset_forgets_hooks_and_their_deliveries(fake_github, receiver):
    fake_github.create_repo(REPO)
    fake_github.add_hook(receiver.url)
    _delivered(fake_github)
    fake_github.reset()
    assert fake_github.deliveries() == [] and fake_github.hooks.hooks == {}


def test_fake_github_command_delivers_to_hook_url_signed_with_the_webhook_secret(
    spawn, receiver, tmp_path
):
    """What scripts/run starts: `fake_github --hook-url` signs with GITHUB_WEBHOOK_SECRET."""
    port = free_port()
    env = {**os.environ, "GITHUB_WEBHOOK_SECRET": SECRET, "SECRET_KEY": "x"}
    env["DJANGO_SETTINGS_MODULE"] = "gastown.settings"
    args = [sys.executable, "manage.py", "fake_github", "--port", str(port), "--repo", REPO]
    spawn([*args, "--hook-url", receiver.url], env=env, log=tmp_path / "fake.log")
    root = f"http://127.0.0.1:{port}/_fake"

    def control(path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{root}/{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def started() -> bool:
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=1):
                return True
        except OSError:
            return False

    wait_for(started, seconds=60, what="the fake GitHub")
    number = control(f"repos/{REPO}/pulls", {"head": "feature"})["number"]
    control(f"pulls/{REPO}/{number}/approve", {"by": "alice"})
    wait_for(lambda: len(receiver.requests) >= 3, seconds=15, what="three deliveries")

    assert [event for event, _, _ in receiver.events()] == [
        "ping",
        "pull_request",
        "pull_request_review",
    ]
    for headers, body in receiver.requests:
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Hub-Signature-256"] == f"sha256={expected}"
