"""scripts/serve: set-up, gunicorn and qcluster, and a stop (Ctrl-C, SIGTERM, or one process
dying) that leaves nothing running within 10 s, even with a task in the middle of its run.

These run the real processes on a SQLite file of their own with the broker the suite runs
with (.ci/run runs them again with Q_BROKER=redis)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest

from tests.processes import REPO, STOP_WITHIN_SECONDS, alive, descendants, free_port, wait_for


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}
    }
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": "serve-test",
            "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            "STATIC_ROOT": str(tmp_path / "static"),
            "WEB_BIND": f"127.0.0.1:{free_port()}",
            "WEB_WORKERS": "1",
            "Q_WORKERS": "1",
            **extra,
        }
    )
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )


@pytest.fixture
def serve(spawn, tmp_path):
    def start(env: dict[str, str], *args: str) -> subprocess.Popen:
        return spawn(["scripts/serve", *args], env=env, log=tmp_path / "serve.log")

    return start


def _page(url: str) -> int | None:
    try:
        with urlopen(url, timeout=2) as response:
            return response.status
    except OSError:
        return None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_web_and_a_busy_worker_within_10_seconds(tmp_path, serve, signum):
    env = serve_env(tmp_path)
    manage(env, "migrate", "--noinput")
    started = tmp_path / "task-started"
    # A task that outlives any grace period: the worker is busy when the stop comes.
    manage(
        env,
        "shell",
        "-c",
        "from django_q.brokers import get_broker; get_broker().purge_queue()\n"
        "from django_q.tasks import async_task\n"
        f"async_task('subprocess.run', ['sh', '-c', 'touch {started}; sleep 120'])",
    )
    proc = serve(env)
    login = f"http://{env['WEB_BIND']}/accounts/login/"
    wait_for(lambda: _page(login) == 200, seconds=60, what="the sign-in page")
    wait_for(started.exists, seconds=30, what="the worker's task")
    tree = descendants(proc.pid)
    assert len(tree) >= 6  # gunicorn (master, worker), qcluster (4+), the task's shell

    sent = time.monotonic()
    proc.send_signal(signum)
    status = proc.wait(timeout=STOP_WITHIN_SECONDS + 5)
    took = time.monotonic() - sent
    assert took < STOP_WITHIN_SECONDS
    assert status == 128 + signum
    # A process killed at the deadline is gone a moment later, not at once.
    wait_for(lambda: not alive(tree), seconds=STOP_WITHIN_SECONDS - took, what="every process")
    assert _page(login) is None


def test_one_process_failing_stops_the_other_and_fails_serve(tmp_path, serve):
    """gunicorn cannot bind (the port is taken): qcluster is stopped too, serve fails."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = serve_env(tmp_path, WEB_BIND=f"127.0.0.1:{taken.getsockname()[1]}")
        proc = serve(env)
        status = proc.wait(timeout=90)
    assert status != 0
    assert not alive(descendants(proc.pid))
    assert "stopping the others" in (tmp_path / "serve.log").read_text()


def test_serve_refuses_an_unknown_mode(tmp_path, serve):
    proc = serve(serve_env(tmp_path), "everything")
    assert proc.wait(timeout=10) == 2
    assert "usage: scripts/serve" in (tmp_path / "serve.log").read_text()


def test_gunicorn_names_a_malformed_setting(tmp_path, serve):
    proc = serve(serve_env(tmp_path, WEB_WORKERS="many"), "web")
    assert proc.wait(timeout=30) != 0
    assert "WEB_WORKERS='many' is not an integer" in (tmp_path / "serve.log").read_text()
