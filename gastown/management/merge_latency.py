"""Approval to merge, measured for real (`manage.py bench`, README "Performance").

The fake GitHub is served over HTTP from this process; gastown runs as it does in production,
in processes of its own on a scratch SQLite database: gunicorn serving the webhook endpoint
and one `qcluster` (the one-minute schedules and the queued checks). A PR that waits for an
approval is approved through the fake's control API, and the time until the fake records
the merge is what is measured: once with the fake delivering its webhooks to gastown (a
review submitted makes the PR due and queues a check at once), once without (the
schedules' polling alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from socket import socket

from scm.fake.server import FakeGitHub

REPO = "bench/latency"
PROJECT = Path(__file__).resolve().parent.parent.parent
GUNICORN_CONF = "python:gastown.gunicorn_conf"  # as scripts/serve runs it
#: A merge must come within these, or the run is reported as missed (not waited for forever).
WEBHOOK_LIMIT_SECONDS = 60.0
POLLING_LIMIT_SECONDS = 180.0
_SEED = """
from gastown.management.bench_seed import seed_feedback_town
from gastown.models import Town
from gastown.scheduling import enqueue_feedback_check
town, _ = seed_feedback_town(repo={repo!r}, pr_urls={urls!r})
Town.objects.filter(pk=town.pk).update(auto_merge=True, auto_merge_delay_minutes=0)
enqueue_feedback_check(town.pk)
"""


@dataclass
class Latencies:
    """Seconds from the approval to the merge, one per run (None: no merge within the limit)."""

    webhook: list[float | None] = field(default_factory=list)
    polling: list[float | None] = field(default_factory=list)
    merge_calls: int = 0  # PUT .../merge calls gastown made, one per merged PR if all is well


def _free_port() -> int:
    with socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(condition: Callable[[], object], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"approval-to-merge bench: {what} not within {seconds:.0f} s")
        time.sleep(0.05)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def _processes(env: dict[str, str], logs: Path) -> Iterator[None]:
    """gunicorn and qcluster, stopped (SIGTERM, then SIGKILL) whatever happens."""
    started: list[subprocess.Popen[bytes]] = []
    commands = {
        "web": [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, "gastown.wsgi"],
        "worker": [sys.executable, "manage.py", "qcluster"],
    }
    try:
        for name, args in commands.items():
            with (logs / f"{name}.log").open("w") as out:
                started.append(
                    subprocess.Popen(
                        args,
                        cwd=PROJECT,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _approve(fake: FakeGitHub, number: int) -> None:
    """The reviewer approves through the control API, over HTTP, as `fake_review` does."""
    request = urllib.request.Request(
        f"{fake.url}/_fake/pulls/{REPO}/{number}/approve",
        data=json.dumps({"by": "alice"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _approval_to_merge(fake: FakeGitHub, number: int, *, limit: float) -> float | None:
    started = time.monotonic()
    _approve(fake, number)
    pull = fake.pull(REPO, number)
    while not pull.merged:
        if time.monotonic() - started > limit:
            return None
        time.sleep(0.01)
    return time.monotonic() - started


def measure(
    *, webhook_runs: int, polling_runs: int, log: Callable[[str], None] = lambda _: None
) -> Latencies:
    """Approve `webhook_runs` PRs one after the other with the webhook, then `polling_runs`
    without it; each run's seconds from the approval to the merge."""
    result = Latencies()
    with tempfile.TemporaryDirectory(prefix="gastown-latency-") as tmp, FakeGitHub() as fake:
        workdir = Path(tmp)
        database = workdir / "db.sqlite3"
        web = f"127.0.0.1:{_free_port()}"
        secret = secrets.token_hex(20)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABASE_", "Q_", "REDIS_", "WEB_", "GASTOWN_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="gastown.settings",
            DEBUG="0",
            SECRET_KEY=secrets.token_hex(32),
            DATABASE_URL=f"sqlite:///{database}",
            GITHUB_API_URL=fake.url,
            GITHUB_WEB_URL=fake.web_url,
            GITHUB_TOKEN="bench-token",
            GITHUB_WEBHOOK_SECRET=secret,
            # As a deployment without webhooks polls: every PR at its poll interval, the
            # safety net off (docs/domain.md §4, Cadence). The webhook half does not need it.
            GASTOWN_SAFETY_NET_SECONDS="0",
            Q_BROKER="orm",
            Q_WORKERS="1",
            WEB_BIND=web,
            WEB_WORKERS="1",
            LOG_LEVEL="WARNING",
        )

        def manage(*args: str) -> None:
            subprocess.run(
                [sys.executable, "manage.py", *args],
                cwd=PROJECT,
                env=env,
                check=True,
                capture_output=True,
                timeout=300,
            )

        fake.create_repo(REPO, required_approvals=1, required_checks={"ci"})
        numbers = []
        for _ in range(webhook_runs + polling_runs):
            number = fake.create_pr(REPO).number
            fake.set_check(REPO, number, "ci", "success")
            numbers.append(number)
        manage("migrate", "--noinput")
        manage("sync_schedules")
        urls = [fake.pr_url(REPO, n) for n in numbers]
        manage("shell", "-c", _SEED.format(repo=REPO, urls=urls))
        log(f"approval to merge: gastown on {web}, fake GitHub on {fake.url}, db {database}")

        with _processes(env, workdir):
            _wait(lambda: _answers(f"http://{web}/healthz"), seconds=60, what="gunicorn")
            # Every PR seen waiting for its approval (the check the seed queued).
            _wait(
                lambda: _waiting(database) == len(numbers),
                seconds=POLLING_LIMIT_SECONDS,
                what="the first check of the PRs",
            )
            hook = fake.add_hook(f"http://{web}/webhooks/github", secret=secret)
            fake.wait_for_deliveries()
            for number in numbers[:webhook_runs]:
                seconds = _approval_to_merge(fake, number, limit=WEBHOOK_LIMIT_SECONDS)
                log(f"  with the webhook: {seconds}")
                result.webhook.append(seconds)
            fake.hooks.remove(hook.id)
            for number in numbers[webhook_runs:]:
                seconds = _approval_to_merge(fake, number, limit=POLLING_LIMIT_SECONDS)
                log(f"  without a webhook: {seconds}")
                result.polling.append(seconds)
        result.merge_calls = sum(len(fake.merge_calls(REPO, n)) for n in numbers)
    return result


def _waiting(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        try:
            row = db.execute(
                "SELECT count(*) FROM beads_mergerequest WHERE blocker = 'human_review'"
            ).fetchone()
        except sqlite3.OperationalError:  # busy or not there yet
            return 0
    return int(row[0])
