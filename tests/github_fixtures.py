"""Fixtures for the fake GitHub (scm/fake): a real HTTP server on loopback.

One server per test session (starting it and building GitHub's schema take a moment); each
test gets it reset, with settings pointing GITHUB_API_URL at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scm.client import GitHubClient
from scm.credentials import resolve_token
from scm.fake.server import FakeGitHub


@pytest.fixture(scope="session")
def _fake_github_server() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(web_url="https://github.com").start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_github(_fake_github_server: FakeGitHub, settings: Any) -> Iterator[FakeGitHub]:
    """The fake GitHub, empty, with GITHUB_API_URL/GITHUB_WEB_URL/GITHUB_TOKEN set for it."""
    fake = _fake_github_server
    fake.reset()
    settings.GITHUB_API_URL = fake.url
    settings.GITHUB_WEB_URL = "https://github.com"
    settings.GITHUB_TOKEN = "test-token"
    yield fake
    fake.reset()


@pytest.fixture
def github_client(fake_github: FakeGitHub) -> Iterator[GitHubClient]:
    """A real GitHubClient talking to the fake over HTTP (short timeout)."""
    client = GitHubClient(resolve_token(None), api_url=fake_github.url, timeout=5)
    yield client
    client.close()
