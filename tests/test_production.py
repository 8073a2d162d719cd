"""The production path end to end (issue 14): scripts/serve runs gunicorn with DEBUG=0 and a
qcluster on the Redis broker, on a PostgreSQL database of its own, against the fake GitHub.
Over HTTP, as a TLS-terminating proxy forwards it (X-Forwarded-Proto: https), an admin signs
in, loads every dashboard page and its static files, and presses an override; a signed webhook
asks for a PR check; the worker checks the PR and ticks the reconciler; then everything stops.

Runs in .ci/run's PostgreSQL pass (Redis at GASTOWN_TEST_REDIS_URL, by default database 14 of
127.0.0.1:6379)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
import requests
from django.conf import settings

from tests.processes import REPO, STOP_WITHIN_SECONDS, alive, descendants, free_port, wait_for

pytestmark = pytest.mark.postgres

METRICS_TOKEN = secrets.token_urlsafe(24)
REDIS_URL = os.environ.get("GASTOWN_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
PASSWORD = "e2e-" + secrets.token_urlsafe(12)
WEBHOOK_SECRET = secrets.token_hex(16)
FAKE_REPO = {
    "repo": "demo/app",
    "required_approvals": 1,
    "required_checks": ["ci"],
    "protected_branches": ["main"],
    "code_owners": ["alice"],
}
REPO_SPEC = json.dumps(FAKE_REPO)
CONTENT_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


@pytest.fixture
def database() -> Iterator[tuple[str, dict]]:
    """A PostgreSQL database of its own on the suite's server, dropped afterwards."""
    db = settings.DATABASES["default"]
    server = {
        "host": db["HOST"],
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"],
    }
    name = f"gastown_e2e_{secrets.token_hex(4)}"
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, server
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_queue() -> Iterator[str]:
    """The Redis database the cluster queues in, without leftovers before or after."""
    client = redis.from_url(REDIS_URL)
    keys = ["django_q:gastown:q", "django_q:gastown:q:delayed"]
    client.delete(*keys)
    yield REDIS_URL
    client.delete(*keys)
    client.close()


