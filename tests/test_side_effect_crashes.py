"""A process killed inside each side effect, and the next tick or check completing the work
exactly once (docs/architecture.md, "Side effects and crashes").

Each test runs `manage.py reconcile` or `manage.py check_prs` against the fake GitHub over
HTTP, with a `hold` fault that performs the request and withholds the answer; kills the
process while the answer is held (SIGKILL: no handler, no clean-up); and runs the next tick
or check (tests/crash_steps.py) at a later time, after the intent's lease. The processes
share a SQLite file of their own, migrated once per module."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gastown.services.intents import INTENT_LEASE
from tests.crash_steps import FEATURE_BRANCH, REPO
from tests.processes import REPO as CODE
from tests.processes import wait_for

AFTER_LEASE = str(INTENT_LEASE.total_seconds() + 10)
WITHIN_LEASE = "20"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "template.sqlite3"
    env = _env(path, api_url="http://127.0.0.1:9")
    _run(env, "manage.py", "migrate", "--noinput")
    return path


def _env(db: Path, *, api_url: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "AGENT_RUNTIME_URL"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": f"sqlite:///{db}",
            "GITHUB_API_URL": api_url,
            "GITHUB_WEB_URL": "https://github.com",
            "GITHUB_TOKEN": "test-token",
            **extra,
        }
    )
    return env


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=CODE, env=env, timeout=120, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


class Town:
    """The town's database file and the steps run on it."""

    def __init__(self, migrated: Path, tmp_path: Path, api_url: str, **extra: str) -> None:
        db = tmp_path / "db.sqlite3"
        shutil.copy(migrated, db)
        self.env = _env(db, api_url=api_url, **extra)

    def step(self, *args: str) -> str:
        return _run(self.env, "-m", "tests.crash_steps", *args)

    def show(self) -> dict:
        return json.loads(self.step("show"))


@pytest.fixture
def town(migrated, tmp_path, fake_github):
    return Town(migrated, tmp_path, fake_github.url)


def kill_inside(spawn, tmp_path, env, command: str, held) -> None:
    """Run `manage.py <command>` until `held()` says it waits inside its side effect, then
    kill it (SIGKILL, its whole session)."""
    proc = spawn([sys.executable, "manage.py", command], env=env, log=tmp_path / "killed.log")
    wait_for(
        lambda: held() or proc.poll() is not None, seconds=90, what=f"{command} inside its call"
    )
    assert proc.poll() is None, (tmp_path / "killed.log").read_text()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def requests(fake_github, method: str, path: str) -> list:
    return [r for r in list(fake_github.requests) if r.method == method and r.path == path]


def intent(state: dict, kind: str) -> dict:
    (found,) = [i for i in state["intents"] if i["kind"] == kind]
    return found


def test_killed_while_opening_a_landing_pr_the_next_tick_adopts_it(
    town, spawn, tmp_path, fake_github
):
    fake_github.create_repo(REPO)
    fake_github.create_branch(REPO, FEATURE_BRANCH)
    town.step("setup_landing_pr")
    fake_github.add_fault("hold", method="POST", path=r"/pulls$")
    kill_inside(spawn, tmp_path, town.env, "reconcile", fake_github.held_requests)
    fake_github.clear_faults()
    # What the crash left: GitHub has the PR, the MR does not know it.
    assert len(fake_github.state.repo(REPO).pulls) == 1
    state = town.show()
    assert [(m["state"], m["pr_url"]) for m in state["merge_requests"]] == [("in_progress", "")]
    assert intent(state, "open_pr")["outcome"] == ""

    town.step("tick", WITHIN_LEASE)  # the call may still be in flight: not repeated
    assert town.show()["merge_requests"][0]["pr_url"] == ""
    town.step("tick", AFTER_LEASE)

    state = town.show()
    assert state["merge_requests"][0]["pr_url"] == fake_github.pr_url(REPO, 1)
    assert len(fake_github.state.repo(REPO).pulls) == 1
    assert len(requests(fake_github, "POST", f"/repos/{REPO}/pulls")) == 1
    assert (intent(state, "open_pr")["outcome"], intent(state, "open_pr")["attempts"]) == (
        "done",
        2,
    )
    # The refinery was told once, after the PR was recorded.
    assert [i["outcome"] for i in state["intents"] if i["kind"] == "dispatch"][-1] == "done"


def test_killed_while_creating_a_feature_branch_the_next_tick_finds_it(
    town, spawn, tmp_path, fake_github
):
    fake_github.create_repo(REPO)
    town.step("setup_feature_branch")
    fake_github.add_fault("hold", method="POST", path=r"/git/refs$")
    kill_inside(spawn, tmp_path, town.env, "reconcile", fake_github.held_requests)
    fake_github.clear_faults()
    assert fake_github.branch_sha(REPO, FEATURE_BRANCH) is not None
    assert town.show()["convoys"] == [{"branch_created": False}]

    town.step("tick", WITHIN_LEASE)
    town.step("tick", AFTER_LEASE)

    state = town.show()
    assert state["convoys"] == [{"branch_created": True}]
    assert len(requests(fake_github, "POST", f"/repos/{REPO}/git/refs")) == 1
    assert [(i["outcome"], i["attempts"]) for i in state["intents"]] == [("done", 2)]


