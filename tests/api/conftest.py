from __future__ import annotations

import json
from typing import Any

import pytest

from gastown.api.auth import api_token_create
from tests.factories import RigFactory, TownFactory


class Api:
    """The Django test client speaking JSON with a bearer token."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.token = token

    def _headers(self, token: str | None) -> dict[str, str]:
        token = self.token if token is None else token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, *, token: str | None = None, **params: Any) -> Any:
        return self.client.get(f"/api/v1{path}", params, headers=self._headers(token))

    def post(self, path: str, data: Any = None, *, token: str | None = None) -> Any:
        body = "" if data is None else json.dumps(data)
        return self.client.generic(
            "POST",
            f"/api/v1{path}",
            body,
            content_type="application/json",
            headers=self._headers(token),
        )


@pytest.fixture
def town(db):
    return TownFactory(slug="acme")


@pytest.fixture
def rig(town):
    return RigFactory(town=town, name="web", repo="acme/web", default_branch="main")


@pytest.fixture
def token(town):
    _, plain = api_token_create(town=town, name="runtime")
    return plain


@pytest.fixture
def api(client, token):
    return Api(client, token)
