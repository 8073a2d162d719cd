"""With DEBUG off, the production settings serve the dashboard's CSS and htmx themselves, under
hashed, compressed names, once collectstatic ran (the issue saw them answer 404)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# A client of the production settings in a process of its own (tests/settings.py swaps the
# storage for one that needs no collectstatic).
FETCH = """
import re, sys
import django
django.setup()
from django.test import Client
client = Client()
page = client.get("/accounts/login/")
assert page.status_code == 200, page.status_code
for url in re.findall(r'(?:href|src)="(/static/[^"]+)"', page.content.decode()):
    plain = client.get(url)
    gzipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    print(url, plain.status_code, plain["Content-Type"], gzipped.get("Content-Encoding"),
          plain.get("Cache-Control"), sep="\t")
"""


def _run(tmp_path: Path, *args: str, code: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "gastown.settings",
        "DEBUG": "0",
        "SECRET_KEY": "static-test",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "STATIC_ROOT": str(tmp_path / "static"),
        "ALLOWED_HOSTS": "testserver",
    }
    command = [sys.executable, "-c", code] if code else [sys.executable, "manage.py", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_debug_off_serves_hashed_compressed_static_files(tmp_path):
    collected = _run(tmp_path, "collectstatic", "--noinput")
    assert collected.returncode == 0, collected.stderr
    fetched = _run(tmp_path, code=FETCH)
    assert fetched.returncode == 0, fetched.stderr
    rows = sorted(line.split("\t") for line in fetched.stdout.splitlines())
    assert sorted(
        (Path(url).suffix, status, ctype.split(";")[0]) for url, status, ctype, *_ in rows
    ) == [
        (".css", "200", "text/css"),
        (".js", "200", "text/javascript"),  # htmx
        (".js", "200", "text/javascript"),  # the menu button
        (".svg", "200", "image/svg+xml"),  # the favicon
    ]
    for url, _status, _ctype, encoding, cache in rows:
        assert re.search(r"\.[0-9a-f]{12}\.(css|js|svg)$", url), f"{url} has no hashed name"
        assert encoding == "gzip"
        assert "immutable" in cache


def test_debug_off_without_collectstatic_fails_loudly(tmp_path):
    """A missing manifest is an error naming the file, not a page without its CSS."""
    fetched = _run(tmp_path, code=FETCH)
    assert fetched.returncode != 0
    assert "Missing staticfiles manifest entry for 'gastown/dashboard.css'" in fetched.stderr