class _Runtime(BaseHTTPRequestHandler):
    """An agent runtime that acts on each dispatch id once, and holds its first answer."""

    received: list[str] = []
    release = threading.Event()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(body["dispatch_id"])
        if len(type(self).received) == 1:
            type(self).release.wait(60)
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def runtime():
    _Runtime.received = []
    _Runtime.release = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Runtime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    _Runtime.release.set()
    server.shutdown()


def test_killed_while_notifying_a_dispatch_the_next_tick_repeats_its_key(
    migrated, spawn, tmp_path, fake_github, runtime
):
    town = Town(
        migrated,
        tmp_path,
        fake_github.url,
        AGENT_RUNTIME_URL=f"http://127.0.0.1:{runtime.server_port}/dispatch",
        AGENT_RUNTIME_SECRET="runtime-secret",
    )
    town.step("setup_dispatch")
    kill_inside(spawn, tmp_path, town.env, "reconcile", lambda: _Runtime.received)
    _Runtime.release.set()

    town.step("tick", WITHIN_LEASE)
    assert len(_Runtime.received) == 1
    town.step("tick", AFTER_LEASE)

    state = town.show()
    (dispatch,) = state["intents"]
    assert (dispatch["outcome"], dispatch["attempts"]) == ("done", 2)
    # Sent again with the same key: the runtime acts on one dispatch.
    assert _Runtime.received == [dispatch["key"], dispatch["key"]]
    assert len(set(_Runtime.received)) == 1
    assert len(state["agents"]) == 1


def test_killed_while_merging_the_next_check_sees_the_merge_and_sends_none(
    town, spawn, tmp_path, fake_github
):
    fake_github.create_repo(REPO)
    fake_github.create_pr(REPO, head="polecat/ready")
    town.step("setup_ready_pr")
    fake_github.add_fault("hold", method="PUT", path=r"/merge$")
    kill_inside(spawn, tmp_path, town.env, "check_prs", fake_github.held_requests)
    fake_github.clear_faults()
    assert fake_github.pull(REPO, 1).merged  # GitHub merged it; the answer was lost
    assert intent(town.show(), "merge")["outcome"] == ""

    town.step("check", WITHIN_LEASE)
    town.step("check", AFTER_LEASE)
    town.step("tick", AFTER_LEASE)

    state = town.show()
    assert [m["state"] for m in state["merge_requests"]] == ["merged"]
    assert len(fake_github.merge_calls(REPO, 1)) == 1
    assert intent(state, "merge")["outcome"] == "no_answer"


def test_killed_during_the_pre_merge_check_the_merge_goes_out_after_the_lease(
    town, spawn, tmp_path, fake_github
):
    """The attempt was claimed (its timer moved ahead while in flight) and the process died
    before its merge call: the next check after the lease merges, not minutes later."""
    fake_github.create_repo(REPO)
    fake_github.create_pr(REPO, head="polecat/ready")
    town.step("setup_ready_pr")
    # The pass's own read goes through; the fresh look right before the merge is held.
    fake_github.add_fault("hold", method="POST", path=r"^/graphql$", after=1)
    kill_inside(spawn, tmp_path, town.env, "check_prs", fake_github.held_requests)
    fake_github.clear_faults()
    assert fake_github.merge_calls(REPO, 1) == []

    town.step("check", WITHIN_LEASE)  # the claim's window: no second attempt yet
    assert fake_github.merge_calls(REPO, 1) == []
    town.step("check", AFTER_LEASE)

    state = town.show()
    assert [m["state"] for m in state["merge_requests"]] == ["merged"]
    assert len(fake_github.merge_calls(REPO, 1)) == 1


def test_killed_while_enqueuing_the_next_check_sees_the_entry_and_sends_none(
    town, spawn, tmp_path, fake_github
):
    fake_github.create_repo(REPO, require_merge_queue=True)
    fake_github.create_pr(REPO, head="polecat/ready")
    town.step("setup_ready_pr")
    fake_github.add_fault("hold", method="POST", path=r"^/graphql$", operation="EnqueuePullRequest")
    kill_inside(spawn, tmp_path, town.env, "check_prs", fake_github.held_requests)
    fake_github.clear_faults()
    assert fake_github.merge_queue(REPO) == [1]

    town.step("check", WITHIN_LEASE)
    town.step("check", AFTER_LEASE)

    state = town.show()
    assert [m["blocker"] for m in state["merge_requests"]] == ["queued"]
    enqueues = [r for r in fake_github.graphql_requests() if r.operation == "EnqueuePullRequest"]
    assert len(enqueues) == 1
    assert fake_github.merge_queue(REPO) == [1]