class Browser:
    """A browser behind the proxy: plain HTTP to gunicorn with X-Forwarded-Proto: https. It
    keeps its cookies by hand (they are Secure, and an HTTP client would not send them back
    over http) and sends the Origin a browser on the https site would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.origin = "https://" + urlsplit(base).netloc
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []
        self.http = requests.Session()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"X-Forwarded-Proto": "https", **kwargs.pop("headers", {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method == "POST":
            headers["Origin"] = self.origin
        response = self.http.request(
            method, self.base + path, headers=headers, allow_redirects=False, timeout=10, **kwargs
        )
        for header in response.raw.headers.getlist("Set-Cookie"):
            self.set_cookie_headers.append(header)
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        self.http.cookies.clear()
        return response

    def get(self, path: str) -> requests.Response:
        return self.request("GET", path)

    def post_form(self, path: str, form_page: requests.Response, data: dict) -> requests.Response:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form_page.text)
        assert token, f"no CSRF token on {form_page.url}"
        return self.request("POST", path, data={**data, "csrfmiddlewaretoken": token[1]})


def _static_urls(html: str) -> set[str]:
    return set(re.findall(r'(?:href|src)="(/static/[^"]+)"', html))


def _one(conn: psycopg.Connection, sql: str):
    row = conn.execute(sql).fetchone()
    return row[0] if row else None


def test_production_processes_end_to_end(tmp_path, spawn, database, redis_queue):
    started = time.monotonic()
    db_name, server = database
    fake_port, web_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "Q_BROKER", "REDIS_URL"}
    }
    env.update(
        {
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DATABASE_URL": (
                f"postgres://{server['user']}@{server['host']}:{server['port']}/{db_name}"
            ),
            "Q_BROKER": "redis",
            "REDIS_URL": redis_queue,
            "Q_WORKERS": "2",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "SECURE_SSL_REDIRECT": "1",
            "SECURE_HSTS_SECONDS": "3600",
            "SECURE_COOKIES": "1",
            "STATIC_ROOT": str(tmp_path / "static"),
            "WEB_BIND": f"127.0.0.1:{web_port}",
            "WEB_WORKERS": "2",
            "GITHUB_API_URL": f"http://127.0.0.1:{fake_port}",
            "GITHUB_TOKEN": "e2e-token",
            "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "GASTOWN_SIMULATED_AGENTS": "1",
            "GASTOWN_ACTIVE_TICK_SECONDS": "1",
            "DEMO_PASSWORD": PASSWORD,
            "METRICS_TOKEN": METRICS_TOKEN,
        }
    )

    def manage(*args: str) -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr

    fake = spawn(
        [sys.executable, "manage.py", "fake_github", "--port", str(fake_port), "--repo", REPO_SPEC],
        env=env,
        log=tmp_path / "fake_github.log",
    )
    wait_for(
        lambda: (
            requests.get(f"{env['GITHUB_API_URL']}/_fake/health", timeout=1).ok
            if not _refused(env["GITHUB_API_URL"])
            else None
        ),
        seconds=30,
        what="the fake GitHub",
    )
    serve = spawn(["scripts/serve"], env=env, log=tmp_path / "serve.log")
    browser = Browser(base)
    login = wait_for(
        lambda: _answer(browser, "/accounts/login/"), seconds=40, what="gunicorn's sign-in page"
    )
    # The demo town as data to look at (serve migrated the database first).
    manage("seed_demo", "--reset")

    assert login.status_code == 200
    assert login.headers["Strict-Transport-Security"] == "max-age=3600"
    # Plain http (no proxy header) is sent to https.
    plain = requests.get(base + "/accounts/login/", allow_redirects=False, timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{web_port}/accounts/login/"

    signed_in = browser.post_form(
        "/accounts/login/", login, {"username": "admin", "password": PASSWORD}
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    assert signed_in.headers["Location"] == "/"
    session_cookie = next(h for h in browser.set_cookie_headers if h.startswith("sessionid="))
    assert "Secure" in session_cookie and "HttpOnly" in session_cookie

    with psycopg.connect(dbname=db_name, autocommit=True, **server) as conn:
        bead_id = _one(conn, "SELECT id FROM beads_bead ORDER BY id LIMIT 1")
        # The Search revamp convoy's landing MR: failed by an old tool while its PR waited.
        mr_id, pr_url = conn.execute(
            "SELECT id, pr_url FROM beads_mergerequest WHERE pr_url <> '' ORDER BY id LIMIT 1"
        ).fetchone()
        pr_number = int(pr_url.rstrip("/").rsplit("/", 1)[1])

        # Every dashboard page, its static files, and the admin's.
        pages = [
            "/",
            "/towns/demo/",
            "/towns/demo/awaiting/",
            "/towns/demo/convoys/",
            f"/towns/demo/beads/{bead_id}/",
            "/towns/demo/telemetry/",
            "/towns/demo/reconciler/",
            f"/towns/demo/overrides/merge_request_recheck/{mr_id}/",
            "/admin/",
        ]
        static: set[str] = set()
        for path in pages:
            page = browser.get(path)
            assert page.status_code == 200, (path, page.status_code)
            assert page.headers["Content-Type"].startswith("text/html"), path
            static |= _static_urls(page.text)
        assert {"/static/gastown/dashboard", "/static/vendor/htmx/htmx.min"} <= {
            re.sub(r"\.[0-9a-f]{12}\.\w+$", "", url) for url in static
        }
        for url in sorted(static):
            asset = browser.get(url)
            assert asset.status_code == 200, url
            assert re.search(r"\.[0-9a-f]{12}\.\w+$", url), f"{url} has no hashed name"
            suffix = Path(url).suffix
            if suffix in CONTENT_TYPES:
                assert asset.headers["Content-Type"].startswith(CONTENT_TYPES[suffix]), url
            assert "immutable" in asset.headers["Cache-Control"], url

        # The worker's first tick comes from the minute schedule (django-q2's scheduler runs
        # about 30 s after the cluster starts); it suppresses the failed landing MR's respawn,
        # so its PR is watched again.
        wait_for(
            lambda: _one(conn, "SELECT count(*) FROM gastown_reconcilertick"),
            seconds=45,
            what="a reconciler tick by the worker",
        )
        wait_for(
            lambda: _one(
                conn,
                f"SELECT count(*) FROM gastown_convoy WHERE suppressed_landing_mr_id = {mr_id}",
            ),
            seconds=10,
            what="the suppressed respawn",
        )

        # An override through the proxy: a POST that CSRF lets through.
        form = browser.get(f"/towns/demo/overrides/merge_request_recheck/{mr_id}/")
        pressed = browser.post_form(
            f"/towns/demo/overrides/merge_request_recheck/{mr_id}/", form, {"reason": "e2e"}
        )
        assert pressed.status_code == 302
        after = browser.get(pressed.headers["Location"])
        assert "is being checked now" in after.text

        # GitHub tells gastown about the PR: the web process queues a check in Redis at once
        # (the scheduled one is a minute away), and the worker checks the PR on the fake GitHub.
        body = json.dumps(
            {
                "action": "synchronize",
                "repository": {"full_name": "demo/app"},
                "pull_request": {"number": pr_number},
            }
        ).encode()
        signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        delivered = browser.request(
            "POST",
            "/webhooks/github",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": secrets.token_hex(8),
                "X-Hub-Signature-256": f"sha256={signature}",
            },
        )
        assert delivered.status_code in (200, 202), delivered.text
        # The webhook's answer came after it asked for a check (check_requested_at): a pass
        # that claims the PR after that clears it, and stores what it read (its snapshot and
        # last successful check carry the time it claimed at). A pass may have started before
        # the webhook and claimed after it, so its claim time says nothing here.
        wait_for(
            lambda: conn.execute(
                "SELECT check_requested_at IS NULL AND last_successful_check_at = last_checked_at"
                " FROM beads_mergerequest WHERE id = %s",
                (mr_id,),
            ).fetchone()[0],
            seconds=20,
            what="the worker's check of the PR",
        )
        # The check's record follows its answer.
        wait_for(
            lambda: _one(conn, "SELECT count(*) FROM gastown_feedbackcheckrun WHERE checked > 0"),
            seconds=20,
            what="the record of the worker's check",
        )

    # Ready for a load balancer (a probe over plain http is not redirected), and the
    # numbers a team alerts on, behind the metrics token.
    ready = requests.get(base + "/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok"
    assert set(ready.json()["checks"]) >= {"database", "migrations", "broker", "reconciler"}
    assert requests.get(base + "/healthz", timeout=10).json() == {"status": "ok"}
    assert browser.get("/metrics").status_code == 401
    metrics = browser.request(
        "GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert metrics.status_code == 200
    assert re.search(r'gastown_reconciler_ticks_last_hour\{town="demo"\} [1-9]', metrics.text)
    assert re.search(r'gastown_prs_checked_last_hour\{town="demo"\} [1-9]', metrics.text)
    assert METRICS_TOKEN not in metrics.text and "e2e-token" not in metrics.text

    tree = descendants(serve.pid) | descendants(fake.pid)
    sent = time.monotonic()
    serve.send_signal(signal.SIGTERM)
    fake.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=STOP_WITHIN_SECONDS + 5) == 128 + signal.SIGTERM
    fake.wait(timeout=STOP_WITHIN_SECONDS)
    took = time.monotonic() - sent
    assert took < STOP_WITHIN_SECONDS
    wait_for(lambda: not alive(tree), seconds=STOP_WITHIN_SECONDS - took, what="every process")
    assert _refused(base)
    # Bounded: about 40 s on an idle machine (26 s of it django-q2's first scheduler run).
    assert time.monotonic() - started < 90


def _refused(base: str) -> bool:
    try:
        requests.get(base, timeout=1)
    except requests.ConnectionError:
        return True
    return False


def _answer(browser: Browser, path: str) -> requests.Response | None:
    try:
        return browser.get(path)
    except requests.ConnectionError:
        return None
